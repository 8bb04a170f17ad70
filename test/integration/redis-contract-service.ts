/**
 * The Redis contract's end-to-end part (run on every topology by redis-contract.test.ts): the
 * session-service built with createApp logs in, validates and logs out, and leaves nothing in
 * Redis a reader could use.
 */
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { storedSessionId } from '../../common/src/session-id.js';
import { waitFor } from '../helpers/ports.js';
import { TEST_INTERNAL_TOKEN } from '../helpers/processes.js';
import { dumpRedis, occurrences, recordChannel } from '../helpers/redis-dump.js';
import {
  buildSessionService,
  cookiePairOf,
  jsonLogout,
  NO_THROTTLE,
  sidOf,
} from '../helpers/session-service.js';
import { testSigningKeys } from '../helpers/stored-sessions.js';
import { writeTestUsers } from '../helpers/users.js';
import type { ContractContext } from './redis-contract-context.js';

export function describeServiceContract(ctx: ContractContext) {
  const { prefix } = ctx;

  describe('the session-service (createApp)', () => {
    it('logs in with JSON, validates the cookie, logs out, then refuses it', async () => {
      const users = await writeTestUsers([{ username: 'dave', password: 'correct horse 42' }]);
      const service = await buildSessionService({
        usersFile: users.path,
        env: { ...ctx.topology.env, REDIS_PREFIX: prefix },
        throttleLimits: NO_THROTTLE,
      });
      try {
        expect((await request(service.app).get('/readyz')).status).toBe(200);
        const login = await request(service.app)
          .post('/auth/login')
          .set('content-type', 'application/json')
          .send(JSON.stringify({ username: 'dave', password: 'correct horse 42' }));
        expect(login.status).toBe(200);
        const cookie = cookiePairOf(login.headers['set-cookie']);

        const valid = await request(service.app).get('/auth/validate').set('cookie', cookie);
        expect(valid.status).toBe(200);
        expect(valid.headers['x-auth-request-user']).toBe('dave');

        const logout = await jsonLogout(service.app, cookie);
        expect(logout.status).toBe(204);
        expect(
          (await request(service.app).get('/auth/validate').set('cookie', cookie)).status,
        ).toBe(401);
      } finally {
        await service.close();
      }
    });

    it('leaves nothing in Redis a reader could use: after logins, a signed identity, a logout and a revocation, no key, value or revocation event holds a session id, no session record holds the username, and nothing holds the private signing key', async () => {
      const username = `dump-${randomBytes(6).toString('hex')}`;
      const password = 'correct horse 43';
      const users = await writeTestUsers([{ username, password }]);
      const service = await buildSessionService({
        usersFile: users.path,
        env: { ...ctx.topology.env, REDIS_PREFIX: prefix },
        throttleLimits: NO_THROTTLE,
      });
      const channel = await recordChannel(
        ctx.topology.masterUrls[0] as string,
        `${prefix}revocations`,
      );
      try {
        const login = async () => {
          const res = await request(service.app)
            .post('/auth/login')
            .set('content-type', 'application/json')
            .send(JSON.stringify({ username, password }));
          expect(res.status).toBe(200);
          return {
            cookie: cookiePairOf(res.headers['set-cookie']),
            sid: sidOf(res.headers['set-cookie']),
          };
        };
        const [loggedOut, revoked, kept] = [await login(), await login(), await login()];
        // A signed identity (the gateway's internal validate): the signing key now exists.
        const signed = await request(service.app)
          .get('/internal/validate?aud=demo-app')
          .set('authorization', `Bearer ${TEST_INTERNAL_TOKEN}`)
          .set('cookie', kept.cookie);
        expect(signed.status).toBe(200);
        expect(signed.headers['x-auth-request-jwt']).toBeTruthy();
        for (const s of [loggedOut, revoked, kept])
          expect(
            (await request(service.app).get('/auth/validate').set('cookie', s.cookie)).status,
          ).toBe(200);

        const logout = await jsonLogout(service.app, loggedOut.cookie);
        expect(logout.status).toBe(204);
        const list = await request(service.app).get('/auth/sessions').set('cookie', kept.cookie);
        const other = (list.body.sessions as { id: string; current: boolean }[]).find(
          (s) => !s.current,
        );
        expect(other).toBeDefined();
        const revoke = await request(service.app)
          .delete(`/auth/sessions/${other?.id}`)
          .set('cookie', kept.cookie);
        expect(revoke.status).toBe(204);
        expect(
          (await request(service.app).get('/auth/validate').set('cookie', revoked.cookie)).status,
        ).toBe(401);
        // Both ends were published (by stored id): the recording heard what a subscriber hears.
        await waitFor(
          async () =>
            [loggedOut, revoked].every((s) =>
              channel.messages.some((m) => m.includes(storedSessionId(s.sid))),
            ),
          5000,
          'both revocation events on the channel',
        );

        const dump = await dumpRedis(ctx.topology.masterUrls, prefix);
        const records = dump.filter((k) => k.key.startsWith(`${prefix}sess:`));
        expect(records.length).toBeGreaterThanOrEqual(1); // the kept session
        for (const s of [loggedOut, revoked, kept]) {
          expect(occurrences(dump, s.sid), 'session id in Redis').toEqual([]);
          expect(
            channel.messages.filter((m) => m.includes(s.sid)),
            'session id published',
          ).toEqual([]);
        }
        expect(occurrences(records, username), 'username in a session record').toEqual([]);
        expect(occurrences(records, '"auth"'), 'a session record in clear').toEqual([]);
        // The private key's `d`, known only by opening the sealed key with the test's key.
        const keyName = `${prefix}jwt:signing-key`;
        const sealedKey = dump.find((k) => k.key === keyName)?.values[0] ?? '';
        const { d } = JSON.parse(testSigningKeys.open(sealedKey, keyName).plaintext) as {
          d: string;
        };
        expect(d.length).toBeGreaterThan(20);
        expect(occurrences(dump, d), 'the private signing key in Redis').toEqual([]);
        expect(occurrences(dump, '"kty"'), 'a JWK in clear').toEqual([]);
      } finally {
        await channel.stop();
        await service.close();
      }
    });
  });
}
