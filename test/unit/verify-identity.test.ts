/**
 * The verifier backends copy (common/src/verify-identity.ts, docs/protecting-your-app.md) and the
 * demo-app uses: real Ed25519/P-256 keys made here, tokens signed with jose's SignJWT, the key
 * set served by createLocalJWKSet (no sockets: the unit tier forbids them). The middleware runs
 * on real IncomingMessage/ServerResponse objects that never touch the network.
 *
 * Over 300 lines: the verifier, its middleware and the demo-app's use of it share the keys and
 * the token maker built at the top.
 */
import { createHmac } from 'node:crypto';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import {
  type CryptoKey,
  createLocalJWKSet,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JSONWebKeySet,
  type JWK,
  type JWTVerifyGetKey,
  SignJWT,
} from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createAssertionVerifier,
  createIdentityVerifier,
  IdentityError,
  identityMiddleware,
  type VerifiedIdentity,
} from '../../common/src/verify-identity.js';
import { createApp as createDemoApp } from '../../demo-app/src/app.js';
import { silentLogger } from '../helpers/logger.js';

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
  publicKey: CryptoKey;
}

async function makeKey(kid: string, alg: 'EdDSA' | 'ES256' = 'EdDSA'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, {
    ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}),
    extractable: true,
  });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, privateKey, publicJwk, publicKey };
}

const ISSUER = 'gatehouse';
const AUDIENCE = 'default';
const CLAIMS = { name: '<b>alice</b>', groups: ['dev', 'ops'], email: 'a@example.com' };
const nowSeconds = () => Math.floor(Date.now() / 1000);

interface TokenOptions {
  key?: SigningKey;
  alg?: string;
  aud?: string;
  iss?: string;
  sub?: string;
  exp?: number;
  nbf?: number;
  kid?: string | null;
  claims?: Record<string, unknown>;
}

let current: SigningKey;
let next: SigningKey;
let foreign: SigningKey;
let p256: SigningKey;

