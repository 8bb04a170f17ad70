/**
 * A real OpenID Provider for tests: oidc-provider 9 (certified), in-process, behind our own
 * node:http server on `http://localhost:<port>` (the issuer, exactly, no trailing slash).
 *
 *   const op = await startOidcProvider({ clients: [...], accounts: { alice: { sub, claims } } });
 *   op.issuer                       discovery at `${op.issuer}/.well-known/openid-configuration`
 *   op.requests                     every request seen, { method, path, url, status }
 *   op.currentKid()                 the kid ID tokens are signed with now
 *   await op.rotateKeys({ keepOld }) a new signing key (new kid); the old one stays in the JWKS
 *                                   unless keepOld: false. A new Provider instance behind the same
 *                                   server: same port, issuer, clients, accounts, cookie keys and
 *                                   storage, so provider sessions (cookies), grants, codes,
 *                                   refresh tokens and interactions under way all survive.
 *   op.tamper(fn | null)            rewrite POST /token answers: fn(json, { decode, sign, breakSignature })
 *   op.signWithProviderKey(payload, header?) / op.signWithForeignKey(payload, header?)
 *   await op.backchannelLogout({ clientId, accountId | sub, sid? })  the provider itself POSTs its
 *                                   logout_token to the client's backchannel_logout_uri; resolves
 *                                   to the HTTP status the RP answered (throws if it never answered)
 *   op.sessionsOf(accountId) / op.sidFor(accountId, clientId)   the provider's sessions, their sids
 *   await op.revokeRefreshTokens(accountId) / op.revokeGrants(accountId)
 *   op.setAccount(login, account)   add or change an account (next sign-in sees it)
 *   await op.stop(); await op.start()   provider down / up again on the same port; op.close()
 *
 * Sign-in pages (ours, not oidc-provider's devInteractions), at /interaction/<uid>:
 *   OIDC_LOGIN_FORM.login     input[name=login]       (prefilled from login_hint)
 *   OIDC_LOGIN_FORM.password  input[name=password]
 *   OIDC_LOGIN_FORM.submit    button#op-sign-in        POST /interaction/<uid>/login
 *   OIDC_LOGIN_FORM.cancel    button#op-cancel         the provider answers error=access_denied
 *   OIDC_LOGIN_FORM.error     #op-error                shown (with the form again) on a wrong
 *                                                      login or password
 * Consent is granted automatically (every requested scope and claim), so a sign-in is: the login
 * form once, then redirects. prompt=login and max_age make the provider ask for the password again.
 * amr / acr: an account's `amr` and `acr` go into interactionFinished({ login: { amr, acr } }),
 * and from there into the ID token.
 *
 * Sign-out (RP-initiated, GET /session/end?...): OIDC_LOGOUT_FORM.yes (button#op-logout-yes,
 * name=logout value=yes) signs out of the whole provider session and sends back-channel logout
 * to every client of it; OIDC_LOGOUT_FORM.no only ends the requesting client's part. With
 * `autoConfirmLogout: true` the page submits "yes" by itself (a browser needs no click).
 *
 * Clients: http://localhost redirect_uris, post_logout_redirect_uris and backchannel_logout_uri
 * are accepted as they are (web clients, code flow). Back-channel logout to localhost needs the
 * `fetch` option below: oidc-provider's own fetch refuses loopback addresses (SSRF guard).
 * The ID token carries the scope claims (conformIdTokenClaims: false), amr, acr, auth_time, sid.
 *
 * Cookies are named op_session, op_interaction, op_interaction_resume: cookies do not care
 * about ports, and the RP under test also lives on localhost.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import {
  createServer,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerResponse,
} from 'node:http';
import {
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  type JWK,
  type JWTHeaderParameters,
  type JWTPayload,
  SignJWT,
} from 'jose';
import { reservedDeadPort } from './ports.js';

export const OIDC_LOGIN_FORM = {
  form: 'form#op-login',
  login: 'input[name=login]',
  password: 'input[name=password]',
  submit: 'button#op-sign-in',
  cancel: 'button#op-cancel',
  error: '#op-error',
} as const;

export const OIDC_LOGOUT_FORM = {
  /** Sign out of the provider (all clients of the session get back-channel logout). */
  yes: 'button#op-logout-yes',
  /** Stay signed in at the provider; only the requesting client's part ends. */
  no: 'button#op-logout-no',
} as const;

/** The password of an account that does not set one. */
export const DEFAULT_OIDC_PASSWORD = 'correct horse battery staple';

/** The `events` claim of a back-channel logout token. */
export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

