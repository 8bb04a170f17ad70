/**
 * The users file's reader, on a worker thread of its own (users-file.ts runs one per process, on
 * piscina, shared by every repository in it). For each load it reads, parses and validates the
 * whole file and indexes it (indexUsers), all O(users) and all here, then compares the new index
 * with the one it kept from the repository's previous load (diffUserIndexes) and answers only the
 * difference: the removed keys, the problems, and the changed users in parts of PART_SIZE, the
 * first in the answer and the others asked for one task at a time, so the event loop never
 * deserialises more than PART_SIZE users at once.
 *
 * A broken file changes nothing here either: the previous index stays, for the next diff.
 */
import {
  diffUserIndexes,
  indexUsers,
  type UserIndex,
  type UserIndexDiff,
  type UsersFileProblem,
} from '../domain/users.js';
import { readUsersFileStamped } from './users-file.js';

/** Changed users per answer: deserialising one costs the event loop about a millisecond. */
export const PART_SIZE = 1000;

export type ReaderTask =
  | { op: 'load'; repo: number; path: string }
  | { op: 'part'; repo: number; part: number }
  | { op: 'forget'; repo: number };

export interface LoadAnswer {
  /** This thread had no index for the repository: the parts are all of it, not a change. */
  full: boolean;
  stamp: string;
  entries: number;
  changedUsers: number;
  removed: UserIndexDiff['removed'];
  problems: UsersFileProblem[];
  /** The first part of the changed users; `parts` in all (ask for 1 … parts-1). */
  first: UserIndexDiff['changed'];
  parts: number;
}

const EMPTY: UserIndex = indexUsers([]);
/** Each repository's index as of its last good load, and the parts of it not yet asked for. */
const repos = new Map<number, { index: UserIndex; changed: UserIndexDiff['changed'] }>();

async function load(repo: number, path: string): Promise<LoadAnswer> {
  const { users, stamp } = await readUsersFileStamped(path);
  const after = indexUsers(users);
  const before = repos.get(repo);
  const diff = diffUserIndexes(before?.index ?? EMPTY, after);
  repos.set(repo, { index: after, changed: diff.changed });
  return {
    full: before === undefined,
    stamp,
    entries: users.length,
    changedUsers: diff.changed.length,
    removed: diff.removed,
    problems: diff.problems,
    first: diff.changed.slice(0, PART_SIZE),
    parts: Math.ceil(diff.changed.length / PART_SIZE),
  };
}

function part(repo: number, n: number): UserIndexDiff['changed'] {
  const state = repos.get(repo);
  if (!state) throw new Error('the users file reader has no load in progress for this file');
  const changed = state.changed.slice(n * PART_SIZE, (n + 1) * PART_SIZE);
  // The last part asked for: nothing more to keep but the index.
  if ((n + 1) * PART_SIZE >= state.changed.length) state.changed = [];
  return changed;
}

/** piscina's task handler: one task at a time (the pool has one thread, one task per thread). */
export default async function run(task: ReaderTask): Promise<unknown> {
  if (task.op === 'load') return load(task.repo, task.path);
  if (task.op === 'part') return part(task.repo, task.part);
  repos.delete(task.repo);
  return null;
}
