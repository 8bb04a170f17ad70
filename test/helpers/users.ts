import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeUsersFile } from '../../session-service/src/adapters/users-file.js';
import { hashPassword } from '../../session-service/src/domain/passwords.js';
import { newUser, type StoredUser } from '../../session-service/src/domain/users.js';

export interface TestUser {
  username: string;
  password: string;
  groups?: string[];
  email?: string;
  disabled?: boolean;
}

/** Writes a users file with real argon2id hashes; returns its path and the stored users. */
export async function writeTestUsers(
  users: TestUser[],
  path?: string,
): Promise<{ path: string; users: StoredUser[] }> {
  const file = path ?? join(mkdtempSync(join(tmpdir(), 'gatehouse-users-')), 'users.json');
  const stored: StoredUser[] = [];
  for (const u of users) {
    const user = newUser({
      username: u.username,
      passwordHash: await hashPassword(u.password),
      groups: u.groups ?? [],
      email: u.email ?? '',
    });
    stored.push({ ...user, disabled: u.disabled ?? false });
  }
  await writeUsersFile(file, stored);
  return { path: file, users: stored };
}