export interface OidcClientRegistration {
  client_id: string;
  /** For client_secret_basic (the default) and client_secret_post. */
  client_secret?: string;
  token_endpoint_auth_method?:
    | 'client_secret_basic'
    | 'client_secret_post'
    | 'client_secret_jwt'
    | 'private_key_jwt'
    | 'none';
  /** The client's public keys, for private_key_jwt. */
  jwks?: { keys: JWK[] };
  /** http://localhost… is fine (application_type web, code flow). */
  redirect_uris: string[];
  post_logout_redirect_uris?: string[];
  /** http://localhost… is fine. */
  backchannel_logout_uri?: string;
  /** Default true when backchannel_logout_uri is set: the logout token carries sid. */
  backchannel_logout_session_required?: boolean;
  /** Default ['authorization_code', 'refresh_token']. */
  grant_types?: string[];
  /** Any other client metadata oidc-provider knows (client_name, id_token_signed_response_alg…). */
  [metadata: string]: unknown;
}

export interface OidcAccount {
  /** The subject (also oidc-provider's accountId). */
  sub: string;
  /** Default DEFAULT_OIDC_PASSWORD. */
  password?: string;
  /**
   * Claims, released by scope: email → email, email_verified; profile → name, preferred_username
   * (and the other standard profile claims); groups → groups; every other name (nested objects
   * like realm_access too) comes with openid. All of them reach the ID token, not only userinfo.
   */
  claims?: Record<string, unknown>;
  /** Authentication methods of every sign-in of this account, e.g. ['pwd', 'otp', 'mfa']. */
  amr?: string[];
  /** Authentication context class of every sign-in of this account. */
  acr?: string;
}

export interface StartOidcProviderOptions {
  clients: OidcClientRegistration[];
  /** login name (typed into the form) → account */
  accounts: Record<string, OidcAccount>;
  /** Default RS256. */
  alg?: 'RS256' | 'ES256';
  /** Lifetimes in seconds (defaults: AccessToken 600, IdToken 600, RefreshToken 86400, Session
   * and Grant 86400, Interaction 600, AuthorizationCode 60). */
  ttl?: Partial<Record<TtlName, number>>;
  /** The RP-initiated logout page submits "yes, sign me out" by itself. Default false. */
  autoConfirmLogout?: boolean;
  /** Default: a free port outside the ephemeral range (so it stays ours across stop/start). */
  port?: number;
}

type TtlName =
  | 'AccessToken'
  | 'AuthorizationCode'
  | 'IdToken'
  | 'RefreshToken'
  | 'Session'
  | 'Grant'
  | 'Interaction';

export interface RecordedRequest {
  method: string;
  /** The path without the query, e.g. /jwks, /token, /.well-known/openid-configuration */
  path: string;
  /** Path and query. */
  url: string;
  /** Set once the answer is sent. */
  status?: number;
}

export interface BackchannelDelivery {
  clientId: string;
  accountId: string;
  sid: string | undefined;
  /** The RP's answer; undefined when it never answered (down, timeout). */
  status: number | undefined;
  error?: string;
}

export interface SignOptions {
  /** Default: the provider's current signing kid (sign), a foreign kid (signWithForeignKey). */
  kid?: string;
  key?: 'current' | 'foreign';
  /** More protected header members (typ…). */
  header?: Record<string, unknown>;
}

export interface TamperTools {
  decode(jwt: string): { header: JWTHeaderParameters; payload: JWTPayload };
  /** Signs `payload` as given (nothing added): with the provider's key, or a foreign one. */
  sign(payload: JWTPayload, options?: SignOptions): Promise<string>;
  /** The same JWT with its signature's bytes changed. */
  breakSignature(jwt: string): string;
}

/** Gets a successful token endpoint JSON answer (id_token, access_token, refresh_token…); returns
 * the JSON to send instead. */
export type TokenTamper = (
  body: Record<string, unknown>,
  tools: TamperTools,
) => Record<string, unknown> | Promise<Record<string, unknown>>;

export interface OidcSessionInfo {
  /** The session's id (its cookie value). */
  id: string;
  accountId: string | undefined;
  loginTs: number | undefined;
  amr: string[] | undefined;
  acr: string | undefined;
  /** clientId → sid (the `sid` of that client's ID tokens and logout tokens). */
  sids: Record<string, string>;
}

