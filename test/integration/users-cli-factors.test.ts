/**
 * `npm run users` and second factors, as a real process on real Redis: reset-factors removes a
 * lost authenticator app (TOTP, recovery codes) and ends the user's sessions; remove takes the
 * factors with the user; disable keeps them for enable.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis, type RedisClient } from '../../common/src/redis.js';
import { createRedisFactorRepository } from '../../session-service/src/domain/factors-redis.js';
import { hashPassword } from '../../session-service/src/domain/passwords.js';
import { createSealer } from '../../session-service/src/domain/sealing.js';
import { createRedisSessionRepository } from '../../session-service/src/domain/session-repository-redis.js';
import { newUser, type StoredUser } from '../../session-service/src/domain/users.js';
import { silentLogger } from '../helpers/logger.js';
import { reservedDeadPort } from '../helpers/ports.js';
import { TEST_ENCRYPTION_KEY } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { testRecords } from '../helpers/stored-sessions.js';
import { runUsersCli } from '../helpers/users-cli.js';

const TIMEOUT_MS = 30_000;
let redis: RedisServer;
let client: RedisClient;
let dir: string;
let hash: string;
const lifetimes = {
  idleSeconds: 600,
  absoluteSeconds: 3600,
  rememberIdleSeconds: 600,
  rememberAbsoluteSeconds: 3600,
};

beforeAll(async () => {
  redis = await startRedis();
  client = createRedis({ url: redis.url }, silentLogger);
  await client.connect();
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-users-cli-factors-'));
  hash = await hashPassword('an old password');
});
afterAll(async () => {
  await client?.close();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A users file holding `username`, who has TOTP, recovery codes and two sessions in Redis. */
async function userWithFactors(username: string) {
  const user = newUser({ username, passwordHash: hash }) as StoredUser & { id: string };
  const file = join(dir, `${randomUUID()}.json`);
  writeFileSync(file, JSON.stringify({ users: [user] }));
  const factors = createRedisFactorRepository({
    redis: client,
    secrets: createSealer([TEST_ENCRYPTION_KEY], 'totp-secret'),
  });
  await factors.saveTotp(user.id, { secret: 'JBSWY3DPEHPK3PXP', createdAt: Date.now() });
  await factors.replaceRecoveryCodes(user.id, ['a', 'b']);
  await factors.saveWebauthn(user.id, {
    id: `key-of-${username}`,
    publicKey: 'pk',
    counter: 3,
    transports: ['usb'],
    backupEligible: false,
    backedUp: false,
    name: 'YubiKey',
    createdAt: Date.now(),
    lastUsedAt: null,
  });
  const sessions = createRedisSessionRepository({ redis: client, lifetimes, records: testRecords });
  const sids = [randomBytes(32).toString('base64url'), randomBytes(32).toString('base64url')];
  for (const sid of sids)
    await sessions.createSession(sid, {
      userId: user.id,
      username,
      groups: [],
      email: '',
      createdAt: Date.now(),
      amr: ['otp', 'pwd', 'mfa'],
      authTime: Date.now(),
    });
  const state = async () => ({
    totp: (await factors.getTotp(user.id)) !== null,
    recoveryCodes: await factors.recoveryCodesLeft(user.id),
    keys: (await factors.listWebauthn(user.id)).length,
    sessions: (await sessions.listUserSessions(user.id)).length,
  });
  return { file, state };
}

const run = (file: string, args: string[], redisUrl = redis.url) =>
  runUsersCli(args, { env: { USERS_FILE: file, REDIS_URL: redisUrl, REDIS_PREFIX: 'gh:' } });

describe('users reset-factors', { timeout: TIMEOUT_MS }, () => {
  it('removes the TOTP, recovery codes and security keys and ends every session of the user', async () => {
    const { file, state } = await userWithFactors('alice');
    expect(await state()).toEqual({ totp: true, recoveryCodes: 2, keys: 1, sessions: 2 });
    const result = await run(file, ['reset-factors', 'Alice']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('removed the second factors of "alice"'); // found by any spelling
    expect(result.stdout).toContain('ended 2 sessions');
    expect(await state()).toEqual({ totp: false, recoveryCodes: 0, keys: 0, sessions: 0 });
    const again = await run(file, ['reset-factors', 'alice']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('"alice" had no second factor');
  });

  it('refuses an unknown user, and changes nothing when Redis is unreachable (exit 1)', async () => {
    const { file, state } = await userWithFactors('bob');
    const unknown = await run(file, ['reset-factors', 'nobody']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no user named "nobody"');
    const down = await run(
      file,
      ['reset-factors', 'bob'],
      `redis://127.0.0.1:${await reservedDeadPort()}`,
    );
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('could not remove the second factors of "bob"');
    expect(await state()).toEqual({ totp: true, recoveryCodes: 2, keys: 1, sessions: 2 });
  });
});

describe('users remove and disable', { timeout: TIMEOUT_MS }, () => {
  it('remove takes the second factors with the user', async () => {
    const { file, state } = await userWithFactors('carol');
    const result = await run(file, ['remove', 'carol']);
    expect(result.code).toBe(0);
    expect(await state()).toEqual({ totp: false, recoveryCodes: 0, keys: 0, sessions: 0 });
  });

  it('disable keeps them, so enable gives the user back as they were', async () => {
    const { file, state } = await userWithFactors('dave');
    const result = await run(file, ['disable', 'dave']);
    expect(result.code).toBe(0);
    expect(await state()).toEqual({ totp: true, recoveryCodes: 2, keys: 1, sessions: 0 });
  });
});
