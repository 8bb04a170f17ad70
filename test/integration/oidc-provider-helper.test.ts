/**
 * The test OpenID Provider (test/helpers/oidc-provider.ts) does what the relying-party tests
 * will count on, proven with openid-client directly (no Gatehouse code): sign-in with PKCE,
 * state and nonce through our login form, the claims of the ID token, key rotation, tampered
 * token answers, back-channel logout (on demand and by a sign-out), refresh and its refusal,
 * and the provider going down and coming back.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  jwtVerify,
} from 'jose';
import * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CookieJar } from '../helpers/cookie-jar.js';
import {
  BACKCHANNEL_LOGOUT_EVENT,
  DEFAULT_OIDC_PASSWORD,
  type OidcProviderHandle,
  startOidcProvider,
} from '../helpers/oidc-provider.js';
import { waitFor } from '../helpers/ports.js';

const CLIENT_ID = 'gatehouse';
const CLIENT_SECRET = 'rp-secret-0123456789';
const JWT_CLIENT_ID = 'gatehouse-jwt';
const jwtClientKeys = await generateKeyPair('ES256', { extractable: true });

interface BackchannelRp {
  url: string;
  received: { method: string; contentType: string; body: URLSearchParams }[];
  status: number;
  server: Server;
}

/** The RP's backchannel_logout_uri: records what it gets, answers `status`. */
async function startBackchannelRp(): Promise<BackchannelRp> {
  const rp: BackchannelRp = {
    url: '',
    received: [],
    status: 200,
    server: createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      rp.received.push({
        method: req.method ?? '',
        contentType: req.headers['content-type'] ?? '',
        body: new URLSearchParams(Buffer.concat(chunks).toString('utf8')),
      });
      res.statusCode = rp.status;
      res.setHeader('cache-control', 'no-store');
      res.end();
    }),
  };
  await new Promise<void>((resolve) => rp.server.listen(0, '127.0.0.1', resolve));
  rp.url = `http://localhost:${(rp.server.address() as AddressInfo).port}/backchannel-logout`;
  return rp;
}

let rp: BackchannelRp;
let op: OidcProviderHandle;
const REDIRECT_URI = 'http://localhost:3999/auth/oidc/callback';
const POST_LOGOUT_URI = 'http://localhost:3999/signed-out';

beforeAll(async () => {
  rp = await startBackchannelRp();
  op = await startOidcProvider({
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [REDIRECT_URI],
        post_logout_redirect_uris: [POST_LOGOUT_URI],
        backchannel_logout_uri: rp.url,
        backchannel_logout_session_required: true,
        grant_types: ['authorization_code', 'refresh_token'],
      },
      {
        client_id: JWT_CLIENT_ID,
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [{ ...(await exportJWK(jwtClientKeys.publicKey)), alg: 'ES256' }] },
        redirect_uris: [REDIRECT_URI],
      },
    ],
    accounts: {
      alice: {
        sub: 'sub-alice',
        password: 'alice-pass',
        claims: {
          email: 'alice@example.com',
          email_verified: true,
          preferred_username: 'alice',
          name: 'Alice Example',
          groups: ['admins', 'staff'],
          realm_access: { roles: ['offline', 'editor'] },
        },
      },
      bob: {
        sub: 'sub-bob',
        claims: { email: 'bob@example.com', email_verified: false, groups: [] },
        amr: ['pwd', 'otp', 'mfa'],
        acr: 'urn:example:mfa',
      },
    },
  });
});

afterAll(async () => {
  await op?.close();
  await new Promise<void>((resolve) => (rp ? rp.server.close(() => resolve()) : resolve()));
});

async function discover(): Promise<client.Configuration> {
  const config = await client.discovery(
    new URL(op.issuer),
    CLIENT_ID,
    undefined,
    client.ClientSecretBasic(CLIENT_SECRET),
    { execute: [client.allowInsecureRequests] },
  );
  // the ID token's signature is checked against the provider's JWKS
  client.enableNonRepudiationChecks(config);
  return config;
}

