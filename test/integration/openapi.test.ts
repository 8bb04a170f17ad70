import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { newToken } from '../../session-service/src/domain/access-tokens.js';
import { reservedDeadPort } from '../helpers/ports.js';
import { ROOT, TEST_INTERNAL_TOKEN } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import {
  buildSessionService,
  cookiePairOf,
  type SessionServiceApp,
} from '../helpers/session-service.js';
import { totpAt } from '../helpers/totp.js';
import { writeTestUsers } from '../helpers/users.js';

type Spec = { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
const spec = parse(readFileSync(join(ROOT, 'docs/openapi.yaml'), 'utf8')) as Spec;
const ajv = new Ajv2020.default({ strict: false, allErrors: true });
addFormats.default(ajv);
ajv.addSchema(spec as object, 'openapi');

const ADMIN = 'a'.repeat(40);
let redis: RedisServer;
let service: SessionServiceApp;
const exercised = new Set<string>();
/** The service's clock for TOTP codes; each code below is taken a few steps after the last. */
const clock = { t: Date.now() };
const nextCode = (secret: string) => {
  clock.t += 120_000;
  return totpAt(secret, clock.t);
};

/** The documented operation for a concrete path, e.g. /auth/sessions/abc -> /auth/sessions/{id}. */
function templateOf(path: string): string | undefined {
  const clean = path.split('?')[0] ?? '';
  return Object.keys(spec.paths).find((t) =>
    new RegExp(`^${t.replace(/\{[^}]+\}/g, '[^/]+').replaceAll('.', '\\.')}$`).test(clean),
  );
}

/** Every answer must be documented (status) and, when JSON, match its schema. */
function conforms(method: string, path: string, res: request.Response) {
  const template = templateOf(path);
  expect(template, `${method} ${path} is documented`).toBeDefined();
  const op = spec.paths[template ?? '']?.[method.toLowerCase()];
  expect(op, `${method} ${template} is documented`).toBeDefined();
  exercised.add(`${method.toUpperCase()} ${template}`);
  const status = String(res.status);
  expect(Object.keys(op?.responses ?? {}), `${method} ${path} may answer ${status}`).toContain(
    status,
  );
  if (String(res.headers['content-type'] ?? '').startsWith('application/json')) {
    const pointer = `openapi#/paths/${(template ?? '').replaceAll('~', '~0').replaceAll('/', '~1')}/${method.toLowerCase()}/responses/${status}`;
    const response = op?.responses[status] as { $ref?: string };
    const ref = response?.$ref
      ? `openapi${response.$ref}/content/application~1json/schema`
      : `${pointer}/content/application~1json/schema`;
    const validate = ajv.getSchema(ref);
    expect(validate, `schema for ${method} ${template} ${status}`).toBeDefined();
    const ok = validate?.(res.body);
    expect(ok, `${method} ${path} ${status}: ${JSON.stringify(validate?.errors)}`).toBe(true);
  }
}

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeTestUsers([
    {
      username: 'alice',
      password: 'correct horse battery',
      groups: ['dev'],
      email: 'a@example.com',
    },
  ]);
  // A provider nobody answers for: its operations are exercised by their refusals (the flows
  // themselves: test/integration/oidc-relying-party.test.ts, test/browser/oidc.test.ts).
  const sources = join(mkdtempSync(join(tmpdir(), 'gatehouse-openapi-')), 'sources.yaml');
  writeFileSync(
    sources,
    `oidc:\n  - id: acme\n    name: Acme\n    issuer: http://127.0.0.1:${await reservedDeadPort()}\n    clientId: gatehouse\n    clientSecretEnv: ACME_SECRET\n`,
  );
  service = await buildSessionService({
    redisUrl: redis.url,
    usersFile: users.path,
    env: {
      ADMIN_TOKEN: ADMIN,
      IDENTITY_SOURCES_FILE: sources,
      ACME_SECRET: 'acme-secret',
      PUBLIC_URL: 'http://localhost:8080',
    },
    now: () => clock.t,
  });
});
afterAll(async () => {
  await service?.close();
  await redis?.stop();
});

