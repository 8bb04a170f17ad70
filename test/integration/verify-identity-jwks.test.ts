/**
 * The snippet docs/protecting-your-app.md tells backends to use, as written there: Express,
 * `app.use(createIdentityVerifier({ jwksUrl, audience, issuer }))`, the key set fetched over
 * HTTP from a JWKS server (a local one here, serving keys made in the test). The unit tests
 * (test/unit/verify-identity.test.ts) cover the token cases with a local key set; these cover
 * what only the remote key set does: fetching, rotation, and an unreachable JWKS.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createIdentityVerifier } from '../../common/src/verify-identity.js';

interface Key {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function makeKey(kid: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', {
    crv: 'Ed25519',
    extractable: true,
  });
  return {
    kid,
    privateKey,
    jwk: { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' },
  };
}

const sign = (key: Key, sub = 'user-1') =>
  new SignJWT({ name: 'alice', groups: ['dev'], email: 'a@example.com' })
    .setProtectedHeader({ alg: 'EdDSA', kid: key.kid })
    .setSubject(sub)
    .setAudience('my-app')
    .setIssuer('gatehouse')
    .setIssuedAt()
    .setExpirationTime('30s')
    .sign(key.privateKey);

let jwksServer: Server;
let jwksUrl: string;
let published: JWK[] = [];
let fetches = 0;
let oldKey: Key;
let newKey: Key;

beforeAll(async () => {
  [oldKey, newKey] = await Promise.all([makeKey('old'), makeKey('new')]);
  jwksServer = createServer((req, res) => {
    fetches++;
    if (req.url !== '/auth/.well-known/jwks.json') {
      res.statusCode = 404;
      res.end();
      return;
    }
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ keys: published }));
  });
  await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', r));
  jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/auth/.well-known/jwks.json`;
});
afterAll(async () => {
  vi.useRealTimers();
  await new Promise((r) => jwksServer?.close(r));
});

/** The docs' snippet, with this test's JWKS. */
function backend(url = jwksUrl) {
  const app = express();
  app.use(
    createIdentityVerifier({
      jwksUrl: url,
      audience: 'my-app', // the route id in GATEWAY_ROUTES
      issuer: 'gatehouse', // or the session-service's PUBLIC_URL
    }),
  );
  app.get('/', (req, res) => res.send(`Hello ${req.identity?.name}`));
  return app;
}

describe('createIdentityVerifier with a JWKS over HTTP (the documented use)', () => {
  it('fetches the JWKS once, lets a signed request through, and refuses the others with 401', async () => {
    published = [oldKey.jwk];
    fetches = 0;
    const app = backend();
    const ok = await request(app)
      .get('/')
      .set('x-auth-request-jwt', await sign(oldKey));
    expect(ok.status).toBe(200);
    expect(ok.text).toBe('Hello alice');
    expect(
      (
        await request(app)
          .get('/')
          .set('x-auth-request-jwt', await sign(oldKey, 'u2'))
      ).status,
    ).toBe(200);
    expect(fetches).toBe(1);

    const plain = await request(app).get('/').set('x-auth-request-user', 'alice');
    expect(plain.status).toBe(401);
    expect(plain.body.error).toBe('UNAUTHENTICATED');
    expect(plain.headers['cache-control']).toBe('no-store');
    const token = await sign(oldKey);
    const twice = await request(app)
      .get('/')
      .set('x-auth-request-jwt', [token, token] as unknown as string);
    expect(twice.status).toBe(401);
  });

  it('follows a key rotation: a new kid is fetched again once the 30 s cooldown has passed', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    try {
      published = [oldKey.jwk];
      fetches = 0;
      const app = backend();
      expect(
        (
          await request(app)
            .get('/')
            .set('x-auth-request-jwt', await sign(oldKey))
        ).status,
      ).toBe(200);
      expect(fetches).toBe(1);

      // The session-service publishes a new key (beside the old one) and signs with it.
      published = [newKey.jwk, oldKey.jwk];
      const fresh = await sign(newKey);
      // Within jose's cooldown of the last fetch, an unknown kid is not fetched for: refused.
      expect((await request(app).get('/').set('x-auth-request-jwt', fresh)).status).toBe(401);
      expect(fetches).toBe(1);
      vi.setSystemTime(Date.now() + 31_000);
      const later = await sign(newKey, 'u3');
      expect((await request(app).get('/').set('x-auth-request-jwt', later)).status).toBe(200);
      expect(fetches).toBe(2);
      expect(
        (
          await request(app)
            .get('/')
            .set('x-auth-request-jwt', await sign(oldKey, 'u4'))
        ).status,
      ).toBe(200);
    } finally {
      vi.useRealTimers();
    }
  });

  it('fails closed when the JWKS cannot be fetched', async () => {
    const gone = `${jwksUrl.replace('/auth/.well-known/jwks.json', '')}/missing.json`;
    const res = await request(backend(gone))
      .get('/')
      .set('x-auth-request-jwt', await sign(oldKey));
    expect(res.status).toBe(401);
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const refused = await request(backend(`http://127.0.0.1:${port}/jwks.json`))
      .get('/')
      .set('x-auth-request-jwt', await sign(oldKey));
    expect(refused.status).toBe(401);
  });
});