/** A token as the session-service signs it, with whatever the case changes. */
function sign(options: TokenOptions = {}): Promise<string> {
  const key = options.key ?? current;
  const alg = options.alg ?? (key.publicJwk.alg as string);
  const kid = options.kid === undefined ? key.kid : options.kid;
  const jwt = new SignJWT({ ...CLAIMS, ...options.claims })
    .setProtectedHeader({ alg, ...(kid === null ? {} : { kid }), typ: 'JWT' })
    .setSubject(options.sub ?? 'user-1')
    .setAudience(options.aud ?? AUDIENCE)
    .setIssuer(options.iss ?? ISSUER)
    .setIssuedAt()
    .setExpirationTime(options.exp ?? nowSeconds() + 30);
  if (options.nbf !== undefined) jwt.setNotBefore(options.nbf);
  return jwt.sign(key.privateKey);
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const payloadOf = (token: string) =>
  JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;

/** A key set that can change under the verifier, like the session-service's JWKS. */
function rotatingKeys(initial: JSONWebKeySet) {
  let local = createLocalJWKSet(initial);
  const keys: JWTVerifyGetKey = (header, token) => local(header, token);
  return {
    keys,
    publish: (set: JSONWebKeySet) => {
      local = createLocalJWKSet(set);
    },
  };
}

const verifierFor = (set: JSONWebKeySet, extra: { now?: () => number } = {}) =>
  createAssertionVerifier({
    keys: createLocalJWKSet(set),
    audience: AUDIENCE,
    issuer: ISSUER,
    ...extra,
  });

beforeAll(async () => {
  [current, next, foreign, p256] = await Promise.all([
    makeKey('k-current'),
    makeKey('k-next'),
    makeKey('k-foreign'),
    makeKey('k-p256', 'ES256'),
  ]);
});

const refused = /identity assertion rejected/;

describe('createAssertionVerifier', () => {
  it('accepts a valid token and returns the identity from its claims', async () => {
    const verify = verifierFor({ keys: [current.publicJwk] });
    const token = await sign();
    const identity = await verify(token);
    expect(identity).toEqual({
      id: 'user-1',
      name: '<b>alice</b>',
      groups: ['dev', 'ops'],
      email: 'a@example.com',
      exp: payloadOf(token).exp,
      // An assertion that does not say how the user signed in says nothing of it.
      amr: [],
      acr: '',
      authTime: 0,
    });
  });

  it('returns how the user signed in: amr, acr and auth_time, malformed values as unsaid', async () => {
    const verify = verifierFor({ keys: [current.publicJwk] });
    const authTime = nowSeconds() - 60;
    const signedIn = await verify(
      await sign({ claims: { amr: ['pwd', 'otp', 'mfa'], acr: 'aal2', auth_time: authTime } }),
    );
    expect(signedIn).toMatchObject({ amr: ['pwd', 'otp', 'mfa'], acr: 'aal2', authTime });
    const odd = await verify(
      await sign({ claims: { amr: ['pwd', 7, null], acr: 2, auth_time: '1700000000' } }),
    );
    expect(odd).toMatchObject({ amr: ['pwd'], acr: '', authTime: 0 });
    // Each answer is a copy: changing one does not change the next (the verified-token cache).
    const token = await sign({ claims: { amr: ['pwd'] } });
    (await verify(token)).amr.push('mfa');
    expect((await verify(token)).amr).toEqual(['pwd']);
  });

  it('accepts ES256 too (the other algorithm it allows)', async () => {
    const verify = verifierFor({ keys: [p256.publicJwk] });
    expect((await verify(await sign({ key: p256 }))).id).toBe('user-1');
  });

  it('accepts any audience of a list, and only those', async () => {
    const verify = createAssertionVerifier({
      keys: createLocalJWKSet({ keys: [current.publicJwk] }),
      audience: ['billing', 'default'],
    });
    expect((await verify(await sign({ aud: 'billing' }))).id).toBe('user-1');
    await expect(verify(await sign({ aud: 'hr' }))).rejects.toThrow(refused);
  });

  it('refuses a token for another audience', async () => {
    const verify = verifierFor({ keys: [current.publicJwk] });
    await expect(verify(await sign({ aud: 'billing' }))).rejects.toThrow(/"aud"/);
  });

  it('refuses a token from another issuer, and checks none when no issuer is configured', async () => {
    const verify = verifierFor({ keys: [current.publicJwk] });
    const token = await sign({ iss: 'https://evil.example' });
    await expect(verify(token)).rejects.toThrow(/"iss"/);
    const lax = createAssertionVerifier({
      keys: createLocalJWKSet({ keys: [current.publicJwk] }),
      audience: AUDIENCE,
    });
    expect((await lax(token)).id).toBe('user-1');
  });

  it('refuses an expired token, past the clock tolerance', async () => {
    const verify = verifierFor({ keys: [current.publicJwk] });
    await expect(verify(await sign({ exp: nowSeconds() - 10 }))).rejects.toThrow(/"exp"/);
    // within the default 5 s of tolerance it still verifies
    expect((await verify(await sign({ exp: nowSeconds() - 2 }))).id).toBe('user-1');
  });

  it('refuses a token that is not valid yet (nbf in the future)', async () => {
    const verify = verifierFor({ keys: [current.publicJwk] });
    await expect(verify(await sign({ nbf: nowSeconds() + 60 }))).rejects.toThrow(/"nbf"/);
  });

  it('refuses a token without sub or exp', async () => {
    const verify = verifierFor({ keys: [current.publicJwk] });
    const noExp = await new SignJWT({ ...CLAIMS })
      .setProtectedHeader({ alg: 'EdDSA', kid: current.kid })
      .setSubject('user-1')
      .setAudience(AUDIENCE)
      .setIssuer(ISSUER)
      .sign(current.privateKey);
    await expect(verify(noExp)).rejects.toThrow(/"exp"/);
    const noSub = await new SignJWT({ ...CLAIMS })
      .setProtectedHeader({ alg: 'EdDSA', kid: current.kid })
      .setAudience(AUDIENCE)
      .setIssuer(ISSUER)
      .setExpirationTime(nowSeconds() + 30)
      .sign(current.privateKey);
    await expect(verify(noSub)).rejects.toThrow(/"sub"/);
  });

  it('refuses alg none (an unsigned token carrying valid claims)', async () => {
    const verify = verifierFor({ keys: [current.publicJwk] });
    const claims = payloadOf(await sign());
    for (const alg of ['none', 'None', 'NONE']) {
      const unsigned = `${b64({ alg, kid: current.kid })}.${b64(claims)}.`;
      await expect(verify(unsigned), alg).rejects.toThrow(refused);
    }
  });

  it('refuses HS256 signed with the public key as the HMAC secret (algorithm confusion)', async () => {
    const verify = verifierFor({ keys: [current.publicJwk] });
    const claims = payloadOf(await sign());
    const secrets = [
      JSON.stringify(current.publicJwk),
      String(current.publicJwk.x),
      Buffer.from(String(current.publicJwk.x), 'base64url'),
      await exportSPKI(current.publicKey),
    ];
    for (const secret of secrets) {
      const input = `${b64({ alg: 'HS256', kid: current.kid, typ: 'JWT' })}.${b64(claims)}`;
      const mac = createHmac('sha256', secret).update(input).digest('base64url');
      await expect(verify(`${input}.${mac}`)).rejects.toThrow(refused);
    }
    // jose's JWKS never hands out a secret key; a key resolver of your own might (here: one that
    // returns the public key's bytes for any header). The algorithm allowlist refuses it anyway.
    const publicBytes = new Uint8Array(Buffer.from(String(current.publicJwk.x), 'base64url'));
    const naive = createAssertionVerifier({ keys: async () => publicBytes, audience: AUDIENCE });
    const input = `${b64({ alg: 'HS256', kid: current.kid })}.${b64(claims)}`;
    const mac = createHmac('sha256', publicBytes).update(input).digest('base64url');
    await expect(naive(`${input}.${mac}`)).rejects.toThrow(/"alg"/);
  });

  it('refuses a tampered payload, header or signature', async () => {
    const verify = verifierFor({ keys: [current.publicJwk] });
    const token = await sign();
    const [h, p, s] = token.split('.') as [string, string, string];
    const forged = b64({ ...payloadOf(token), name: 'root', groups: ['admin'] });
    await expect(verify(`${h}.${forged}.${s}`)).rejects.toThrow(/signature/);
    const otherAud = b64({ ...payloadOf(token), aud: 'billing' });
    await expect(verify(`${h}.${otherAud}.${s}`)).rejects.toThrow(refused);
    const flipped = `${s.slice(0, 10)}${s[10] === 'A' ? 'B' : 'A'}${s.slice(11)}`;
    await expect(verify(`${h}.${p}.${flipped}`)).rejects.toThrow(refused);
    await expect(verify(`${h}.${p}`)).rejects.toThrow(refused);
    await expect(verify(`${h}.${p}.${s}.x`)).rejects.toThrow(refused);
    // the same token, untouched, still verifies: the refusals above are the tampering's
    expect((await verify(token)).name).toBe('<b>alice</b>');
  });

  it('refuses a token signed by a key not in the JWKS (unknown kid, or a known kid with the wrong key)', async () => {
    const verify = verifierFor({ keys: [current.publicJwk] });
    await expect(verify(await sign({ key: foreign }))).rejects.toThrow(/no applicable key/);
    // a stranger's key claiming the published kid: the signature does not verify
    await expect(verify(await sign({ key: foreign, kid: current.kid }))).rejects.toThrow(
      /signature/,
    );
    // no kid at all: tried against the single published key, which did not sign it
    await expect(verify(await sign({ key: foreign, kid: null }))).rejects.toThrow(refused);
  });

  it('refuses a missing or empty token', async () => {
    const verify = verifierFor({ keys: [current.publicJwk] });
    await expect(verify(undefined)).rejects.toThrow(/no identity assertion/);
    await expect(verify('')).rejects.toThrow(/no identity assertion/);
    await expect(verify('not-a-jwt')).rejects.toThrow(refused);
  });

  it('throws IdentityError, the cause answered as UNAUTHENTICATED', async () => {
    const verify = verifierFor({ keys: [current.publicJwk] });
    const error = await verify(await sign({ aud: 'billing' })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IdentityError);
    expect((error as IdentityError).code).toBe('INVALID_IDENTITY_ASSERTION');
  });

  it('follows key rotation in the JWKS: old and new keys during the overlap, then only the new', async () => {
    const jwks = rotatingKeys({ keys: [current.publicJwk] });
    const verify = createAssertionVerifier({ keys: jwks.keys, audience: AUDIENCE, issuer: ISSUER });
    const before = await sign({ key: current });
    expect((await verify(before)).id).toBe('user-1');
    await expect(verify(await sign({ key: next }))).rejects.toThrow(/no applicable key/);

    // The session-service publishes the new key beside the old one.
    jwks.publish({ keys: [next.publicJwk, current.publicJwk] });
    expect((await verify(await sign({ key: next, sub: 'user-2' }))).id).toBe('user-2');
    expect((await verify(await sign({ key: current, sub: 'user-3' }))).id).toBe('user-3');

    // Once the old key is dropped, a token signed with it that was never verified is refused;
    // one verified already stays accepted until it expires (the verified-token cache).
    jwks.publish({ keys: [next.publicJwk] });
    await expect(verify(await sign({ key: current, sub: 'user-4' }))).rejects.toThrow(
      /no applicable key/,
    );
    expect((await verify(before)).id).toBe('user-1');
    expect((await verify(await sign({ key: next, sub: 'user-5' }))).id).toBe('user-5');
  });

  it('remembers a verified token until it expires, and hands out copies', async () => {
    let t = Date.now();
    const jwks = rotatingKeys({ keys: [current.publicJwk] });
    const verify = createAssertionVerifier({
      keys: jwks.keys,
      audience: AUDIENCE,
      now: () => t,
    });
    const exp = Math.floor(t / 1000) + 30;
    const token = await sign({ exp });
    const first = await verify(token);
    first.groups.push('admin');
    first.name = 'root';
    expect(await verify(token)).toMatchObject({ name: '<b>alice</b>', groups: ['dev', 'ops'] });
    // past exp + the 5 s tolerance it is verified again, and refused
    t = (exp + 5) * 1000;
    await expect(verify(token)).rejects.toThrow(/"exp"/);
  });

  it('needs a key set', () => {
    expect(() => createAssertionVerifier({ audience: AUDIENCE })).toThrow(/jwksUrl or keys/);
  });
});

/** A request as Node's parser makes it, on a socket that never connects. */
function requestWith(rawHeaders: string[]): IncomingMessage {
  const req = new IncomingMessage(new Socket());
  req.method = 'GET';
  req.url = '/';
  req.rawHeaders = rawHeaders;
  const headers: Record<string, string> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] ?? '').toLowerCase();
    const value = rawHeaders[i + 1] ?? '';
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  req.headers = headers;
  return req;
}

