/**
 * The signed identity assertion, the demo-app requiring it, and its signing key in Redis (lost,
 * and at rest). About 300 lines over one service and key set; nothing to gain by a split.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  type JWK,
} from 'jose';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAssertionVerifier } from '../../common/src/verify-identity.js';
import { createApp as createDemoApp } from '../../demo-app/src/app.js';
import {
  ASSERTION_TTL_SECONDS,
  createAssertionSigner,
  KEY_CHECK_MS,
} from '../../session-service/src/domain/assertions.js';
import { createSealer } from '../../session-service/src/domain/sealing.js';
import { silentLogger } from '../helpers/logger.js';
import { TEST_INTERNAL_TOKEN } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { buildSessionService, type SessionServiceApp } from '../helpers/session-service.js';
import { testSigningKeys } from '../helpers/stored-sessions.js';
import { writeTestUsers } from '../helpers/users.js';

let redis: RedisServer;
let service: SessionServiceApp;
let server: Server;
let jwksUrl: string;
let cookie: string;

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeTestUsers([
    {
      username: '<b>alice</b>',
      password: 'correct horse battery',
      groups: ['dev'],
      email: 'a@example.com',
    },
  ]);
  service = await buildSessionService({ redisUrl: redis.url, usersFile: users.path });
  server = service.app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/auth/.well-known/jwks.json`;
  const login = await request(service.app)
    .post('/auth/login')
    .send({ username: '<b>alice</b>', password: 'correct horse battery' });
  cookie = ([] as string[]).concat(login.headers['set-cookie'] ?? [])[0]?.split(';')[0] ?? '';
});
afterAll(async () => {
  server?.close();
  await service?.close();
  await redis?.stop();
});

/** What the gateway gets: the internal validate, with the internal token. */
async function assertionFor(aud: string) {
  const res = await request(service.app)
    .get(`/internal/validate?aud=${aud}`)
    .set('authorization', `Bearer ${TEST_INTERNAL_TOKEN}`)
    .set('cookie', cookie);
  expect(res.status).toBe(200);
  return String(res.headers['x-auth-request-jwt']);
}

describe('the signed identity assertion', () => {
  it('is an EdDSA JWT with sub, name, groups, email, aud = the route and exp <= 60 s', async () => {
    const token = await assertionFor('default');
    expect(decodeProtectedHeader(token).alg).toBe('EdDSA');
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({
      name: '<b>alice</b>',
      groups: ['dev'],
      email: 'a@example.com',
      aud: 'default',
      iss: 'gatehouse',
    });
    expect(typeof claims.sub).toBe('string');
    expect(Number(claims.exp) - Math.floor(Date.now() / 1000)).toBeLessThanOrEqual(60);
  });

  it('is only issued to the internal caller, never by the public validate, never without a session', async () => {
    for (const path of ['/auth/validate', '/auth/validate?aud=default']) {
      const plain = await request(service.app).get(path).set('cookie', cookie);
      expect(plain.status, path).toBe(200);
      expect(plain.headers['x-auth-request-jwt'], path).toBeUndefined();
    }
    const anonymous = await request(service.app)
      .get('/internal/validate?aud=default')
      .set('authorization', `Bearer ${TEST_INTERNAL_TOKEN}`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error).toBe('UNAUTHENTICATED');
    expect(anonymous.headers['x-auth-request-jwt']).toBeUndefined();
  });

  it('verifies against the published JWKS, and the JWKS holds no private key', async () => {
    const jwks = await request(service.app).get('/auth/.well-known/jwks.json');
    expect(jwks.status).toBe(200);
    expect(jwks.body.keys).toHaveLength(1);
    expect(jwks.body.keys[0]).toMatchObject({
      kty: 'OKP',
      crv: 'Ed25519',
      alg: 'EdDSA',
      use: 'sig',
    });
    expect(jwks.body.keys[0].d).toBeUndefined();
    const verify = createAssertionVerifier({ jwksUrl, audience: 'default', issuer: 'gatehouse' });
    expect((await verify(await assertionFor('default'))).name).toBe('<b>alice</b>');
  });

  it('is refused for another audience, when tampered with, or when missing', async () => {
    const verify = createAssertionVerifier({ jwksUrl, audience: 'default' });
    await expect(verify(await assertionFor('billing'))).rejects.toThrow(/rejected/);
    const token = await assertionFor('default');
    const [h, p, s] = token.split('.');
    const forgedPayload = Buffer.from(
      JSON.stringify({ ...decodeJwt(token), name: 'root' }),
    ).toString('base64url');
    await expect(verify(`${h}.${forgedPayload}.${s}`)).rejects.toThrow(/rejected/);
    await expect(verify(`${h}.${p}.${'A'.repeat(s?.length ?? 10)}`)).rejects.toThrow(/rejected/);
    await expect(verify(undefined)).rejects.toThrow(/no identity/);
  });
});

