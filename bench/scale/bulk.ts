/**
 * Live sessions and users in bulk, in the formats the services themselves write:
 *
 * - sessions through the session repository's own createSession (its sealed record, its per-user
 *   index entry, its live-session count entry: whatever main writes when this runs), many in
 *   flight at once on one pipelined connection, from a template record that a real login through
 *   the HTTP API wrote (so the record carries what a login stores, browser user-agent included);
 * - users files through the session-service's own writeUsersFile and newUser, every user with
 *   the same real argon2id hash (hashing 10^5 passwords would measure argon2, not the file).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRedis, type RedisClient } from '../../common/src/redis.js';
import { writeUsersFile } from '../../session-service/src/adapters/users-file.js';
import { hashPassword } from '../../session-service/src/domain/passwords.js';
import { createRedisSessionRepository } from '../../session-service/src/domain/session-repository-redis.js';
import { newUser, type StoredUser } from '../../session-service/src/domain/users.js';
import { silentLogger } from '../../test/helpers/logger.js';
import { JSON_HEADERS } from '../../test/helpers/login.js';
import { storedAuthOf, testRecords } from '../../test/helpers/stored-sessions.js';
import { BROWSER_UA, cookieOf, sidOf } from './stack.js';

export const PASSWORD = 'scale password 123';
let hash: Promise<string> | undefined;

/** A users file of `count` users (`user0`, `user1`, …), all with PASSWORD; its path and users. */
export async function writeUsers(
  count: number,
  path = join(mkdtempSync(join(tmpdir(), 'gatehouse-scale-users-')), 'users.json'),
): Promise<{ path: string; users: StoredUser[] }> {
  hash ??= hashPassword(PASSWORD);
  const passwordHash = await hash;
  const users = Array.from({ length: count }, (_, i) =>
    newUser({
      username: `user${i}`,
      passwordHash,
      groups: ['staff'],
      email: `user${i}@example.com`,
    }),
  );
  await writeUsersFile(path, users);
  return { path, users };
}

/** POST /auth/login (JSON) as a browser would identify itself; the session cookie, or throws. */
export async function login(
  baseUrl: string,
  username: string,
  headers = {},
  password = PASSWORD,
): Promise<string> {
  const res = await fetch(`${baseUrl}/auth/login`, {
    method: 'POST',
    headers: { ...JSON_HEADERS, 'user-agent': BROWSER_UA, ...headers },
    body: JSON.stringify({ username, password }),
  });
  const line = res.headers.getSetCookie().find((c) => c.startsWith('gatehouse='));
  await res.arrayBuffer();
  if (res.status !== 200 || !line) throw new Error(`login of ${username}: ${res.status}`);
  return line.split(';')[0] as string;
}

const LIFETIMES = {
  idleSeconds: 1800,
  absoluteSeconds: 43200,
  rememberIdleSeconds: 1800,
  rememberAbsoluteSeconds: 43200,
};

export interface BulkSessions {
  /** Create `count` more sessions, spread over the users; answers their cookies (all of them). */
  create(count: number, onProgress?: (done: number) => void): Promise<string[]>;
  redis: RedisClient;
  close(): Promise<void>;
}

/**
 * A session factory on the Redis at `redisUrl`, copying the record a real login of `users[0]` at
 * `serviceUrl` wrote, for each user in turn (their own id and, when the record holds them, their
 * name, groups and email), with `concurrency` logins in flight.
 */
export async function bulkSessions(options: {
  redisUrl: string;
  serviceUrl: string;
  users: readonly StoredUser[];
  /** The password of users[0] (default: PASSWORD). */
  password?: string;
  concurrency?: number;
}): Promise<BulkSessions> {
  const redis = createRedis({ url: options.redisUrl, commandTimeoutMs: 30_000 }, silentLogger);
  await redis.connect();
  const first = options.users[0] as StoredUser;
  const sample = await login(options.serviceUrl, first.username, {}, options.password);
  const template = await storedAuthOf(redis, sidOf(sample));
  if (!template) throw new Error('the login wrote no session record the bench can read');
  const repository = createRedisSessionRepository({
    redis,
    lifetimes: LIFETIMES,
    records: testRecords,
    // Nothing to tell: no session ends here.
    onRevoked: async () => {},
    onChanged: async () => {},
  });
  const concurrency = options.concurrency ?? 256;
  let next = 1;
  const recordOf = (user: StoredUser, t: number) => {
    const auth: Record<string, unknown> = { ...template, createdAt: t };
    if ('authTime' in template) auth.authTime = t;
    // Whatever the record keeps of the user, it keeps of this one.
    for (const key of ['username', 'groups', 'email'] as const)
      if (key in template) auth[key] = user[key];
    auth.userId = user.id ?? user.username;
    return auth as unknown as typeof template;
  };
  return {
    redis,
    async create(count, onProgress) {
      const cookies: string[] = [];
      let done = 0;
      const worker = async () => {
        while (cookies.length < count) {
          const sid = randomBytes(32).toString('base64url');
          cookies.push(cookieOf(sid));
          const user = options.users[next++ % options.users.length] as StoredUser;
          await repository.createSession(sid, recordOf(user, Date.now()));
          done += 1;
          if (onProgress && done % 50_000 === 0) onProgress(done);
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
      return cookies;
    },
    close: () => redis.close().catch(() => {}),
  };
}
