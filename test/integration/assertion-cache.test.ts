/**
 * The session-service's cache of signed identity tokens (session-service/src/domain/assertions.ts):
 * a token is reused per session and audience, and past the cap the least recently used is signed
 * anew. A re-signed token differs from the cached one because the clock moved (its `iat`).
 */
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAssertionSigner } from '../../session-service/src/domain/assertions.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { testSigningKeys } from '../helpers/stored-sessions.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

const auth = { userId: 'u1', username: 'alice', groups: [], email: '', createdAt: Date.now() };

describe('the signed-token cache when full', () => {
  it('signs anew for the least recently used session, and reuses the others', async () => {
    const clock = { t: Date.now() };
    const signer = createAssertionSigner({
      redis: redis.client,
      prefix: `cap-${Date.now()}:`,
      issuer: 'gatehouse',
      keys: testSigningKeys,
      now: () => clock.t,
      cacheMax: 2,
    });
    const a = await signer.sign('a', auth, 'app');
    const b = await signer.sign('b', auth, 'app');
    clock.t += 2000; // a token signed from now on has another iat
    expect(await signer.sign('a', auth, 'app')).toBe(a); // a is now the more recently used
    await signer.sign('c', auth, 'app'); // b goes
    expect(await signer.sign('a', auth, 'app')).toBe(a);
    const b2 = await signer.sign('b', auth, 'app');
    expect(b2).not.toBe(b);
    expect(decodeJwt(b2).iat).toBe(Math.floor(clock.t / 1000));
  });
});

describe('what a cached token says', () => {
  it('is always what validate says now: a changed group, name or email, or a step-up, signs anew', async () => {
    const signer = createAssertionSigner({
      redis: redis.client,
      prefix: `say-${Date.now()}:`,
      issuer: 'gatehouse',
      keys: testSigningKeys,
    });
    const staff = { ...auth, groups: ['admins', 'staff'], email: 'a@example.com' };
    const first = await signer.sign('s', staff, 'app');
    expect(await signer.sign('s', staff, 'app')).toBe(first);
    for (const changed of [
      { ...staff, groups: ['staff'] },
      { ...staff, groups: ['staff', 'admins'] },
      { ...staff, username: 'alice2' },
      { ...staff, email: 'b@example.com' },
      { ...staff, amr: ['otp', 'pwd', 'mfa'] as const, authTime: staff.createdAt + 1000 },
    ]) {
      const token = decodeJwt(await signer.sign('s', changed, 'app'));
      expect(token).toMatchObject({
        name: changed.username,
        groups: changed.groups,
        email: changed.email,
      });
    }
    const tokenStaff = { id: 'u1', username: 'bot', groups: ['deploy', 'ops'], email: '' };
    const use = { id: 'tokid', kind: 'service' as const };
    expect(decodeJwt(await signer.signToken(use, tokenStaff, 'app')).groups).toEqual([
      'deploy',
      'ops',
    ]);
    const fewer = { ...tokenStaff, groups: ['ops'] };
    expect(decodeJwt(await signer.signToken(use, fewer, 'app')).groups).toEqual(['ops']);
  });
});