describe('docs/openapi.yaml against real answers', () => {
  it('describes every answer of every endpoint', async () => {
    const app = service.app;
    const call = async (
      method: 'get' | 'post' | 'delete' | 'patch',
      path: string,
      setup: (r: request.Test) => request.Test = (r) => r,
    ) => {
      const res = await setup(request(app)[method](path));
      conforms(method, path, res);
      return res;
    };
    const json = (body: unknown) => (r: request.Test) =>
      r.set('content-type', 'application/json').send(JSON.stringify(body));

    await call('get', '/auth/login?rd=/x');
    await call('post', '/auth/login', json({ username: 'alice', password: 'wrong password' }));
    await call('post', '/auth/login', json({ username: 5 }));
    await call('post', '/auth/login', (r) => r.set('content-type', 'text/plain').send('x'));
    await call('post', '/auth/login', (r) => r.set('content-type', 'application/json').send('{'));
    const login = await call(
      'post',
      '/auth/login',
      json({ username: 'alice', password: 'correct horse battery' }),
    );
    const cookie =
      ([] as string[]).concat(login.headers['set-cookie'] ?? [])[0]?.split(';')[0] ?? '';
    // a second session, so there is another one to revoke
    await request(app)
      .post('/auth/login')
      .set('content-type', 'application/json')
      .send(JSON.stringify({ username: 'alice', password: 'correct horse battery' }));

    await call('get', '/auth/validate');
    await call('get', '/auth/validate?aud=default', (r) => r.set('cookie', cookie));
    const internal = (r: request.Test) => r.set('authorization', `Bearer ${TEST_INTERNAL_TOKEN}`);
    await call('get', '/internal/validate?aud=default', (r) => internal(r).set('cookie', cookie));
    await call('get', '/internal/validate?aud=default', internal);
    await call('get', '/internal/validate?aud=default', (r) => r.set('cookie', cookie));
    await call('get', '/internal/validate', (r) => internal(r).set('cookie', cookie));
    const list = await call('get', '/auth/sessions', (r) => r.set('cookie', cookie));
    await call('get', '/auth/sessions');
    const other = (list.body.sessions as Array<{ id: string; current: boolean }>).find(
      (s) => !s.current,
    );
    await call('delete', `/auth/sessions/${other?.id}`, (r) => r.set('cookie', cookie));
    await call('delete', '/auth/sessions/nope', (r) => r.set('cookie', cookie));
    await call('post', '/auth/logout-all', (r) => json({})(r.set('cookie', cookie)));
    await call('get', '/auth/.well-known/jwks.json');

    const admin = (r: request.Test) => r.set('authorization', `Bearer ${ADMIN}`);
    await call('get', '/admin/users/alice/sessions', admin);
    await call('get', '/admin/users/alice/sessions');
    await call('get', '/admin/users/nobody/sessions', admin);
    const adminList = await request(app)
      .get('/admin/users/alice/sessions')
      .use(admin as never)
      .set('authorization', `Bearer ${ADMIN}`);
    await call(
      'delete',
      `/admin/users/alice/sessions/${adminList.body.sessions[0]?.id ?? 'x'}`,
      admin,
    );
    await call('delete', '/admin/users/alice/sessions', admin);

    {
      // Access tokens: made with a fresh sign-in, used on both validates, listed, revoked.
      const fresh = await request(app)
        .post('/auth/login')
        .set('content-type', 'application/json')
        .send(JSON.stringify({ username: 'alice', password: 'correct horse battery' }));
      const mine = cookiePairOf(fresh.headers['set-cookie']);
      const withCookie = (body: unknown) => (r: request.Test) => json(body)(r.set('cookie', mine));
      const made = await call(
        'post',
        '/auth/tokens',
        withCookie({ name: 'ci', expiresInDays: 7, scope: { groups: ['dev'], routes: ['api'] } }),
      );
      expect(made.status).toBe(201);
      await call('post', '/auth/tokens', withCookie({ name: '', expiresInDays: 7 }));
      await call(
        'post',
        '/auth/tokens',
        withCookie({ name: 'x', expiresInDays: 7, scope: { groups: ['admins'] } }),
      );
      await call('get', '/auth/tokens', (r) => r.set('cookie', mine));
      await call('get', '/auth/tokens', (r) => r.set('authorization', `Bearer ${made.body.token}`));
      const bearer = (token: string) => (r: request.Test) =>
        r.set('authorization', `Bearer ${token}`);
      const used = await call('get', '/auth/validate', bearer(made.body.token));
      expect(used.body.token.id).toBe(made.body.id);
      await call('get', '/auth/validate', bearer(newToken('personal')));
      const signed = await call('get', '/internal/validate?aud=api', (r) =>
        internal(r).set('x-gatehouse-authorization', `Bearer ${made.body.token}`),
      );
      expect(signed.headers['x-auth-request-jwt']).toBeTypeOf('string');
      await call('delete', `/auth/tokens/${made.body.id}`, (r) => r.set('cookie', mine));
      await call('delete', `/auth/tokens/${made.body.id}`, (r) => r.set('cookie', mine));
      await call('post', `/auth/tokens/${made.body.id}/revoke`, withCookie({}));
      await call('post', '/auth/tokens/revoke-all', withCookie({}));
      await call('post', '/auth/tokens/revoke-all', json({}));
      // Past the recent sign-in: the service's clock moves on 11 minutes.
      clock.t += 11 * 60_000;
      const late = await call(
        'post',
        '/auth/tokens',
        withCookie({ name: 'late', expiresInDays: 1 }),
      );
      expect(late.body.error).toBe('REAUTHENTICATION_REQUIRED');

      // Service accounts (admin API) and their tokens.
      const asAdmin = (body?: unknown) => (r: request.Test) =>
        body === undefined ? admin(r) : json(body)(admin(r));
      const accounts = '/admin/service-accounts';
      await call(
        'post',
        accounts,
        asAdmin({ name: 'ci-bot', groups: ['deploy'], description: 'CI' }),
      );
      await call('post', accounts, asAdmin({ name: 'alice', groups: [] }));
      await call('post', accounts, asAdmin({ name: 5 }));
      await call('post', accounts, json({ name: 'x' }));
      await call('get', accounts, asAdmin());
      await call('get', accounts);
      await call('get', `${accounts}/ci-bot`, asAdmin());
      await call('get', `${accounts}/nobody`, asAdmin());
      await call('patch', `${accounts}/ci-bot`, asAdmin({ groups: ['deploy', 'dev'] }));
      await call('patch', `${accounts}/ci-bot`, asAdmin({ disabled: 'yes' }));
      await call('patch', `${accounts}/nobody`, asAdmin({ disabled: true }));
      const sat = await call(
        'post',
        `${accounts}/ci-bot/tokens`,
        asAdmin({ name: 'job', expiresInDays: 1 }),
      );
      expect(sat.status).toBe(201);
      await call('post', `${accounts}/nobody/tokens`, asAdmin({ name: 'job', expiresInDays: 1 }));
      const service = await call('get', '/auth/validate', bearer(sat.body.token));
      expect(service.body.user.username).toBe('ci-bot');
      await call('get', `${accounts}/ci-bot/tokens`, asAdmin());
      await call('get', `${accounts}/nobody/tokens`, asAdmin());
      await call('delete', `${accounts}/ci-bot/tokens/${sat.body.id}`, asAdmin());
      await call('delete', `${accounts}/ci-bot/tokens/${sat.body.id}`, asAdmin());
      await call('patch', `${accounts}/ci-bot`, asAdmin({ disabled: true }));
      await call('post', `${accounts}/ci-bot/tokens`, asAdmin({ name: 'job', expiresInDays: 1 }));
      await call('delete', `${accounts}/ci-bot`, asAdmin());
      await call('delete', `${accounts}/ci-bot`, asAdmin());
    }

    {
      // Second factors: alice enrols (the page gives the secret), then the JSON login asks for it.
      const password = { username: 'alice', password: 'correct horse battery' };
      const fresh = await request(app)
        .post('/auth/login')
        .set('content-type', 'application/json')
        .send(JSON.stringify(password));
      const cookie = cookiePairOf(fresh.headers['set-cookie']);
      const enrolPage = await request(app)
        .get('/auth/security/totp')
        .set('accept', 'text/html')
        .set('cookie', cookie);
      const secret = /secret=([A-Z2-7]+)/.exec(enrolPage.text)?.[1] ?? '';
      const enrolled = await request(app)
        .post('/auth/security/totp')
        .set('cookie', cookie)
        .set('content-type', 'application/json')
        .send(JSON.stringify({ totp: nextCode(secret) }));
      expect(enrolled.status).toBe(200);
      const recoveryCodes = enrolled.body.recoveryCodes as string[];
      await call('post', '/auth/login', json(password));
      await call('post', '/auth/login', json({ ...password, totp: '000000' }));
      const mfa = await call('post', '/auth/login', json({ ...password, totp: nextCode(secret) }));
      const aal2 = cookiePairOf(mfa.headers['set-cookie']);
      await call('post', '/auth/login', json({ ...password, recovery_code: recoveryCodes[0] }));
      await call('get', '/auth/security', (r) => r.set('cookie', aal2));
      await call('get', '/auth/security');
      await call('get', '/auth/step-up?need=second-factor&rd=/x', (r) =>
        r.set('cookie', aal2).set('accept', 'text/html'),
      );
      await call('get', '/auth/step-up?need=webauthn', (r) => r.set('cookie', aal2));
      await call('get', '/auth/step-up?need=nothing', (r) => r.set('cookie', aal2));
      await call('post', '/auth/step-up', (r) =>
        json({ need: 'second-factor', totp: nextCode(secret) })(r.set('cookie', aal2)),
      );
      await call('post', '/auth/step-up', (r) =>
        json({ need: 'recent-authentication', password: 'wrong', totp: '1' })(
          r.set('cookie', aal2),
        ),
      );
      await call('post', '/auth/security/recovery-codes', (r) =>
        json({ totp: nextCode(secret) })(r.set('cookie', aal2)),
      );
      await call('post', '/auth/security/recovery-codes', (r) =>
        json({ totp: '123' })(r.set('cookie', aal2)),
      );
      // WebAuthn: options, and answers that do not verify (browser/webauthn.test.ts has real ones).
      const credential = { id: 'not-a-key', response: {} };
      await call('post', '/auth/security/webauthn/options', (r) => json({})(r.set('cookie', aal2)));
      await call('post', '/auth/security/webauthn', (r) =>
        json({ name: 'Key', credential })(r.set('cookie', aal2)),
      );
      // One key (none here: browser/webauthn.test.ts and second-factor-keys.test.ts have real ones).
      await call('post', '/auth/security/webauthn/not-a-key/name', (r) =>
        json({ name: 'Key' })(r.set('cookie', aal2)),
      );
      await call('post', '/auth/security/webauthn/not-a-key/remove', (r) =>
        json({})(r.set('cookie', aal2)),
      );
      await call('delete', '/auth/security/webauthn/not-a-key', (r) => r.set('cookie', aal2));
      await call('post', '/auth/step-up/webauthn/options', (r) => json({})(r.set('cookie', aal2)));
      await call('post', '/auth/step-up/webauthn', (r) =>
        json({ rd: '/', credential })(r.set('cookie', aal2)),
      );
      await call('post', '/auth/login/webauthn/options', json({}));
      await call('post', '/auth/login/webauthn', json({ credential }));
      await call('post', '/auth/login/passkey/options', json({}));
      await call('post', '/auth/login/passkey', json({ credential }));
      await call('post', '/auth/security/totp/remove', (r) =>
        json({ code: nextCode(secret) })(r.set('cookie', aal2)),
      );
    }

    const third = await request(app)
      .post('/auth/login')
      .set('content-type', 'application/json')
      .send(JSON.stringify({ username: 'alice', password: 'correct horse battery' }));
    const cookie3 =
      ([] as string[]).concat(third.headers['set-cookie'] ?? [])[0]?.split(';')[0] ?? '';
    await call('post', '/auth/logout', (r) => json({})(r.set('cookie', cookie3)));
    // OpenID Connect: the provider does not answer; no such provider; a callback that is not
    // this browser's; a reauth without a session and by a users-file user; a logout token missing.
    const asJson = (r: request.Test) => r.set('accept', 'application/json');
    await call('get', '/auth/oidc/acme/start?rd=/x', asJson);
    await call('get', '/auth/oidc/nope/start', asJson);
    await call('get', '/auth/oidc/acme/callback?state=forged&code=x', asJson);
    await call('get', '/auth/oidc/acme/reauth', asJson);
    const fourth = await request(app)
      .post('/auth/login')
      .set('content-type', 'application/json')
      .send(JSON.stringify({ username: 'alice', password: 'correct horse battery' }));
    const cookie4 = cookiePairOf(fourth.headers['set-cookie']);
    await call('get', '/auth/oidc/acme/reauth', (r) => asJson(r.set('cookie', cookie4)));
    await call('post', '/auth/oidc/acme/backchannel-logout', (r) =>
      r.type('form').send('logout_token='),
    );
    await call('get', '/healthz');
    await call('get', '/readyz');
    await call('get', '/metrics');
  });

  it('has every documented operation exercised by the test above', () => {
    const documented = Object.entries(spec.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    const missing = documented.filter(
      (op) => !exercised.has(op) && op !== 'POST /auth/sessions/{id}/revoke',
    );
    expect(missing).toEqual([]);
  });
});