export interface OidcProviderHandle {
  readonly issuer: string;
  readonly port: number;
  /** Every request the provider saw (tests may empty it: `op.requests.length = 0`). */
  readonly requests: RecordedRequest[];
  /** Every back-channel logout the provider sent (by backchannelLogout() or a sign-out). */
  readonly backchannelDeliveries: BackchannelDelivery[];
  /** The current oidc-provider instance (changes with rotateKeys), for anything not wrapped. */
  readonly provider: unknown;
  currentKid(): string;
  /** The published JWKS (public keys). */
  jwks(): { keys: JWK[] };
  /** A new signing key; resolves to its kid. Sessions, grants and tokens survive (see top). */
  rotateKeys(options?: { keepOld?: boolean }): Promise<string>;
  tamper(fn: TokenTamper | null): void;
  signWithProviderKey(payload: JWTPayload, header?: Record<string, unknown>): Promise<string>;
  signWithForeignKey(payload: JWTPayload, header?: Record<string, unknown>): Promise<string>;
  backchannelLogout(target: {
    clientId: string;
    accountId?: string;
    sub?: string;
    sid?: string;
  }): Promise<number>;
  sessionsOf(accountId: string): OidcSessionInfo[];
  /** The sid of the newest session of this account with that client. */
  sidFor(accountId: string, clientId: string): string | undefined;
  /** The provider refuses these refresh tokens from now on (invalid_grant); resolves to how many. */
  revokeRefreshTokens(accountId: string, clientId?: string): Promise<number>;
  /** Grants and every token of them (the next authorization asks for consent again). */
  revokeGrants(accountId: string, clientId?: string): Promise<number>;
  setAccount(login: string, account: OidcAccount): Promise<void>;
  /** Provider down: connections refused. */
  stop(): Promise<void>;
  /** Up again, same port, same state. */
  start(): Promise<void>;
  close(): Promise<void>;
}

// ---- oidc-provider has no type declarations: the little we use of it ----

interface OidcProviderInstance {
  issuer: string;
  callback(): RequestListener;
  on(event: string, listener: (...args: unknown[]) => void): void;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
  interactionFinished(
    req: IncomingMessage,
    res: ServerResponse,
    result: Record<string, unknown>,
    options?: { mergeWithLastSubmission?: boolean },
  ): Promise<void>;
  Grant: {
    new (init: { accountId: string; clientId: string }): GrantInstance;
    find(id: string): Promise<GrantInstance | undefined>;
  };
  Client: {
    find(id: string): Promise<
      | {
          clientId: string;
          backchannelLogoutUri?: string;
          backchannelLogout(sub: string, sid: string | undefined): Promise<void>;
        }
      | undefined
    >;
  };
}

interface GrantInstance {
  addOIDCScope(scope: string): void;
  addOIDCClaims(claims: string[]): void;
  addResourceScope(indicator: string, scope: string): void;
  save(): Promise<string>;
}

interface InteractionDetails {
  uid: string;
  prompt: { name: string; reasons: string[]; details: Record<string, unknown> };
  params: Record<string, unknown>;
  session?: { accountId?: string };
  grantId?: string;
}

type ProviderConstructor = new (issuer: string, config: object) => OidcProviderInstance;

const OIDC_PROVIDER_MODULE: string = 'oidc-provider';
let providerClass: Promise<ProviderConstructor> | undefined;

/** Imports oidc-provider once; its import-time notice (it prefers Node 22) is not test output. */
function loadProviderClass(): Promise<ProviderConstructor> {
  providerClass ??= quietly(async () => {
    const mod = (await import(OIDC_PROVIDER_MODULE)) as { default: ProviderConstructor };
    return mod.default;
  });
  return providerClass;
}

/** Runs fn with oidc-provider's console notices (`oidc-provider NOTICE/WARNING: …`) dropped. */
async function quietly<T>(fn: () => Promise<T> | T): Promise<T> {
  const { info, warn } = console;
  const drop =
    (original: (...args: unknown[]) => void) =>
    (...args: unknown[]) => {
      if (typeof args[0] === 'string' && args[0].includes('oidc-provider ')) return;
      original.apply(console, args);
    };
  console.info = drop(info);
  console.warn = drop(warn);
  try {
    return await fn();
  } finally {
    console.info = info;
    console.warn = warn;
  }
}

// ---- storage shared by every Provider instance of one helper (survives rotateKeys) ----

interface Stored {
  payload: Record<string, unknown>;
  expiresAt: number;
}

const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

class Storage {
  readonly entries = new Map<string, Stored>();

  get(key: string): Record<string, unknown> | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  /** Live payloads of one model. */
  *all(model: string): Generator<[id: string, payload: Record<string, unknown>]> {
    const prefix = `${model}:`;
    for (const key of [...this.entries.keys()]) {
      if (!key.startsWith(prefix)) continue;
      const payload = this.get(key);
      if (payload) yield [key.slice(prefix.length), payload];
    }
  }

