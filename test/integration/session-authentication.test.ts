/**
 * What the session knows about how it was authenticated (issue 14), end to end on real Redis:
 * a password login records `pwd`, validate answers it (body, the headers nginx auth_request
 * passes on, the signed identity's amr/acr/auth_time verified with jose), a record written before
 * reads as a password login, and a step-up changes all of it and is streamed to the gateways as
 * a `changed` event (not a revocation).
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createParser } from 'eventsource-parser';
import { createLocalJWKSet, type JSONWebKeySet, jwtVerify } from 'jose';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis, type RedisClient } from '../../common/src/redis.js';
import { createRedisSessionRepository } from '../../session-service/src/domain/session-repository-redis.js';
import { silentLogger } from '../helpers/logger.js';
import { waitFor } from '../helpers/ports.js';
import { TEST_INTERNAL_TOKEN } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import {
  buildSessionService,
  cookiePairOf,
  NO_THROTTLE,
  sidOf,
  signedSessionCookie,
} from '../helpers/session-service.js';
import {
  sealedRecordOf,
  sessionKeyOf,
  storedSessionId,
  testRecords,
} from '../helpers/stored-sessions.js';
import { writeTestUsers } from '../helpers/users.js';

const PASSWORD = 'correct horse battery';
let redis: RedisServer;
let client: RedisClient;
let service: Awaited<ReturnType<typeof buildSessionService>>;
let server: Server;
let base: string;
let userId: string;

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeTestUsers([{ username: 'alice', password: PASSWORD, groups: ['dev'] }]);
  userId = users.users[0]?.id ?? '';
  service = await buildSessionService({
    redisUrl: redis.url,
    usersFile: users.path,
    throttleLimits: NO_THROTTLE,
  });
  server = service.app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  client = createRedis({ url: redis.url }, silentLogger);
  await client.connect();
});

afterAll(async () => {
  server?.close();
  await client?.close();
  await service?.close();
  await redis?.stop();
});

async function login() {
  const before = Date.now();
  const res = await request(service.app)
    .post('/auth/login')
    .set('content-type', 'application/json')
    .send(JSON.stringify({ username: 'alice', password: PASSWORD }));
  expect(res.status).toBe(200);
  return {
    before,
    after: Date.now(),
    cookie: cookiePairOf(res.headers['set-cookie']),
    sid: sidOf(res.headers['set-cookie']),
  };
}

const validate = (cookie: string) =>
  request(service.app).get('/auth/validate').set('cookie', cookie);

/** The signed identity the gateway gets for `aud`, verified against the service's JWKS. */
async function verifiedClaims(cookie: string, aud = 'app') {
  const res = await request(service.app)
    .get(`/internal/validate?aud=${aud}`)
    .set('authorization', `Bearer ${TEST_INTERNAL_TOKEN}`)
    .set('cookie', cookie);
  expect(res.status).toBe(200);
  const jwks = (await request(service.app).get('/auth/.well-known/jwks.json'))
    .body as JSONWebKeySet;
  const { payload } = await jwtVerify(
    String(res.headers['x-auth-request-jwt']),
    createLocalJWKSet(jwks),
    { audience: aud, issuer: 'gatehouse', algorithms: ['EdDSA'] },
  );
  return payload;
}

/** A gateway's revocation stream: the events it received, in order. */
async function revocationStream() {
  const controller = new AbortController();
  const res = await fetch(`${base}/internal/revocations`, {
    headers: { authorization: `Bearer ${TEST_INTERNAL_TOKEN}`, accept: 'text/event-stream' },
    signal: controller.signal,
  });
  expect(res.status).toBe(200);
  const events: { event: string; data: string }[] = [];
  const parser = createParser({
    onEvent: (e) => events.push({ event: e.event ?? 'message', data: e.data }),
  });
  const reader = res.body?.getReader();
  const decoder = new TextDecoder();
  void (async () => {
    try {
      for (;;) {
        const chunk = await reader?.read();
        if (!chunk || chunk.done) return;
        parser.feed(decoder.decode(chunk.value, { stream: true }));
      }
    } catch {
      // aborted
    }
  })();
  await waitFor(async () => events.some((e) => e.event === 'hello'), 5000, 'the feed is live');
  return { events, stop: () => controller.abort() };
}

