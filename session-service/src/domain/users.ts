import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';

export const USERNAME_MAX = 64;

export const userSchema = z.object({
  id: z.string().min(1).optional(),
  username: z.string().min(1).max(USERNAME_MAX),
  passwordHash: z.string().startsWith('$argon2id$'),
  groups: z.array(z.string()).default([]),
  email: z.string().default(''),
  disabled: z.boolean().default(false),
});

export type StoredUser = z.infer<typeof userSchema>;
export interface User extends StoredUser {
  id: string;
}

const fileSchema = z.object({ users: z.array(userSchema) });

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
  await writeFile(tmp, `${JSON.stringify({ users }, null, 2)}\n`, { mode: 0o600 });
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
): UsersRepository {
  let stamp = '';
  let byName = new Map<string, User>();
  let byId = new Map<string, User>();

  async function refresh(): Promise<void> {
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
      await refresh();
      return byName.get(username) ?? null;
    },
    async findById(id) {
      await refresh();
      return byId.get(id) ?? null;
    },
  };
}