  deleteGrantMembers(grantId: string): number {
    let removed = 0;
    for (const [key, entry] of this.entries) {
      const model = key.slice(0, key.indexOf(':'));
      if (GRANTABLE.has(model) && entry.payload.grantId === grantId) {
        this.entries.delete(key);
        removed++;
      }
    }
    return removed;
  }

  adapterFor(clockToleranceSeconds: number) {
    const storage = this;
    return class Adapter {
      constructor(readonly model: string) {}

      key(id: string): string {
        return `${this.model}:${id}`;
      }

      async upsert(id: string, payload: Record<string, unknown>, expiresIn?: number) {
        const expiresAt =
          typeof expiresIn === 'number'
            ? Date.now() + (expiresIn + clockToleranceSeconds) * 1000
            : Number.POSITIVE_INFINITY;
        storage.entries.set(this.key(id), { payload: structuredClone(payload), expiresAt });
      }

      async find(id: string) {
        const payload = storage.get(this.key(id));
        return payload ? structuredClone(payload) : undefined;
      }

      async findByUid(uid: string) {
        for (const [, payload] of storage.all(this.model)) {
          if (payload.uid === uid) return structuredClone(payload);
        }
        return undefined;
      }

      async findByUserCode(userCode: string) {
        for (const [, payload] of storage.all(this.model)) {
          if (payload.userCode === userCode) return structuredClone(payload);
        }
        return undefined;
      }

      async consume(id: string) {
        const payload = storage.get(this.key(id));
        if (payload) payload.consumed = Math.floor(Date.now() / 1000);
      }

      async destroy(id: string) {
        storage.entries.delete(this.key(id));
      }

      async revokeByGrantId(grantId: string) {
        storage.deleteGrantMembers(grantId);
      }
    };
  }
}

// ---- claims ----

const STANDARD_SCOPES: Record<string, string[]> = {
  email: ['email', 'email_verified'],
  profile: [
    'name',
    'preferred_username',
    'given_name',
    'family_name',
    'middle_name',
    'nickname',
    'profile',
    'picture',
    'website',
    'gender',
    'birthdate',
    'zoneinfo',
    'locale',
    'updated_at',
  ],
  groups: ['groups'],
  address: ['address'],
  phone: ['phone_number', 'phone_number_verified'],
};

/** Scope → claims; every account claim not in a standard scope comes with openid. */
function claimsConfig(accounts: Map<string, OidcAccount>): Record<string, string[] | null> {
  const known = new Set(['sub', ...Object.values(STANDARD_SCOPES).flat()]);
  const extra = new Set<string>();
  for (const account of accounts.values()) {
    for (const name of Object.keys(account.claims ?? {})) {
      if (!known.has(name) && !['amr', 'acr', 'sid', 'auth_time', 'iss'].includes(name)) {
        extra.add(name);
      }
    }
  }
  return {
    // amr, acr and auth_time with openid, so every ID token has them (as Keycloak's do): as
    // standalone claims they would reach it only when the RP asks (acr_values, max_age, claims)
    openid: ['sub', 'amr', 'acr', 'auth_time', ...extra],
    ...STANDARD_SCOPES,
    sid: null,
    auth_time: null,
    iss: null,
  };
}

// ---- keys ----

interface SigningKey {
  kid: string;
  privateJwk: JWK;
  publicJwk: JWK;
  key: CryptoKey;
}

async function newSigningKey(alg: 'RS256' | 'ES256', kidPrefix: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = `${kidPrefix}-${randomBytes(6).toString('hex')}`;
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, privateJwk, publicJwk, key: privateKey };
}

// ---- small http bits ----

function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.statusCode = status;
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.setHeader('cache-control', 'no-store');
  res.end(html);
}

