/**
 * The users file (USERS_FILE): read, written atomically, and re-read by the repository the
 * session-service serves logins and validate from. The rules for what an entry may hold are the
 * domain's (domain/users.ts: userSchema, indexUsers); this module is the file.
 *
 * The bound (docs/performance.md, "Users file size"): a change to the file costs the event loop
 * O(k + p), k the users whose entry changed (added, removed, edited, or starting or ceasing to
 * clash with another) and p the problems the file has (none in a clean file), never O(users).
 * Reading, parsing, validating, indexing and diffing the whole file, O(users), run on a reader
 * thread (users-file-worker.ts), which answers only the difference, at most PART_SIZE (1,000)
 * users a message; the event loop deserialises those and applies them to its one index. Measured
 * at 10^5 users on 2 busy cores: the longest event-loop stall during a change 35 ms against 12 ms
 * with no change (the machine's own noise), where the whole file on the event loop stalled it
 * 1.7 s (545 ms on a quiet machine). What a change still costs is time, not the event loop: a
 * login waits for the reload in progress (1 to 3 s at 10^5 users) and validate answers from the
 * current copy until the difference lands, so a change reaches validate within
 * minCheckIntervalMs plus that reload. The first load runs the same way at start; until it ends
 * logins and validates wait for it (never "no such user" for a user the file has), its parts
 * bounded the same way. Writing the file (the CLI) is still O(users), in the CLI's own process:
 * it never stops the service's event loop.
 */
import type { Stats } from 'node:fs';
import { mkdir, open, rename, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Piscina } from 'piscina';
import { z } from 'zod';
import {
  applyUserIndexDiff,
  indexUsers,
  lookUp,
  type StoredUser,
  type UserIndex,
  type UserIndexDiff,
  type UsersFileProblem,
  type UsersRepository,
  userSchema,
} from '../domain/users.js';
import type { LoadAnswer, ReaderTask } from './users-file-worker.js';

// Duplicates are not refused here: a clash must not lock every user out (see indexUsers).
const fileSchema = z.object({ users: z.array(userSchema) });

export async function readUsersFile(path: string): Promise<StoredUser[]> {
  return (await readUsersFileStamped(path)).users;
}

/** What tells one version of the file from another (an atomic rename changes the inode). */
const stampOf = (s: Stats) => `${s.mtimeMs}:${s.size}:${s.ino}`;
const MISSING = 'missing';

/** The file's users and the stamp of exactly the version read ('missing' when there is none). */
export async function readUsersFileStamped(
  path: string,
): Promise<{ users: StoredUser[]; stamp: string }> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { users: [], stamp: MISSING };
    throw err;
  }
  try {
    const stamp = stampOf(await handle.stat());
    const text = await handle.readFile('utf8');
    return { users: fileSchema.parse(JSON.parse(text)).users, stamp };
  } finally {
    await handle.close();
  }
}

/** Write atomically (temp file + rename) so a reader never sees half a file. Mode 0600. */
export async function writeUsersFile(path: string, users: StoredUser[]): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(`${JSON.stringify({ users }, null, 2)}\n`);
    await handle.chmod(0o600);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
}

/**
 * The process's one reader thread, on piscina as the hasher's (hasher-pool.ts: the same way to
 * load the worker module from source under tsx): started on the first load, living as long as
 * the process, never keeping it alive when idle, replaced if it dies (a new one knows no
 * repository, so it answers with whole indexes: `full`). Not reniced as the hasher's threads
 * are: on a busy machine a niced reader starved for seconds, and logins wait for its reloads.
 */
let reader: Piscina<ReaderTask, unknown> | null = null;
let nextRepo = 1;

function readerPool(): Piscina<ReaderTask, unknown> {
  if (reader) return reader;
  const fromSource = import.meta.url.endsWith('.ts');
  const filename = new URL(`./users-file-worker.${fromSource ? 'ts' : 'js'}`, import.meta.url).href;
  const hasTsx = process.execArgv.some((arg) => arg.includes('tsx'));
  const execArgv = fromSource && !hasTsx ? [...process.execArgv, '--import', 'tsx'] : undefined;
  reader = new Piscina<ReaderTask, unknown>({
    filename,
    execArgv: execArgv ?? process.execArgv,
    minThreads: 0,
    maxThreads: 1,
    concurrentTasksPerWorker: 1,
    idleTimeout: Number.POSITIVE_INFINITY,
  });
  return reader;
}

export interface UsersFileRepository extends UsersRepository {
  /** Settles once the first load has been tried, whatever came of it. */
  readonly ready: Promise<void>;
  /** Lets the reader thread drop this repository's copy. */
  close(): void;
}