/** What a middleware did: next() with the identity, or the answer it wrote. */
async function run(
  middleware: (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void,
  rawHeaders: string[],
) {
  const req = requestWith(rawHeaders);
  const res = new ServerResponse(req);
  return new Promise<{
    next: boolean;
    identity?: VerifiedIdentity | undefined;
    status?: number;
    headers?: Record<string, unknown>;
    body?: string;
  }>((resolve) => {
    res.end = ((chunk?: unknown) => {
      resolve({
        next: false,
        status: res.statusCode,
        headers: res.getHeaders(),
        body: chunk === undefined ? '' : String(chunk),
      });
      return res;
    }) as typeof res.end;
    middleware(req, res, (err) => {
      expect(err).toBeUndefined();
      resolve({ next: true, identity: req.identity });
    });
  });
}

describe('createIdentityVerifier (the middleware the docs show)', () => {
  const middleware = () =>
    createIdentityVerifier({
      keys: createLocalJWKSet({ keys: [current.publicJwk] }),
      audience: AUDIENCE,
      issuer: ISSUER,
    });

  it('sets req.identity and calls next() for one valid X-Auth-Request-Jwt, in any casing', async () => {
    const token = await sign();
    for (const name of ['X-Auth-Request-Jwt', 'x-auth-request-jwt']) {
      const result = await run(middleware(), [name, token, 'X-Auth-Request-User', 'mallory']);
      expect(result.next, name).toBe(true);
      expect(result.identity?.name).toBe('<b>alice</b>');
    }
  });

  it('answers 401 JSON UNAUTHENTICATED, no-store, without calling next()', async () => {
    const cases: [string, string[]][] = [
      ['missing header', ['X-Auth-Request-User', 'alice']],
      ['wrong audience', ['X-Auth-Request-Jwt', await sign({ aud: 'billing' })]],
      ['unknown kid', ['X-Auth-Request-Jwt', await sign({ key: foreign })]],
    ];
    for (const [name, headers] of cases) {
      const result = await run(middleware(), headers);
      expect(result.next, name).toBe(false);
      expect(result.status, name).toBe(401);
      expect(result.headers?.['cache-control'], name).toBe('no-store');
      expect(result.headers?.['content-type'], name).toBe('application/json; charset=utf-8');
      expect(JSON.parse(result.body ?? '').error, name).toBe('UNAUTHENTICATED');
      expect(result.headers?.['content-length'], name).toBe(Buffer.byteLength(result.body ?? ''));
    }
  });

  it('refuses two X-Auth-Request-Jwt headers, even when both are valid', async () => {
    const token = await sign();
    for (const headers of [
      ['X-Auth-Request-Jwt', token, 'X-Auth-Request-Jwt', token],
      ['X-Auth-Request-Jwt', token, 'x-auth-request-jwt', await sign({ sub: 'user-2' })],
      ['X-Auth-Request-Jwt', await sign({ key: foreign }), 'X-Auth-Request-Jwt', token],
    ]) {
      const result = await run(middleware(), headers);
      expect(result.status).toBe(401);
    }
    // one copy of the same token passes
    expect((await run(middleware(), ['X-Auth-Request-Jwt', token])).next).toBe(true);
  });

  it('reads another header when told, and hands refusals to onRefused', async () => {
    const refusals: IdentityError[] = [];
    const custom = createIdentityVerifier({
      keys: createLocalJWKSet({ keys: [current.publicJwk] }),
      audience: AUDIENCE,
      header: 'X-Identity',
      onRefused: (_req, res, error) => {
        refusals.push(error);
        res.statusCode = 403;
        res.end('no');
      },
    });
    const token = await sign();
    expect((await run(custom, ['X-Identity', token])).next).toBe(true);
    const refused401 = await run(custom, ['X-Auth-Request-Jwt', token]);
    expect(refused401).toMatchObject({ next: false, status: 403, body: 'no' });
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toBeInstanceOf(IdentityError);
  });
});

describe('the demo-app behind identityMiddleware', () => {
  /** The demo-app's Express app driven without a socket: what it answers for these headers. */
  async function demo(rawHeaders: string[], path = '/api/whoami') {
    const app = createDemoApp({
      logger: silentLogger,
      verifyIdentity: verifierFor({ keys: [current.publicJwk] }),
    });
    // (every path of the demo-app answers: its handlers never call next() past the app)
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      req.url = path;
      app(req, res);
    };
    return run(handler, rawHeaders);
  }

  it('answers with the signed identity, not the plain headers', async () => {
    const result = await demo(['X-Auth-Request-Jwt', await sign(), 'X-Auth-Request-User', 'eve']);
    expect(result.status).toBe(200);
    expect(JSON.parse(result.body ?? '')).toMatchObject({
      user: { username: '<b>alice</b>', groups: ['dev', 'ops'] },
      signed: true,
    });
  });

  it('refuses through sendError: 401 UNAUTHENTICATED with its own message, JSON or a page', async () => {
    const json = await demo(['X-Auth-Request-User', 'alice']);
    expect(json.status).toBe(401);
    expect(JSON.parse(json.body ?? '')).toEqual({
      error: 'UNAUTHENTICATED',
      message: 'This app only trusts identities signed by the Gatehouse session-service.',
    });
    expect(json.headers?.['cache-control']).toBe('no-store');
    const page = await demo(['Accept', 'text/html', 'X-Auth-Request-Jwt', await sign({ exp: 1 })]);
    expect(page.status).toBe(401);
    expect(page.headers?.['content-type']).toBe('text/html; charset=utf-8');
    expect(page.body).toContain('Error code: UNAUTHENTICATED');
    const twice = await sign();
    const doubled = await demo(['X-Auth-Request-Jwt', twice, 'X-Auth-Request-Jwt', twice], '/');
    expect(doubled.status).toBe(401);
  });

  it('verifies unknown paths before its 404', async () => {
    expect((await demo([], '/nope')).status).toBe(401);
    expect((await demo(['X-Auth-Request-Jwt', await sign()], '/nope')).status).toBe(404);
  });
});

// identityMiddleware is what createIdentityVerifier and the demo-app share.
it('identityMiddleware wraps any assertion verifier', async () => {
  const calls: (string | undefined)[] = [];
  const middleware = identityMiddleware(async (token) => {
    calls.push(token);
    throw new Error('not IdentityError');
  });
  const result = await run(middleware, ['X-Auth-Request-Jwt', 'abc']);
  expect(result.status).toBe(401);
  expect(calls).toEqual(['abc']);
});
