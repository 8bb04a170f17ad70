/**
 * The users file (USERS_FILE): read, written atomically, and re-read by the repository the
 * session-service serves logins and validate from. The rules for what an entry may hold are the
 * domain's (domain/users.ts: userSchema, indexUsers); this module is the file.
 */
import { mkdir, open, readFile, rename, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import {
  indexUsers,
  lookUp,
  type StoredUser,
  type UsersFileProblem,
  type UsersRepository,
  userSchema,
} from '../domain/users.js';

// Duplicates are not refused here: a clash must not lock every user out (see indexUsers).
const fileSchema = z.object({ users: z.array(userSchema) });

export async function readUsersFile(path: string): Promise<StoredUser[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return fileSchema.parse(JSON.parse(text)).users;
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
 * Reads USERS_FILE and re-reads it whenever its mtime or size changes (checked on each lookup,
 * which only logins and admin calls do), so `npm run users` takes effect without a restart and
 * no file watcher can leak or miss an atomic rename. A broken file keeps the last good copy.
 * `onProblems` hears what indexUsers found, each time a changed file is loaded.
 */
export function createUsersRepository(
  path: string,
  onError: (err: unknown) => void = () => {},
  options: {
    minCheckIntervalMs?: number;
    onProblems?: (problems: UsersFileProblem[]) => void;
  } = {},
): UsersRepository {
  const minCheckIntervalMs = options.minCheckIntervalMs ?? 250;
  let checkedAt = 0;
  let stamp = '';
  let users = indexUsers([]);

  async function refresh(force: boolean): Promise<void> {
    // Logins look at the file every time; the validate path (every request) at most every
    // minCheckIntervalMs, so a disabled user is refused within that time.
    const t = Date.now();
    if (!force && stamp !== '' && t - checkedAt < minCheckIntervalMs) return;
    checkedAt = t;
    let current: string;
    try {
      const s = await stat(path);
      current = `${s.mtimeMs}:${s.size}:${s.ino}`;
    } catch {
      current = 'missing';
    }
    if (current === stamp) return;
    try {
      users = indexUsers(await readUsersFile(path));
      stamp = current;
    } catch (err) {
      onError(err);
      return;
    }
    if (users.problems.length > 0) options.onProblems?.(users.problems);
  }

  return {
    async findByUsername(username) {
      await refresh(true);
      return lookUp(users, username);
    },
    async findById(id) {
      await refresh(false);
      return users.byId.get(id) ?? null;
    },
  };
}