export interface UsersFileLoad {
  /** Entries in the file. */
  entries: number;
  /** Users added, removed or changed since the previous load (all of them the first time). */
  changed: number;
  /** From asking the reader thread to the index updated. */
  ms: number;
  first: boolean;
}

/**
 * Reads USERS_FILE at once (on the reader thread) and re-reads it whenever its mtime, size or
 * inode changes, so `npm run users` takes effect without a restart and no file watcher can leak
 * or miss an atomic rename. Logins look at the file every time and wait for a reload in
 * progress (a user just added can sign in, one just disabled cannot); validate (findById) at most
 * every minCheckIntervalMs and never waits for a reload: it answers from the current copy, which
 * the reload's difference updates when it lands. Until the first load ends, both wait for it.
 * A broken file keeps the last good copy. `onProblems` hears what indexUsers found, each time a
 * changed file is loaded; `onLoad` each load.
 */
export function createUsersRepository(
  path: string,
  onError: (err: unknown) => void = () => {},
  options: {
    minCheckIntervalMs?: number;
    onProblems?: (problems: UsersFileProblem[]) => void;
    onLoad?: (load: UsersFileLoad) => void;
  } = {},
): UsersFileRepository {
  const minCheckIntervalMs = options.minCheckIntervalMs ?? 250;
  const repo = nextRepo++;
  let index: UserIndex = indexUsers([]);
  let stamp = '';
  let checkedAt = 0;
  let loaded = false;
  let reloading: Promise<void> | null = null;

  async function load(): Promise<void> {
    const t0 = performance.now();
    const pool = readerPool();
    let answer: LoadAnswer | null = null;
    try {
      answer = (await pool.run({ op: 'load', repo, path })) as LoadAnswer;
      // The event loop deserialises one part (PART_SIZE users) per task. A whole index (the
      // reader's first answer) is built aside part by part and swapped in; a change is applied
      // once all of it is here, so no lookup sees half of it.
      const fresh = answer.full ? indexUsers([]) : null;
      const parts = [answer.first];
      if (fresh) applyUserIndexDiff(fresh, { removed: NOTHING_REMOVED, changed: answer.first });
      for (let part = 1; part < answer.parts; part++) {
        const changed = (await pool.run({ op: 'part', repo, part })) as UserIndexDiff['changed'];
        if (fresh) applyUserIndexDiff(fresh, { removed: NOTHING_REMOVED, changed });
        else parts.push(changed);
      }
      if (fresh) {
        index = fresh;
      } else {
        applyUserIndexDiff(index, { removed: answer.removed, changed: [] });
        for (const changed of parts)
          applyUserIndexDiff(index, { removed: NOTHING_REMOVED, changed });
      }
    } catch (err) {
      // The reader moved on to a copy this thread did not take: let it start again from nothing.
      if (answer) pool.run({ op: 'forget', repo }).catch(() => {});
      onError(err);
      return;
    }
    index.problems = answer.problems;
    const first = stamp === '';
    stamp = answer.stamp;
    options.onLoad?.({
      entries: answer.entries,
      changed: answer.changedUsers,
      ms: performance.now() - t0,
      first,
    });
    if (answer.problems.length > 0) options.onProblems?.(answer.problems);
  }

  function reload(): Promise<void> {
    reloading ??= load().finally(() => {
      reloading = null;
      loaded = true;
    });
    return reloading;
  }

  /** Reload if the file changed; `force`: whatever the interval, and after any reload running. */
  async function check(force: boolean): Promise<void> {
    if (reloading) {
      await reloading;
      if (!force) return;
    }
    const t = Date.now();
    if (!force && t - checkedAt < minCheckIntervalMs) return;
    checkedAt = t;
    let current: string;
    try {
      current = stampOf(await stat(path));
    } catch {
      current = MISSING;
    }
    if (current !== stamp) await reload();
  }

  const ready = reload();
  return {
    ready,
    async findByUsername(username) {
      await check(true);
      return lookUp(index, username);
    },
    peekByUsername(username) {
      if (loaded && !reloading) check(false).catch(onError);
      return lookUp(index, username);
    },
    async findById(id) {
      if (!loaded) await ready;
      else if (!reloading) check(false).catch(onError);
      return index.byId.get(id) ?? null;
    },
    close() {
      reader?.run({ op: 'forget', repo }).catch(() => {});
    },
  };
}

const NOTHING_REMOVED: UserIndexDiff['removed'] = { byName: [], byLegacyName: [], byId: [] };