interface Flow {
  url: URL;
  verifier: string;
  state: string;
  nonce: string;
}

async function authorization(
  config: client.Configuration,
  extra: Record<string, string> = {},
): Promise<Flow> {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: 'openid email profile groups',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  });
  return { url, verifier, state, nonce };
}

interface Browse {
  /** The redirect_uri the provider sent the browser back to (with code, state, iss). */
  callback: URL;
  /** How many times the login form was shown. */
  loginForms: number;
  /** The error shown with the form (wrong password), if any. */
  errors: string[];
}

/** Like a browser: follow redirects, fill the login form when it appears, stop at redirect_uri. */
async function browse(
  jar: CookieJar,
  start: URL,
  credentials: { login: string; password: string }[],
): Promise<Browse> {
  let url = start;
  let loginForms = 0;
  const errors: string[] = [];
  const pending = [...credentials];
  for (let hop = 0; hop < 20; hop++) {
    if (url.href.startsWith(REDIRECT_URI)) return { callback: url, loginForms, errors };
    const res = await jar.fetch(url.href);
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get('location') ?? '', url);
      continue;
    }
    const html = await res.text();
    const action = /<form id="op-login" method="post" action="([^"]+)"/.exec(html)?.[1];
    if (res.status !== 200 || !action) throw new Error(`unexpected page ${res.status}: ${html}`);
    loginForms++;
    const error = /<p id="op-error">([^<]*)</.exec(html)?.[1];
    if (error) errors.push(error);
    const next = pending.shift();
    if (!next) throw new Error('login form shown once more than expected');
    const post = await jar.fetch(new URL(action, url).href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(next).toString(),
    });
    if (post.status === 200) {
      // the form again (wrong password): read it as the next page
      const again = await post.text();
      const againError = /<p id="op-error">([^<]*)</.exec(again)?.[1];
      if (againError) errors.push(againError);
      loginForms++;
      const retry = pending.shift();
      if (!retry) return Promise.reject(new Error(`login refused: ${againError}`));
      const second = await jar.fetch(new URL(action, url).href, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(retry).toString(),
      });
      expect(second.status).toBe(303);
      url = new URL(second.headers.get('location') ?? '', url);
      continue;
    }
    expect(post.status).toBe(303);
    url = new URL(post.headers.get('location') ?? '', url);
  }
  throw new Error('too many redirects');
}

async function signIn(
  config: client.Configuration,
  login: string,
  password: string,
  extra: Record<string, string> = {},
  jar = new CookieJar(),
) {
  const flow = await authorization(config, extra);
  const { callback, loginForms } = await browse(jar, flow.url, [{ login, password }]);
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: flow.verifier,
    expectedState: flow.state,
    expectedNonce: flow.nonce,
  });
  return { tokens, jar, loginForms, flow, callback };
}

