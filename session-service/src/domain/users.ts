import { randomUUID } from 'node:crypto';
import { mkdir, open, readFile, rename, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';

export const USERNAME_MAX = 64;

export const userSchema = z.looseObject({
  id: z.string().min(1).optional(),
  username: z.string().min(1).max(USERNAME_MAX),
  passwordHash: z.string().startsWith('$argon2id$'),
  groups: z.array(z.string()).default([]),
  email: z.string().default(''),
  disabled: z.boolean().default(false),
  /** ms since the epoch: sessions created before this are no longer valid (set by passwd/disable). */
  sessionsNotBefore: z.number().optional(),
});

export type StoredUser = z.infer<typeof userSchema>;
export interface User extends StoredUser {
  id: string;
}

const fileSchema = z.object({ users: z.array(userSchema) }).superRefine((file, ctx) => {
  const seen = new Set<string>();
  file.users.forEach((user, i) => {
    if (seen.has(user.username)) {
      ctx.addIssue({
        code: 'custom',
        path: ['users', i, 'username'],
        message: `duplicate username ${user.username}`,
      });
    }
    seen.add(user.username);
  });
});

export function checkUsername(username: string): string | null {
  if (username.trim().length === 0) return 'username must not be empty';
  if ([...username].length > USERNAME_MAX)
    return `username must be at most ${USERNAME_MAX} characters`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(username)) return 'username must not contain control characters';
  if (username !== username.trim()) return 'username must not start or end with spaces';
  return null;
}

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

export function withId(user: StoredUser): User {
  return { ...user, id: user.id ?? user.username };
}

export function newUser(input: {
  username: string;
  passwordHash: string;
  groups?: string[];
  email?: string;
}): StoredUser {
  return {
    id: randomUUID(),
    username: input.username,
    passwordHash: input.passwordHash,
    groups: input.groups ?? [],
    email: input.email ?? '',
    disabled: false,
  };
}

export interface UsersRepository {
  findByUsername(username: string): Promise<User | null>;
  findById(id: string): Promise<User | null>;
}

/**
 * Reads USERS_FILE and re-reads it whenever its mtime or size changes (checked on each lookup,
 * which only logins and admin calls do), so `npm run users` takes effect without a restart and
 * no file watcher can leak or miss an atomic rename. A broken file keeps the last good copy.
 */
export function createUsersRepository(
  path: string,
  onError: (err: unknown) => void = () => {},
  options: { minCheckIntervalMs?: number } = {},
): UsersRepository {
  const minCheckIntervalMs = options.minCheckIntervalMs ?? 250;
  let checkedAt = 0;
  let stamp = '';
  let byName = new Map<string, User>();
  let byId = new Map<string, User>();

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
      const users = (await readUsersFile(path)).map(withId);
      byName = new Map(users.map((u) => [u.username, u]));
      byId = new Map(users.map((u) => [u.id, u]));
      stamp = current;
    } catch (err) {
      onError(err);
    }
  }

  return {
    async findByUsername(username) {
      await refresh(true);
      return byName.get(username) ?? null;
    },
    async findById(id) {
      await refresh(false);
      return byId.get(id) ?? null;
    },
  };
}