describe('the demo-app with signed identity required', () => {
  const demo = () =>
    createDemoApp({
      logger: silentLogger,
      verifyIdentity: createAssertionVerifier({
        jwksUrl,
        audience: 'default',
        issuer: 'gatehouse',
      }),
    });

  it('refuses plain identity headers without a signed assertion', async () => {
    const res = await request(demo()).get('/api/whoami').set('x-auth-request-user', 'alice');
    expect(res.status).toBe(401);
  });

  it('shows the signed identity, HTML-escaped', async () => {
    const token = await assertionFor('default');
    const res = await request(demo())
      .get('/')
      .set('accept', 'text/html')
      .set('x-auth-request-jwt', token)
      .set('x-auth-request-user', 'mallory');
    expect(res.status).toBe(200);
    expect(res.text).toContain('Welcome, <span id="username">&lt;b&gt;alice&lt;/b&gt;</span>');
    expect(res.text).not.toContain('mallory');
  });
});

describe('the signing key after Redis loses it', () => {
  const auth = { userId: 'u1', username: 'alice', groups: [], email: '', createdAt: Date.now() };
  const keyName = (prefix: string) => `${prefix}jwt:signing-key`;
  const kidOf = (token: string) => decodeProtectedHeader(token).kid;
  /** A signer with its own clock, on this suite's real Redis. */
  const signer = (prefix: string, clock: { t: number }) =>
    createAssertionSigner({
      redis: redis.client,
      prefix,
      issuer: 'gatehouse',
      now: () => clock.t,
      keys: testSigningKeys,
    });

  it('is put back by an instance that still has it, so a new instance signs with the same key', async () => {
    const prefix = `keyback-${Date.now()}:`;
    const clock = { t: Date.now() };
    const a = signer(prefix, clock);
    const before = kidOf(await a.sign('s1', auth, 'default'));
    await redis.client.del(keyName(prefix)); // Redis restarted empty

    clock.t += KEY_CHECK_MS;
    expect(kidOf(await a.sign('s2', auth, 'default'))).toBe(before);
    expect(await redis.client.exists(keyName(prefix))).toBe(1);
    const b = signer(prefix, { t: clock.t });
    expect(kidOf(await b.sign('s3', auth, 'default'))).toBe(before);
  });

  it('is followed when another instance made a new one: within KEY_CHECK_MS, old tokens still verify', async () => {
    const prefix = `keynew-${Date.now()}:`;
    const clock = { t: Date.now() };
    const a = signer(prefix, clock);
    const oldToken = await a.sign('s1', auth, 'default');
    await redis.client.del(keyName(prefix));
    // An instance started while the key was gone makes a new one.
    const c = signer(prefix, { t: clock.t });
    const newKid = kidOf(await c.sign('s2', auth, 'default'));
    expect(newKid).not.toBe(kidOf(oldToken));

    // Before its check, A still signs with the old key; after it, with the new one.
    clock.t += 1000;
    expect(kidOf(await a.sign('s3', auth, 'default'))).toBe(kidOf(oldToken));
    clock.t += KEY_CHECK_MS;
    const switched = await a.sign('s3', auth, 'other'); // (another audience: not a cached token)
    expect(kidOf(switched)).toBe(newKid);
    expect(kidOf(await a.sign('s1', auth, 'default'))).toBe(newKid); // its cache was dropped

    // A's JWKS: the new key, and the old one until every token signed with it has expired.
    const kids = (await a.jwks()).keys.map((k) => k.kid);
    expect(kids).toEqual([newKid, kidOf(oldToken)]);
    const keys = createLocalJWKSet(await a.jwks());
    for (const token of [oldToken, switched])
      expect(
        (await createAssertionVerifier({ keys, audience: ['default', 'other'] })(token)).id,
      ).toBe('u1');
    clock.t += 2 * ASSERTION_TTL_SECONDS * 1000;
    expect((await a.jwks()).keys.map((k) => k.kid)).toEqual([newKid]);
  });
});

