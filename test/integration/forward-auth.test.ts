import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_INTERNAL_TOKEN } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { buildSessionService, type SessionServiceApp } from '../helpers/session-service.js';
import { writeTestUsers } from '../helpers/users.js';

let redis: RedisServer;
let trusted: SessionServiceApp;
let untrusted: SessionServiceApp;
let cookie: string;

/** What Traefik's ForwardAuth middleware sends to the auth address for a browser request. */
const traefik = {
  accept: 'text/html,application/xhtml+xml',
  'x-forwarded-method': 'GET',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'app.example.com',
  'x-forwarded-uri': '/reports/2026?tab=q1',
};

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeTestUsers([
    { username: 'alice', password: 'correct horse battery', groups: ['finance'] },
  ]);
  trusted = await buildSessionService({ redisUrl: redis.url, usersFile: users.path });
  untrusted = await buildSessionService({
    redisUrl: redis.url,
    usersFile: users.path,
    env: { TRUST_PROXY: 'false' },
  });
  const login = await request(trusted.app)
    .post('/auth/login')
    .send({ username: 'alice', password: 'correct horse battery' });
  cookie = ([] as string[]).concat(login.headers['set-cookie'] ?? [])[0]?.split(';')[0] ?? '';
});
afterAll(async () => {
  await trusted?.close();
  await untrusted?.close();
  await redis?.stop();
});

describe('GET /auth/validate as a Traefik ForwardAuth target', () => {
  it('sends a browser without a session to the login page, back to the forwarded URI', async () => {
    const res = await request(trusted.app).get('/auth/validate').set(traefik);
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe(
      `/auth/login?rd=${encodeURIComponent('/reports/2026?tab=q1')}`,
    );
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('answers an API client 401 JSON, as for nginx auth_request', async () => {
    const res = await request(trusted.app)
      .get('/auth/validate')
      .set({ ...traefik, accept: 'application/json' });
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('UNAUTHENTICATED');
  });

  it('answers 200 with the identity headers Traefik copies (authResponseHeaders), unsigned', async () => {
    const res = await request(trusted.app)
      .get('/auth/validate?aud=reports')
      .set({ ...traefik, cookie });
    expect(res.status).toBe(200);
    expect(res.headers['x-auth-request-user']).toBe('alice');
    expect(res.headers['x-auth-request-groups']).toBe('finance');
    expect(res.headers['x-auth-request-jwt']).toBeUndefined();
  });

  it('adds the signed identity on /internal/validate, for a proxy that presents the internal token', async () => {
    const res = await request(trusted.app)
      .get('/internal/validate?aud=reports')
      .set({ ...traefik, cookie, authorization: `Bearer ${TEST_INTERNAL_TOKEN}` });
    expect(res.status).toBe(200);
    expect(res.headers['x-auth-request-user']).toBe('alice');
    expect(res.headers['x-auth-request-jwt']).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  });

  it('ignores X-Forwarded-Uri from a peer that is not a trusted proxy', async () => {
    const res = await request(untrusted.app).get('/auth/validate').set(traefik);
    expect(res.status).toBe(401);
    expect(res.headers.location).toBeUndefined();
  });

  it('never redirects to a forwarded URI that is not a local path', async () => {
    for (const uri of ['//evil.example/x', 'https://evil.example/', 'evil']) {
      const res = await request(trusted.app)
        .get('/auth/validate')
        .set({ ...traefik, 'x-forwarded-uri': uri });
      expect(res.status, uri).toBe(401);
    }
  });
});
