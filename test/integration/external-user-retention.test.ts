import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createExternalUsers } from '../../session-service/src/domain/external-users.js';
import { createSealer } from '../../session-service/src/domain/sealing.js';
import { TEST_ENCRYPTION_KEY } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';

/**
 * An identity-source user's record is what validate reads for their sessions and tokens: a token
 * that outlives the record would die with it. keepUntil (called when a token is made) keeps the
 * record and its name that long, and a later sign-in or re-check (save) never shortens it.
 */
let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

describe('identity-source user records and access tokens', () => {
  it('live as long as the longest token of theirs, whatever sign-ins come after', async () => {
    const users = createExternalUsers({
      redis: redis.client as never,
      sealer: createSealer([TEST_ENCRYPTION_KEY], 'external-user'),
      prefix: 'ret:',
      retentionMs: 5_000,
    });
    const record = {
      id: 'oidc:op:abc',
      source: 'oidc' as const,
      provider: 'op',
      subject: 'abc',
      username: 'carol',
      email: '',
      name: '',
      groups: [],
      checkedAt: Date.now(),
    };
    await users.save(record);
    const userKey = 'ret:xuser:oidc:op:abc';
    expect(await redis.client.pTTL(userKey)).toBeLessThanOrEqual(5_000);

    await users.keepUntil(record.id, Date.now() + 3_600_000);
    expect(await redis.client.pTTL(userKey)).toBeGreaterThan(3_500_000);
    // The name stays claimed as long: nobody else takes "carol" while the token lives.
    const nameKeys = (await redis.client.keys('ret:xname:*')) as string[];
    expect(nameKeys).toHaveLength(1);
    expect(await redis.client.pTTL(nameKeys[0] as string)).toBeGreaterThan(3_500_000);

    // A sign-in (or re-check) saves the record again: its life is not cut back to the retention.
    await users.save({ ...record, groups: ['staff'], checkedAt: Date.now() });
    expect(await redis.client.pTTL(userKey)).toBeGreaterThan(3_500_000);
    expect((await users.get(record.id))?.groups).toEqual(['staff']);

    // A shorter wish changes nothing; an unknown user gets no record.
    await users.keepUntil(record.id, Date.now() + 1_000);
    expect(await redis.client.pTTL(userKey)).toBeGreaterThan(3_500_000);
    await users.keepUntil('oidc:op:nobody', Date.now() + 3_600_000);
    expect(await redis.client.exists('ret:xuser:oidc:op:nobody')).toBe(0);
  });
});