function page(title: string, body: string): string {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body>${body}</body></html>`;
}

function breakSignature(jwt: string): string {
  const [header = '', payload = '', signature = ''] = jwt.split('.');
  const bytes = Buffer.from(signature, 'base64url');
  bytes[0] = (bytes[0] ?? 0) ^ 0xff;
  return `${header}.${payload}.${bytes.toString('base64url')}`;
}

const DEFAULT_TTL: Record<TtlName, number> = {
  AccessToken: 600,
  AuthorizationCode: 60,
  IdToken: 600,
  RefreshToken: 86_400,
  Session: 86_400,
  Grant: 86_400,
  Interaction: 600,
};

export async function startOidcProvider(
  options: StartOidcProviderOptions,
): Promise<OidcProviderHandle> {
  const Provider = await loadProviderClass();
  const alg = options.alg ?? 'RS256';
  const ttl = { ...DEFAULT_TTL, ...options.ttl };
  const accounts = new Map(Object.entries(options.accounts));
  const storage = new Storage();
  const cookieKeys = [randomBytes(32).toString('base64url')];
  let signingKeys = [await newSigningKey(alg, 'op')];
  const foreignKey = await newSigningKey(alg, 'foreign');
  const requests: RecordedRequest[] = [];
  const backchannelDeliveries: BackchannelDelivery[] = [];
  /** The status of the provider's outgoing requests, per backchannelLogout() call. */
  const outgoing = new AsyncLocalStorage<{ status?: number }>();
  /** The last status each URL the provider POSTed to answered (for logouts by a sign-out). */
  const lastStatusOf = new Map<string, number>();
  let tamperFn: TokenTamper | null = null;

  let port = options.port ?? (await reservedDeadPort());
  let issuer = `http://localhost:${port}`;

  const clients = options.clients.map((c) => ({
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    ...(c.backchannel_logout_uri ? { backchannel_logout_session_required: true } : {}),
    ...c,
  }));

  const accountBySub = (sub: string) => [...accounts.values()].find((a) => a.sub === sub);

  function buildProvider(): OidcProviderInstance {
    const seconds = (name: TtlName) => () => ttl[name];
    const config = {
      adapter: storage.adapterFor(15),
      clients,
      clientDefaults: {
        grant_types: ['authorization_code', 'refresh_token'],
        id_token_signed_response_alg: alg,
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      jwks: { keys: signingKeys.map((k) => k.privateJwk) },
      cookies: {
        keys: cookieKeys,
        names: {
          session: 'op_session',
          interaction: 'op_interaction',
          resume: 'op_interaction_resume',
        },
      },
      claims: claimsConfig(accounts),
      conformIdTokenClaims: false,
      pkce: { required: () => true },
      clientBasedCORS: () => true,
      findAccount: async (_ctx: unknown, sub: string) => {
        const account = accountBySub(sub);
        if (!account) return undefined;
        return {
          accountId: sub,
          claims: async () => ({ ...account.claims, sub }),
        };
      },
      interactions: {
        url: async (_ctx: unknown, interaction: { uid: string }) =>
          `/interaction/${interaction.uid}`,
      },
      features: {
        devInteractions: { enabled: false },
        rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
        backchannelLogout: { enabled: true },
        revocation: { enabled: true, allowedPolicy: async () => true },
        userinfo: { enabled: true },
      },
      ttl: {
        AccessToken: seconds('AccessToken'),
        AuthorizationCode: seconds('AuthorizationCode'),
        IdToken: seconds('IdToken'),
        RefreshToken: seconds('RefreshToken'),
        Session: seconds('Session'),
        Grant: seconds('Grant'),
        Interaction: seconds('Interaction'),
        ClientCredentials: 600,
        DeviceCode: 600,
        BackchannelAuthenticationRequest: 600,
        PreAuthorizedCode: 600,
      },
      renderError: async (ctx: { type: string; body: string }, out: Record<string, string>) => {
        ctx.type = 'html';
        ctx.body = page(
          'Error',
          `<h1>Error</h1>${Object.entries(out)
            .map(([k, v]) => `<p id="op-${escapeHtml(k)}">${escapeHtml(k)}: ${escapeHtml(v)}</p>`)
            .join('')}`,
        );
      },
      // Back-channel logout goes to the RP on localhost: oidc-provider's fetch refuses loopback
      // (SSRF protection, its own undici dispatcher); plain fetch without that dispatcher.
      fetch: async (url: string, init: RequestInit & { dispatcher?: unknown }) => {
        const { dispatcher: _ssrfGuard, ...rest } = init;
        const response = await fetch(url, rest);
        lastStatusOf.set(new URL(url).href, response.status);
        const holder = outgoing.getStore();
        if (holder) holder.status = response.status;
        return response;
      },
    };
    const provider = new Provider(issuer, config);
    // Koa logs unhandled errors to stderr unless someone listens
    provider.on('error', () => {});
    provider.on('backchannel.success', (_ctx, client, accountId, sid) => {
      const { clientId, backchannelLogoutUri = '' } = client as {
        clientId: string;
        backchannelLogoutUri?: string;
      };
      backchannelDeliveries.push({
        clientId,
        accountId: accountId as string,
        sid: sid as string | undefined,
        status: lastStatusOf.get(new URL(backchannelLogoutUri).href),
      });
    });
    provider.on('backchannel.error', (_ctx, err, client, accountId, sid) => {
      const error = err as Error & { response?: { status: number } };
      backchannelDeliveries.push({
        clientId: (client as { clientId: string }).clientId,
        accountId: accountId as string,
        sid: sid as string | undefined,
        status: error.response?.status,
        error: error.message,
      });
    });
    return provider;
  }

  async function logoutSource(ctx: { body: string }, form: string): Promise<void> {
    const auto = options.autoConfirmLogout
      ? `<script>document.getElementById('op-logout-yes').click()</script>`
      : '';
    ctx.body = page(
      'Sign out',
      `<h1>Sign out of the provider?</h1>${form}
<button id="op-logout-yes" type="submit" form="op.logoutForm" name="logout" value="yes">Yes, sign me out</button>
<button id="op-logout-no" type="submit" form="op.logoutForm">No, stay signed in</button>${auto}`,
    );
  }

  async function postLogoutSuccessSource(ctx: { body: string }): Promise<void> {
    ctx.body = page('Signed out', '<h1 id="op-signed-out">Signed out</h1>');
  }

  let provider = await quietly(buildProvider);
  let handler = provider.callback();

  // ---- our interaction pages ----

  function loginForm(uid: string, loginHint: string, error?: string): string {
    return page(
      'Sign in',
      `<h1>Sign in</h1>${error ? `<p id="op-error">${escapeHtml(error)}</p>` : ''}
<form id="op-login" method="post" action="/interaction/${escapeHtml(uid)}/login">
<label>Login <input name="login" autocomplete="username" value="${escapeHtml(loginHint)}" autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button id="op-sign-in" type="submit">Sign in</button>
<button id="op-cancel" type="submit" formaction="/interaction/${escapeHtml(uid)}/abort">Cancel</button>
</form>`,
    );
  }

  async function grantConsent(
    p: OidcProviderInstance,
    req: IncomingMessage,
    res: ServerResponse,
    details: InteractionDetails,
  ): Promise<void> {
    const accountId = details.session?.accountId;
    const clientId = String(details.params.client_id);
    if (!accountId) throw new Error('consent without a signed-in account');
    const grant =
      (details.grantId ? await p.Grant.find(details.grantId) : undefined) ??
      new p.Grant({ accountId, clientId });
    const missing = details.prompt.details;
    const scopes = (missing.missingOIDCScope as string[] | undefined) ?? [];
    if (scopes.length) grant.addOIDCScope(scopes.join(' '));
    const claims = (missing.missingOIDCClaims as string[] | undefined) ?? [];
    if (claims.length) grant.addOIDCClaims(claims);
    const resources = (missing.missingResourceScopes as Record<string, string[]> | undefined) ?? {};
    for (const [indicator, s] of Object.entries(resources)) {
      grant.addResourceScope(indicator, s.join(' '));
    }
    const grantId = await grant.save();
    await p.interactionFinished(
      req,
      res,
      { consent: details.grantId ? {} : { grantId } },
      { mergeWithLastSubmission: true },
    );
  }

  async function interaction(
    req: IncomingMessage,
    res: ServerResponse,
    pathname: string,
  ): Promise<void> {
    const p = provider;
    const match = /^\/interaction\/([^/]+)(?:\/(login|abort))?$/.exec(pathname);
    if (!match) return sendHtml(res, 404, page('Not found', '<h1>Not found</h1>'));
    const [, uid = '', action] = match;
    let details: InteractionDetails;
    try {
      details = await p.interactionDetails(req, res);
    } catch (err) {
      return sendHtml(
        res,
        400,
        page('Sign-in expired', `<h1 id="op-error">${escapeHtml((err as Error).message)}</h1>`),
      );
    }
    if (details.uid !== uid) {
      return sendHtml(
        res,
        400,
        page('Wrong interaction', '<h1 id="op-error">wrong interaction</h1>'),
      );
    }

    if (req.method === 'POST' && action === 'abort') {
      return p.interactionFinished(
        req,
        res,
        { error: 'access_denied', error_description: 'End-User aborted interaction' },
        { mergeWithLastSubmission: false },
      );
    }

    if (req.method === 'POST' && action === 'login') {
      const form = await readForm(req);
      const login = form.get('login') ?? '';
      const account = accounts.get(login);
      const password = form.get('password') ?? '';
      if (!account || password !== (account.password ?? DEFAULT_OIDC_PASSWORD)) {
        return sendHtml(res, 200, loginForm(uid, login, 'Invalid login or password.'));
      }
      return p.interactionFinished(
        req,
        res,
        {
          login: {
            accountId: account.sub,
            ...(account.amr ? { amr: account.amr } : {}),
            ...(account.acr ? { acr: account.acr } : {}),
          },
        },
        { mergeWithLastSubmission: false },
      );
    }

    if (req.method !== 'GET') return sendHtml(res, 405, page('Method', '<h1>405</h1>'));

    switch (details.prompt.name) {
      case 'login': {
        const hint = typeof details.params.login_hint === 'string' ? details.params.login_hint : '';
        return sendHtml(res, 200, loginForm(uid, hint));
      }
      case 'consent':
        return grantConsent(p, req, res, details);
      default:
        return sendHtml(
          res,
          400,
          page(
            'Unknown prompt',
            `<h1 id="op-error">prompt ${escapeHtml(details.prompt.name)}</h1>`,
          ),
        );
    }
  }

  // ---- the http server in front ----

  const tools: TamperTools = {
    decode: (jwt) => ({
      header: decodeProtectedHeader(jwt) as JWTHeaderParameters,
      payload: decodeJwt(jwt),
    }),
    sign: (payload, o = {}) => sign(payload, o),
    breakSignature,
  };

  async function sign(payload: JWTPayload, o: SignOptions): Promise<string> {
    const current = signingKeys[0];
    if (!current) throw new Error('no signing key');
    const key = o.key === 'foreign' ? foreignKey : current;
    return new SignJWT(payload)
      .setProtectedHeader({ alg, kid: o.kid ?? key.kid, ...o.header })
      .sign(key.key);
  }

  function tamperResponse(res: ServerResponse, fn: TokenTamper): void {
    const chunks: Buffer[] = [];
    const end = res.end.bind(res) as (chunk?: unknown) => ServerResponse;
    const toBuffer = (chunk: unknown) =>
      typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk as Uint8Array);
    res.write = ((chunk: unknown) => {
      chunks.push(toBuffer(chunk));
      return true;
    }) as ServerResponse['write'];
    res.end = ((chunk?: unknown) => {
      if (chunk !== undefined && typeof chunk !== 'function') chunks.push(toBuffer(chunk));
      const original = Buffer.concat(chunks);
      const isJson = String(res.getHeader('content-type') ?? '').includes('json');
      if (res.statusCode !== 200 || !isJson) {
        end(original);
        return res;
      }
      void (async () => {
        let out = original;
        try {
          const changed = await fn(JSON.parse(original.toString('utf8')), tools);
          out = Buffer.from(JSON.stringify(changed));
        } catch (err) {
          res.statusCode = 500;
          out = Buffer.from(
            JSON.stringify({ error: 'server_error', error_description: `tamper: ${String(err)}` }),
          );
        }
        res.setHeader('content-length', out.length);
        end(out);
      })();
      return res;
    }) as ServerResponse['end'];
  }

  const listener: RequestListener = (req, res) => {
    const url = req.url ?? '/';
    const path = url.split('?')[0] ?? '/';
    const entry: RecordedRequest = { method: req.method ?? 'GET', path, url };
    requests.push(entry);
    res.on('finish', () => {
      entry.status = res.statusCode;
    });
    if (path === '/favicon.ico') {
      // a browser asks; a 404 would be a console error in browser tests that watch for them
      res.statusCode = 204;
      res.end();
      return;
    }
    if (path.startsWith('/interaction/')) {
      interaction(req, res, path).catch((err: unknown) => {
        if (!res.headersSent) {
          sendHtml(res, 500, page('Error', `<h1 id="op-error">${escapeHtml(String(err))}</h1>`));
        } else res.destroy();
      });
      return;
    }
    if (tamperFn && req.method === 'POST' && path === '/token') tamperResponse(res, tamperFn);
    handler(req, res);
  };

  let servers: Server[] = [];

  async function listenOn(host: string): Promise<Server> {
    const server = createServer(listener);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return server;
  }

  async function listen(): Promise<void> {
    servers = [await listenOn('127.0.0.1')];
    // where localhost also means ::1, answer there too (best effort)
    try {
      servers.push(await listenOn('::1'));
    } catch {
      // no IPv6 loopback, or the port is taken there: 127.0.0.1 is enough
    }
  }

  for (let attempt = 1; ; attempt++) {
    try {
      await listen();
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EADDRINUSE' || options.port !== undefined || attempt >= 5) throw err;
      port = await reservedDeadPort();
      issuer = `http://localhost:${port}`;
      provider = await quietly(buildProvider);
      handler = provider.callback();
    }
  }

  async function stopServers(): Promise<void> {
    const closing = servers.map(
      (server) =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    );
    servers = [];
    await Promise.all(closing);
  }

  function sessionInfo(id: string, payload: Record<string, unknown>): OidcSessionInfo {
    const authorizations = (payload.authorizations ?? {}) as Record<string, { sid?: string }>;
    const sids: Record<string, string> = {};
    for (const [clientId, authorization] of Object.entries(authorizations)) {
      if (authorization.sid) sids[clientId] = authorization.sid;
    }
    return {
      id,
      accountId: payload.accountId as string | undefined,
      loginTs: payload.loginTs as number | undefined,
      amr: payload.amr as string[] | undefined,
      acr: payload.acr as string | undefined,
      sids,
    };
  }

  const handle: OidcProviderHandle = {
    get issuer() {
      return issuer;
    },
    get port() {
      return port;
    },
    requests,
    backchannelDeliveries,
    get provider() {
      return provider;
    },
    currentKid() {
      const current = signingKeys[0];
      if (!current) throw new Error('no signing key');
      return current.kid;
    },
    jwks() {
      return { keys: signingKeys.map((k) => k.publicJwk) };
    },
    async rotateKeys({ keepOld = true } = {}) {
      const fresh = await newSigningKey(alg, 'op');
      signingKeys = keepOld ? [fresh, ...signingKeys] : [fresh];
      provider = await quietly(buildProvider);
      handler = provider.callback();
      return fresh.kid;
    },
    tamper(fn) {
      tamperFn = fn;
    },
    signWithProviderKey(payload, header) {
      return sign(payload, { key: 'current', ...(header ? { header } : {}) });
    },
    signWithForeignKey(payload, header) {
      return sign(payload, { key: 'foreign', ...(header ? { header } : {}) });
    },
    async backchannelLogout({ clientId, accountId, sub, sid }) {
      const subject = accountId ?? sub;
      if (!subject) throw new Error('backchannelLogout: accountId or sub');
      const client = await provider.Client.find(clientId);
      if (!client) throw new Error(`backchannelLogout: no client ${clientId}`);
      if (!client.backchannelLogoutUri) {
        throw new Error(`backchannelLogout: client ${clientId} has no backchannel_logout_uri`);
      }
      const theSid = sid ?? handle.sidFor(subject, clientId);
      const holder: { status?: number } = {};
      let error: (Error & { response?: { status: number } }) | undefined;
      await outgoing.run(holder, async () => {
        try {
          await client.backchannelLogout(subject, theSid);
        } catch (err) {
          error = err as Error & { response?: { status: number } };
        }
      });
      const status = error?.response?.status ?? holder.status;
      backchannelDeliveries.push({
        clientId,
        accountId: subject,
        sid: theSid,
        status,
        ...(error ? { error: error.message } : {}),
      });
      if (status === undefined) {
        throw new Error(`backchannel logout to ${client.backchannelLogoutUri} got no answer`, {
          cause: error,
        });
      }
      return status;
    },
    sessionsOf(accountId) {
      const found: OidcSessionInfo[] = [];
      for (const [id, payload] of storage.all('Session')) {
        if (payload.accountId === accountId) found.push(sessionInfo(id, payload));
      }
      return found.sort((a, b) => (b.loginTs ?? 0) - (a.loginTs ?? 0));
    },
    sidFor(accountId, clientId) {
      return handle.sessionsOf(accountId).find((s) => s.sids[clientId])?.sids[clientId];
    },
    async revokeRefreshTokens(accountId, clientId) {
      let revoked = 0;
      for (const [id, payload] of storage.all('RefreshToken')) {
        if (payload.accountId !== accountId) continue;
        if (clientId !== undefined && payload.clientId !== clientId) continue;
        storage.entries.delete(`RefreshToken:${id}`);
        revoked++;
      }
      return revoked;
    },
    async revokeGrants(accountId, clientId) {
      let revoked = 0;
      for (const [id, payload] of storage.all('Grant')) {
        if (payload.accountId !== accountId) continue;
        if (clientId !== undefined && payload.clientId !== clientId) continue;
        storage.deleteGrantMembers(id);
        storage.entries.delete(`Grant:${id}`);
        revoked++;
      }
      return revoked;
    },
    async setAccount(login, account) {
      const before = JSON.stringify(claimsConfig(accounts));
      accounts.set(login, account);
      if (JSON.stringify(claimsConfig(accounts)) !== before) {
        // a claim name never seen before: the claims configuration changes
        provider = await quietly(buildProvider);
        handler = provider.callback();
      }
    },
    async stop() {
      await stopServers();
    },
    async start() {
      if (servers.length === 0) await listen();
    },
    async close() {
      await stopServers();
    },
  };
  return handle;
}