describe('a password login', () => {
  it('is recorded as amr pwd, aal1, authenticated at the login, and validate says so in body and headers', async () => {
    const { cookie, before, after } = await login();
    const res = await validate(cookie);
    expect(res.status).toBe(200);
    expect(res.body.authentication.amr).toEqual(['pwd']);
    expect(res.body.authentication.acr).toBe('aal1');
    const authTime = Date.parse(res.body.authentication.authTime);
    expect(authTime).toBeGreaterThanOrEqual(before);
    expect(authTime).toBeLessThanOrEqual(after);
    expect(res.headers['x-auth-request-amr']).toBe('pwd');
    expect(res.headers['x-auth-request-acr']).toBe('aal1');
    expect(res.headers['x-auth-request-auth-time']).toBe(String(Math.floor(authTime / 1000)));
    // Beside the identity headers, as before.
    expect(res.headers['x-auth-request-user']).toBe('alice');
  });

  it('signs amr, acr and auth_time into the identity JWT (verified with jose)', async () => {
    const { cookie, before } = await login();
    const claims = await verifiedClaims(cookie);
    expect(claims).toMatchObject({ sub: userId, name: 'alice', amr: ['pwd'], acr: 'aal1' });
    expect(claims.auth_time).toBeGreaterThanOrEqual(Math.floor(before / 1000));
    expect(claims.auth_time).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
  });
});

describe('a session record written before issue 14', () => {
  it('reads as a password login authenticated when it was created', async () => {
    const sid = 'legacy-session-id-legacy-session-id-0123456';
    const createdAt = Date.now() - 60_000;
    const auth = { userId, username: 'alice', groups: ['dev'], email: '', createdAt };
    await client.set(sessionKeyOf(sid), sealedRecordOf(sid, { auth }), { PX: 600_000 });
    const res = await validate(`gatehouse=${signedSessionCookie(sid)}`);
    expect(res.status).toBe(200);
    expect(res.body.authentication).toEqual({
      amr: ['pwd'],
      acr: 'aal1',
      authTime: new Date(createdAt).toISOString(),
    });
    expect(res.headers['x-auth-request-auth-time']).toBe(String(Math.floor(createdAt / 1000)));
  });
});

describe('a step-up', () => {
  it('makes the session aal2 at once (validate, headers, a newly signed JWT) and streams `changed`, not `revoke`', async () => {
    const { cookie, sid } = await login();
    const before = await verifiedClaims(cookie); // cached by the signer: the step-up must not reuse it
    expect(before.acr).toBe('aal1');
    const stream = await revocationStream();
    try {
      // The same repository the service runs on: the same Redis, prefix and sealing key.
      const sessions = createRedisSessionRepository({
        redis: client,
        lifetimes: {
          idleSeconds: 1800,
          absoluteSeconds: 43200,
          rememberIdleSeconds: 1800,
          rememberAbsoluteSeconds: 43200,
        },
        records: testRecords,
      });
      const at = Date.now();
      expect(await sessions.stepUp(sid, ['otp'], at)).toEqual({
        amr: ['pwd', 'otp', 'mfa'],
        acr: 'aal2',
        authTime: at,
      });
      await waitFor(
        async () => stream.events.some((e) => e.event === 'changed'),
        5000,
        'the changed event',
      );
      const changed = stream.events.filter((e) => e.event === 'changed');
      expect(changed.map((e) => JSON.parse(e.data))).toEqual([{ sids: [storedSessionId(sid)] }]);
      expect(stream.events.some((e) => e.event === 'revoke')).toBe(false);

      const res = await validate(cookie);
      expect(res.status).toBe(200);
      expect(res.body.authentication).toEqual({
        amr: ['pwd', 'otp', 'mfa'],
        acr: 'aal2',
        authTime: new Date(at).toISOString(),
      });
      expect(res.headers['x-auth-request-amr']).toBe('pwd,otp,mfa');
      expect(res.headers['x-auth-request-acr']).toBe('aal2');
      const after = await verifiedClaims(cookie);
      expect(after).toMatchObject({ amr: ['pwd', 'otp', 'mfa'], acr: 'aal2' });
      expect(after.auth_time).toBe(Math.floor(at / 1000));
    } finally {
      stream.stop();
    }
  });
});