describe('the test OpenID Provider', () => {
  it('publishes discovery with the issuer exactly, PKCE S256 and back-channel logout', async () => {
    const res = await fetch(`${op.issuer}/.well-known/openid-configuration`);
    const meta = (await res.json()) as Record<string, unknown>;
    expect(op.issuer).toMatch(/^http:\/\/localhost:\d+$/);
    expect(meta.issuer).toBe(op.issuer);
    expect(meta.code_challenge_methods_supported).toEqual(['S256']);
    expect(meta.backchannel_logout_supported).toBe(true);
    expect(meta.backchannel_logout_session_supported).toBe(true);
    expect(meta.end_session_endpoint).toBe(`${op.issuer}/session/end`);
    expect(meta.scopes_supported).toEqual(expect.arrayContaining(['openid', 'email', 'groups']));
  });

  it('signs in through the login form; the ID token carries the scope claims, sid, and verifies', async () => {
    const config = await discover();
    const { tokens, loginForms, callback } = await signIn(config, 'alice', 'alice-pass');
    expect(loginForms).toBe(1);
    expect(callback.searchParams.get('iss')).toBe(op.issuer);
    const claims = tokens.claims();
    expect(claims).toMatchObject({
      iss: op.issuer,
      aud: CLIENT_ID,
      sub: 'sub-alice',
      email: 'alice@example.com',
      email_verified: true,
      preferred_username: 'alice',
      name: 'Alice Example',
      groups: ['admins', 'staff'],
      realm_access: { roles: ['offline', 'editor'] },
    });
    expect(typeof claims?.sid).toBe('string');
    expect(typeof claims?.auth_time).toBe('number');
    expect(claims?.sid).toBe(op.sidFor('sub-alice', CLIENT_ID));
    expect(decodeProtectedHeader(tokens.id_token ?? '').kid).toBe(op.currentKid());
  });

  it('accepts a private_key_jwt client', async () => {
    const config = await client.discovery(
      new URL(op.issuer),
      JWT_CLIENT_ID,
      undefined,
      client.PrivateKeyJwt(jwtClientKeys.privateKey),
      { execute: [client.allowInsecureRequests] },
    );
    client.enableNonRepudiationChecks(config);
    const { tokens } = await signIn(config, 'alice', 'alice-pass');
    expect(tokens.claims()).toMatchObject({ aud: JWT_CLIENT_ID, sub: 'sub-alice' });
  });

  it('carries amr and acr of an account that sets them', async () => {
    const config = await discover();
    const { tokens } = await signIn(config, 'bob', DEFAULT_OIDC_PASSWORD);
    expect(tokens.claims()).toMatchObject({
      sub: 'sub-bob',
      amr: ['pwd', 'otp', 'mfa'],
      acr: 'urn:example:mfa',
      groups: [],
    });
  });

  it('setAccount adds an account, with a claim name not seen before', async () => {
    await op.setAccount('carol', {
      sub: 'sub-carol',
      claims: { email: 'carol@example.com', department: { name: 'Ops', cost_centre: 42 } },
    });
    const config = await discover();
    const { tokens } = await signIn(config, 'carol', DEFAULT_OIDC_PASSWORD);
    expect(tokens.claims()).toMatchObject({
      sub: 'sub-carol',
      email: 'carol@example.com',
      department: { name: 'Ops', cost_centre: 42 },
    });
  });

  it('shows the form again on a wrong password; a provider session skips it unless prompt=login', async () => {
    const config = await discover();
    const jar = new CookieJar();
    const flow = await authorization(config);
    const first = await browse(jar, flow.url, [
      { login: 'alice', password: 'wrong' },
      { login: 'alice', password: 'alice-pass' },
    ]);
    expect(first.loginForms).toBe(2);
    expect(first.errors).toEqual(['Invalid login or password.']);
    await client.authorizationCodeGrant(config, first.callback, {
      pkceCodeVerifier: flow.verifier,
      expectedState: flow.state,
      expectedNonce: flow.nonce,
    });

    const silent = await signIn(config, 'alice', 'alice-pass', {}, jar);
    expect(silent.loginForms).toBe(0);
    const forced = await signIn(config, 'alice', 'alice-pass', { prompt: 'login' }, jar);
    expect(forced.loginForms).toBe(1);
    const aged = await signIn(config, 'alice', 'alice-pass', { max_age: '0' }, jar);
    expect(aged.loginForms).toBe(1);
  });

  it('rotates its signing key: new kid, old key still published, a fresh config verifies', async () => {
    const oldKid = op.currentKid();
    const newKid = await op.rotateKeys();
    expect(newKid).not.toBe(oldKid);
    expect(op.currentKid()).toBe(newKid);
    const published = (await (await fetch(`${op.issuer}/jwks`)).json()) as {
      keys: { kid: string; d?: string }[];
    };
    expect(published.keys.map((k) => k.kid)).toEqual([newKid, oldKid]);
    expect(published.keys.every((k) => k.d === undefined)).toBe(true);

    op.requests.length = 0;
    const config = await discover();
    const { tokens } = await signIn(config, 'alice', 'alice-pass');
    expect(decodeProtectedHeader(tokens.id_token ?? '').kid).toBe(newKid);
    expect(op.requests.some((r) => r.path === '/jwks' && r.status === 200)).toBe(true);

    await op.rotateKeys({ keepOld: false });
    const after = (await (await fetch(`${op.issuer}/jwks`)).json()) as { keys: { kid: string }[] };
    expect(after.keys.map((k) => k.kid)).toEqual([op.currentKid()]);
  });

  it('tamper: a token answer with a changed nonce, re-signed with the real key, is refused', async () => {
    const config = await discover();
    op.tamper(async (body, tools) => {
      const { payload } = tools.decode(String(body.id_token));
      return { ...body, id_token: await tools.sign({ ...payload, nonce: 'not-the-nonce' }) };
    });
    try {
      const refused = await signIn(config, 'alice', 'alice-pass').catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(client.ClientError);
      expect((refused as client.ClientError).code).toBe('OAUTH_JWT_CLAIM_COMPARISON_FAILED');
      // openid-client wraps oauth4webapi's error, whose cause names the claim
      const cause = (refused as Error).cause as Error & { cause?: { claim?: string } };
      expect(cause.message).toBe('unexpected ID Token "nonce" claim value');
      expect(cause.cause?.claim).toBe('nonce');
    } finally {
      op.tamper(null);
    }
  });

  it('tamper: a foreign key or a broken signature is refused; the real key re-signed passes', async () => {
    const config = await discover();
    try {
      op.tamper(async (body, tools) => {
        const { payload } = tools.decode(String(body.id_token));
        return { ...body, id_token: await tools.sign(payload, { key: 'foreign' }) };
      });
      await expect(signIn(config, 'alice', 'alice-pass')).rejects.toThrow();

      op.tamper((body, tools) => ({
        ...body,
        id_token: tools.breakSignature(String(body.id_token)),
      }));
      await expect(signIn(config, 'alice', 'alice-pass')).rejects.toThrow();

      // the foreign key even under the provider's kid
      op.tamper(async (body, tools) => {
        const { payload } = tools.decode(String(body.id_token));
        return {
          ...body,
          id_token: await tools.sign(payload, { key: 'foreign', kid: op.currentKid() }),
        };
      });
      await expect(signIn(config, 'alice', 'alice-pass')).rejects.toThrow();

      // control: re-signed unchanged with the provider's key is accepted
      op.tamper(async (body, tools) => {
        const { payload } = tools.decode(String(body.id_token));
        return { ...body, id_token: await tools.sign(payload) };
      });
      const { tokens } = await signIn(config, 'alice', 'alice-pass');
      expect(tokens.claims()?.sub).toBe('sub-alice');
    } finally {
      op.tamper(null);
    }
    const standalone = await op.signWithProviderKey({ iss: op.issuer, sub: 'x' });
    expect(decodeProtectedHeader(standalone).kid).toBe(op.currentKid());
    const foreign = await op.signWithForeignKey({ iss: op.issuer, sub: 'x' });
    expect(decodeProtectedHeader(foreign).kid).not.toBe(op.currentKid());
  });

  it('sends a real back-channel logout token to the RP, verifiable against its JWKS', async () => {
    const config = await discover();
    const { tokens } = await signIn(config, 'alice', 'alice-pass');
    const sid = tokens.claims()?.sid;
    rp.received.length = 0;

    const status = await op.backchannelLogout({
      clientId: CLIENT_ID,
      accountId: 'sub-alice',
      sid: String(sid),
    });
    expect(status).toBe(200);
    expect(rp.received).toHaveLength(1);
    const [delivery] = rp.received;
    expect(delivery?.method).toBe('POST');
    expect(delivery?.contentType).toBe('application/x-www-form-urlencoded');
    const logoutToken = delivery?.body.get('logout_token') ?? '';

    const jwks = createRemoteJWKSet(new URL(`${op.issuer}/jwks`));
    const { payload, protectedHeader } = await jwtVerify(logoutToken, jwks, {
      issuer: op.issuer,
      audience: CLIENT_ID,
    });
    expect(protectedHeader.typ).toBe('logout+jwt');
    expect(payload.sub).toBe('sub-alice');
    expect(payload.sid).toBe(sid);
    expect(payload.events).toEqual({ [BACKCHANNEL_LOGOUT_EVENT]: {} });
    expect(typeof payload.jti).toBe('string');
    expect(typeof payload.iat).toBe('number');
    expect(payload.nonce).toBeUndefined();

    // the RP's answer is what backchannelLogout resolves to; sid found from the sessions
    rp.status = 400;
    expect(await op.backchannelLogout({ clientId: CLIENT_ID, sub: 'sub-alice' })).toBe(400);
    expect(rp.received.at(-1)?.body.get('logout_token')).toBeTruthy();
    rp.status = 200;
  });

  it('a sign-out at the provider (end_session, "yes") sends back-channel logout for the session', async () => {
    const config = await discover();
    const { tokens, jar } = await signIn(config, 'alice', 'alice-pass');
    const sid = tokens.claims()?.sid;
    rp.received.length = 0;

    const end = client.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token ?? '',
      post_logout_redirect_uri: POST_LOGOUT_URI,
      state: 'bye',
    });
    const page = await jar.fetch(end.href);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('id="op-logout-yes"');
    const action = /<form id="op.logoutForm" method="post" action="([^"]+)"/.exec(html)?.[1] ?? '';
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
    // what clicking button#op-logout-yes submits
    const confirm = await jar.fetch(action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ xsrf, logout: 'yes' }).toString(),
    });
    expect(confirm.status).toBe(303);
    expect(confirm.headers.get('location')).toBe(`${POST_LOGOUT_URI}?state=bye`);
    await waitFor(() => rp.received.length === 1, 5_000, 'the back-channel logout');
    const token = rp.received[0]?.body.get('logout_token') ?? '';
    const jwks = createRemoteJWKSet(new URL(`${op.issuer}/jwks`));
    const { payload } = await jwtVerify(token, jwks, { issuer: op.issuer, audience: CLIENT_ID });
    expect(payload.sid).toBe(sid);
    expect(op.backchannelDeliveries.at(-1)).toMatchObject({
      clientId: CLIENT_ID,
      sid,
      status: 200,
    });
    // the provider session is gone
    expect(op.sessionsOf('sub-alice').some((s) => s.sids[CLIENT_ID] === sid)).toBe(false);
  });

  it('issues a refresh token for offline_access; refresh works until revokeRefreshTokens', async () => {
    const config = await discover();
    const { tokens } = await signIn(config, 'alice', 'alice-pass', {
      scope: 'openid offline_access groups',
      prompt: 'consent',
    });
    expect(tokens.refresh_token).toBeTruthy();
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token ?? '');
    expect(refreshed.access_token).toBeTruthy();
    expect(refreshed.claims()?.sub).toBe('sub-alice');
    const current = refreshed.refresh_token ?? tokens.refresh_token ?? '';

    expect(await op.revokeRefreshTokens('sub-alice')).toBeGreaterThan(0);
    const refused = await client.refreshTokenGrant(config, current).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(client.ResponseBodyError);
    expect((refused as client.ResponseBodyError).error).toBe('invalid_grant');
  });

  it('stop() takes the provider down, start() brings it back on the same port, state kept', async () => {
    const config = await discover();
    const { tokens } = await signIn(config, 'alice', 'alice-pass', {
      scope: 'openid offline_access',
      prompt: 'consent',
    });
    const port = op.port;
    await op.stop();
    await expect(discover()).rejects.toThrow();
    await op.start();
    expect(op.port).toBe(port);
    const again = await discover();
    const refreshed = await client.refreshTokenGrant(again, tokens.refresh_token ?? '');
    expect(refreshed.claims()?.sub).toBe('sub-alice');
  });
});