describe('the signing key at rest', () => {
  const auth = { userId: 'u1', username: 'alice', groups: [], email: '', createdAt: Date.now() };
  const keyName = (prefix: string) => `${prefix}jwt:signing-key`;
  const kidOf = (token: string) => decodeProtectedHeader(token).kid;
  const OLD = 'the-old-encryption-key-the-old-encryption-key';
  const NEW = 'the-new-encryption-key-the-new-encryption-key';
  const sealer = (...secrets: string[]) => createSealer(secrets, 'signing-key');
  const signer = (prefix: string, keys = testSigningKeys) =>
    createAssertionSigner({ redis: redis.client, prefix, issuer: 'gatehouse', keys });
  /** The private JWK in Redis, opened with `keys`. */
  const storedJwk = async (prefix: string, keys = testSigningKeys) =>
    JSON.parse(
      keys.open((await redis.client.get(keyName(prefix))) ?? '', keyName(prefix)).plaintext,
    ) as JWK;

  it('is sealed in Redis: the value holds no private key, and what it opens to signs the tokens', async () => {
    const prefix = `sealed-${Date.now()}:`;
    const kid = kidOf(await signer(prefix).sign('s1', auth, 'default'));
    const raw = (await redis.client.get(keyName(prefix))) ?? '';
    expect(raw.startsWith(`g1.${testSigningKeys.keyId}.`)).toBe(true);
    const jwk = await storedJwk(prefix);
    expect(jwk.d).toBeTruthy();
    expect(raw).not.toContain(jwk.d);
    expect(raw).not.toContain('"kty"');
    const { d: _d, ...publicJwk } = jwk;
    expect(await calculateJwkThumbprint(publicJwk)).toBe(kid);
  });

  it('rotation: a key sealed with the previous encryption key still loads, is sealed again with the new one, and every instance keeps signing with it', async () => {
    const prefix = `rotate-${Date.now()}:`;
    const keyIdInRedis = async () => (await redis.client.get(keyName(prefix)))?.split('.')[1];
    const signerAt = (clock: { t: number }, keys: ReturnType<typeof sealer>) =>
      createAssertionSigner({
        redis: redis.client,
        prefix,
        issuer: 'gatehouse',
        now: () => clock.t,
        keys,
      });
    const before = kidOf(await signer(prefix, sealer(OLD)).sign('s1', auth, 'default'));
    expect(await keyIdInRedis()).toBe(sealer(OLD).keyId);

    // Step 1 of the rotation (docs/operations.md): the new key is known, the old one still seals.
    expect(kidOf(await signer(prefix, sealer(OLD, NEW)).sign('s2', auth, 'default'))).toBe(before);
    expect(await keyIdInRedis()).toBe(sealer(OLD).keyId);
    // Step 2: the new key seals, the old one only opens. The stored key is sealed again.
    const clock = { t: Date.now() };
    const step2 = signerAt(clock, sealer(NEW, OLD));
    expect(kidOf(await step2.sign('s3', auth, 'default'))).toBe(before);
    expect(await keyIdInRedis()).toBe(sealer(NEW).keyId);
    // An instance still at step 1 (re)starting meanwhile seals it with its own key again...
    expect(kidOf(await signer(prefix, sealer(OLD, NEW)).sign('s4', auth, 'default'))).toBe(before);
    expect(await keyIdInRedis()).toBe(sealer(OLD).keyId);
    // ...and a step-2 instance's next check seals it with the new key once more.
    clock.t += KEY_CHECK_MS;
    expect(kidOf(await step2.sign('s5', auth, 'other'))).toBe(before);
    expect(await keyIdInRedis()).toBe(sealer(NEW).keyId);
    // Step 3 (the old key dropped): the same private key, no new one.
    expect(kidOf(await signer(prefix, sealer(NEW)).sign('s6', auth, 'default'))).toBe(before);
    expect((await storedJwk(prefix, sealer(NEW))).d).toBeTruthy();
  });

  it('a key stored in clear by an earlier version is replaced by a new, sealed one, never used', async () => {
    const prefix = `legacy-${Date.now()}:`;
    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
    const clear = await exportJWK(privateKey);
    await redis.client.set(keyName(prefix), JSON.stringify(clear));
    const { d: _d, ...clearPublic } = clear;
    const token = await signer(prefix).sign('s1', auth, 'default');
    expect(kidOf(token)).not.toBe(await calculateJwkThumbprint(clearPublic));
    const raw = (await redis.client.get(keyName(prefix))) ?? '';
    expect(raw).not.toContain(clear.d);
    expect((await storedJwk(prefix)).d).not.toBe(clear.d);
  });

  it('a value that does not open (altered, or sealed with a key no instance has) is replaced, not trusted', async () => {
    const prefix = `foreign-${Date.now()}:`;
    const foreign = kidOf(await signer(prefix, sealer(OLD)).sign('s1', auth, 'default'));
    const fresh = signer(prefix, sealer(NEW));
    const kid = kidOf(await fresh.sign('s2', auth, 'default'));
    expect(kid).not.toBe(foreign);
    expect((await storedJwk(prefix, sealer(NEW))).d).toBeTruthy();
  });
});
