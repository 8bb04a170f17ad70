import http from 'node:http';
import https from 'node:https';
import {
  type Authentication,
  authenticationOf,
  parseAuthenticationBody,
} from '../../common/src/authentication.js';
import { GatehouseError } from '../../common/src/errors.js';
import type { Identity } from '../../common/src/identity.js';
import type { Logger } from '../../common/src/logger.js';
import {
  createRevocationStream,
  type RevocationFeed,
  type RevocationListener,
} from './revocation-stream.js';
import { createValidationCache, type Ticket } from './validation-cache.js';

/** What validate says of an access token (its id is the token's SHA-256, never the token). */
export interface TokenUse {
  id: string;
  name: string;
  kind: 'personal' | 'service';
  expiresAt: string;
  /** Route ids it may reach (absent: any) and whether it is read-only; its groups are applied. */
  scope: { routes?: string[]; readOnly?: boolean };
}

export interface Validation {
  user: Identity;
  /** When the credential ends: the session's expiry, or the access token's (no createdAt then). */
  session: { createdAt?: string; expiresAt: string };
  /**
   * How the session was authenticated (methods, level, when): what route requirements check.
   * Absent for an access token, which proves no sign-in.
   */
  authentication?: Authentication;
  /** Set when the credential was an access token. */
  token?: TokenUse;
  /** The signed identity (compact JWT, aud = the route id) when asked for and the service signs. */
  jwt?: string;
}

/**
 * validate refused an access token for a reason other than "not valid": too many failed tokens
 * from this address (429 TOO_MANY_ATTEMPTS, with its Retry-After), or sent over plain HTTP
 * (403 HTTPS_REQUIRED). The gateway answers the client the same, never 503.
 */
export class TokenRefused extends Error {
  constructor(
    readonly code: 'TOO_MANY_ATTEMPTS' | 'HTTPS_REQUIRED',
    readonly retryAfter?: string,
  ) {
    super(`validate refused the token: ${code}`);
    this.name = 'TokenRefused';
  }
}

/** A compact JWS (header.payload.signature, base64url): nothing else goes into a header. */
const COMPACT_JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export interface ValidateInput {
  cookie?: string;
  /**
   * An access token the client presented (`Authorization: Bearer gatehouse_…`): validated in
   * place of the cookie, which is then not sent (the session-service reads the token first).
   */
  token?: string;
  requestId?: string;
  clientIp?: string;
  userAgent?: string;
  /**
   * The route id: asks for a signed identity for that audience (the session-service's
   * /internal/validate?aud=, with the internal token; ignored without one).
   */
  audience?: string;
}

export interface SessionClient {
  /**
   * A validation, `null` for "no valid session"; otherwise (down, slow, failing) throws
   * GatehouseError('SESSION_SERVICE_UNAVAILABLE'), its message saying why (for the log): the
   * gateway fails closed.
   */
  validate(input: ValidateInput): Promise<Validation | null>;
  /**
   * A request that may end this cookie's session (logout, revocation) is on its way: drop the
   * session from this gateway's cache now (the revocation event reaches every gateway anyway).
   */
  forget?(cookie: string | undefined): void;
  /** The validation cache's state, for metrics. */
  cacheStats?(): CacheStats;
  /**
   * The session-service's revocation feed (with the validation cache only): WebSocket tunnels
   * close a revoked session's sockets from it (websocket-checks.ts).
   */
  feed?: RevocationFeed;
  close(): void;
}

export interface CacheStats {
  enabled: boolean;
  entries: number;
  hits: number;
  misses: number;
  bypasses: number;
}

export interface SessionClientOptions {
  /** The session-service: http:, or https: with a certificate Node verifies (NODE_EXTRA_CA_CERTS for a private CA). */
  baseUrl: string;
  timeoutMs: number;
  /**
   * INTERNAL_TOKEN: presented on /internal/validate (signed identities) and on the revocation
   * stream. Without it no signed identity is asked for: validate goes to /auth/validate.
   */
  internalToken?: string;
  /**
   * The validation cache (VALIDATE_CACHE_TTL_MS): on while the revocation stream from the
   * session-service is connected. Absent or ttlMs 0: every request is validated.
   */
  cache?: { ttlMs: number; maxEntries: number; logger: Logger };
}

const MAX_BODY = 64 * 1024;

/**
 * A session-service from before issue 14 says nothing of how a session signed in: a password, at
 * an unknown time. Fail safe: `authTime` 0 is older than any `maxAge`, so such routes always ask
 * again, and no route that needs a second factor lets it through.
 */
export const UNKNOWN_AUTHENTICATION: Authentication = Object.freeze(authenticationOf(['pwd'], 0));

/** The validate body's `authentication`: absent is UNKNOWN_AUTHENTICATION, malformed is undefined. */
function authenticationIn(body: { authentication?: unknown }): Authentication | undefined {
  if (body.authentication === undefined) return UNKNOWN_AUTHENTICATION;
  return parseAuthenticationBody(body.authentication);
}

const strings = (value: unknown): value is string[] =>
  Array.isArray(value) && value.every((v) => typeof v === 'string');

/**
 * validate's answer for an access token: the owner, and the token's id, name, kind, expiry and
 * scope. Undefined when any of it does not parse (the gateway then fails closed), or when it
 * carries `authentication` (a token never does: an answer for a session cannot pass as one).
 */
function tokenAnswer(body: unknown): Omit<Validation, 'jwt'> | undefined {
  const b = body as {
    user?: Identity;
    token?: Record<string, unknown>;
    authentication?: unknown;
  } | null;
  const user = b?.user;
  const t = b?.token;
  if (!user || typeof user.username !== 'string' || !strings(user.groups) || !t) return undefined;
  if (b.authentication !== undefined) return undefined;
  const scope = (t.scope ?? {}) as Record<string, unknown>;
  if (
    typeof t.id !== 'string' ||
    typeof t.name !== 'string' ||
    (t.kind !== 'personal' && t.kind !== 'service') ||
    typeof t.expiresAt !== 'string' ||
    !Number.isFinite(Date.parse(t.expiresAt)) ||
    typeof scope !== 'object' ||
    (scope.routes !== undefined && !strings(scope.routes)) ||
    (scope.readOnly !== undefined && typeof scope.readOnly !== 'boolean')
  )
    return undefined;
  return {
    user,
    session: { expiresAt: t.expiresAt },
    token: {
      id: t.id,
      name: t.name,
      kind: t.kind,
      expiresAt: t.expiresAt,
      scope: {
        ...(scope.routes !== undefined ? { routes: scope.routes as string[] } : {}),
        ...(scope.readOnly !== undefined ? { readOnly: scope.readOnly as boolean } : {}),
      },
    },
  };
}

/** The `error` of a JSON error answer, if it is one. */
function errorCodeOf(text: string): string | undefined {
  try {
    const code = (JSON.parse(text) as { error?: unknown } | null)?.error;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Calls the session-service's GET /internal/validate?aud=<route id> with the internal token when
 * an audience is given (the only way to a signed identity: the public /auth/validate never signs),
 * else GET /auth/validate, over a keep-alive agent (HTTP or HTTPS, certificates verified) with a
 * hard deadline; with `cache`, positive answers are kept briefly (validation-cache.ts) and dropped
 * on the revocation events of the session-service.
 */
export function createSessionClient(options: SessionClientOptions): SessionClient {
  const publicUrl = new URL('/auth/validate', options.baseUrl);
  const internalUrl = new URL('/internal/validate', options.baseUrl);
  const { internalToken } = options;
  const tls = publicUrl.protocol === 'https:';
  // (Default TLS options: the certificate must verify against Node's CAs plus NODE_EXTRA_CA_CERTS.)
  const agentOptions = { keepAlive: true, maxSockets: 256, maxFreeSockets: 64 } as const;
  const agent = tls
    ? new https.Agent({ ...agentOptions, scheduling: 'lifo' })
    : new http.Agent({ ...agentOptions, scheduling: 'lifo' });
  const send = tls ? https.request : http.request;

  function ask(input: ValidateInput): Promise<Validation | null> {
    return new Promise((resolve, reject) => {
      const fail = (why: string) =>
        reject(new GatehouseError('SESSION_SERVICE_UNAVAILABLE', { message: why }));
      const headers: Record<string, string> = { accept: 'application/json' };
      const { token } = input;
      if (token === undefined && input.cookie) headers.cookie = input.cookie;
      if (input.requestId) headers['x-request-id'] = input.requestId;
      if (input.clientIp) headers['x-forwarded-for'] = input.clientIp;
      if (input.userAgent) headers['user-agent'] = input.userAgent;
      const signed = input.audience !== undefined && internalToken !== undefined;
      const url = new URL(signed ? internalUrl : publicUrl);
      if (signed) {
        url.searchParams.set('aud', input.audience as string);
        headers.authorization = `Bearer ${internalToken}`;
      }
      // The internal validate's own Authorization is the internal token: the client's goes in
      // X-Gatehouse-Authorization (the public validate reads Authorization itself).
      if (token !== undefined)
        headers[signed ? 'x-gatehouse-authorization' : 'authorization'] = `Bearer ${token}`;
      const req = send(url, { method: 'GET', agent, headers }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY) {
            req.destroy();
            fail('validate answer too large');
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', () => fail('validate answer broken'));
        res.on('end', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode === 401) {
            // "No session" is UNAUTHENTICATED; a refused internal token is a misconfiguration
            // (INTERNAL_TOKEN differs): fail closed with 503 and say why, not "logged out".
            if (errorCodeOf(text) !== 'INVALID_INTERNAL_TOKEN') return resolve(null);
            return fail('the session-service refused the internal token (INTERNAL_TOKEN differs)');
          }
          if (token !== undefined && (res.statusCode === 429 || res.statusCode === 403)) {
            const code = errorCodeOf(text);
            if (res.statusCode === 429 && code === 'TOO_MANY_ATTEMPTS') {
              const retryAfter = res.headers['retry-after'];
              return reject(
                new TokenRefused(
                  code,
                  typeof retryAfter === 'string' && /^\d{1,6}$/.test(retryAfter)
                    ? retryAfter
                    : '60',
                ),
              );
            }
            if (res.statusCode === 403 && code === 'HTTPS_REQUIRED')
              return reject(new TokenRefused(code));
          }
          if (res.statusCode !== 200) return fail(`validate answered ${res.statusCode}`);
          try {
            const jwt = signed ? res.headers['x-auth-request-jwt'] : undefined;
            const signedIdentity = typeof jwt === 'string' && COMPACT_JWT.test(jwt) ? { jwt } : {};
            if (token !== undefined) {
              const use = tokenAnswer(JSON.parse(text));
              if (!use) return fail('validate answer malformed: token');
              return resolve({ ...use, ...signedIdentity });
            }
            const body = JSON.parse(text) as Omit<Validation, 'authentication'> & {
              authentication?: unknown;
            };
            if (!body?.user || typeof body.user.username !== 'string')
              return fail('validate answer malformed');
            // Fail closed: a route's requirement cannot be checked against what does not parse.
            const authentication = authenticationIn(body);
            if (!authentication) return fail('validate answer malformed: authentication');
            resolve({
              user: body.user,
              session: body.session,
              authentication,
              ...signedIdentity,
            });
          } catch {
            fail('validate answer not JSON');
          }
        });
      });
      const timer = setTimeout(() => {
        req.destroy();
        fail(`validate took longer than ${options.timeoutMs} ms`);
      }, options.timeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        fail(err.message);
      });
      req.end();
    });
  }

  const cacheOptions = options.cache;
  const cache =
    cacheOptions && cacheOptions.ttlMs > 0
      ? createValidationCache({ ttlMs: cacheOptions.ttlMs, maxEntries: cacheOptions.maxEntries })
      : null;
  const stream =
    cache && cacheOptions
      ? createRevocationStream({
          url: new URL('/internal/revocations', options.baseUrl),
          ...(internalToken ? { token: internalToken } : {}),
          logger: cacheOptions.logger,
          onUp: (hello) => cache.enable(hello.cookieName),
          onRevoke: (sids) => {
            cache.revoke(sids);
            tell('revoke', sids);
          },
          // A step-up: the same drop as a revocation (entries, and answers in flight from before
          // it), so the next request sees the new authentication. The session's open WebSockets
          // are re-checked now (websocket-checks.ts) and stay open while the session is valid.
          onChanged: (sids) => {
            cache.revoke(sids);
            tell('changed', sids);
          },
          onDown: () => cache.disable(),
        })
      : null;
  /** Who hears the feed's events once the cache has dropped them (the WebSocket tunnels). */
  const listeners = new Set<RevocationListener>();
  function tell(event: 'revoke' | 'changed', sids: readonly string[]) {
    for (const listener of listeners) {
      try {
        listener(event, sids);
      } catch (err) {
        cacheOptions?.logger.error({ err }, 'revocation listener failed');
      }
    }
  }
  const feed: RevocationFeed | undefined = cache
    ? {
        sessionOf: (cookieHeader) => cache.storedIdIn(cookieHeader),
        subscribe(listener) {
          listeners.add(listener);
          return () => listeners.delete(listener);
        },
      }
    : undefined;

  /** Misses in flight, shared by identical requests while no revocation came in between. */
  const inflight = new Map<string, { ticket: Ticket; answer: Promise<Validation | null> }>();

  function miss(input: ValidateInput, ticket: Ticket): Promise<Validation | null> {
    const shared = inflight.get(ticket.key);
    if (shared && shared.ticket.epoch === ticket.epoch) return shared.answer;
    const answer = ask(input).then(
      (validation) => {
        if (inflight.get(ticket.key)?.answer === answer) inflight.delete(ticket.key);
        if (validation) cache?.store(ticket, validation);
        return validation;
      },
      (err: unknown) => {
        if (inflight.get(ticket.key)?.answer === answer) inflight.delete(ticket.key);
        throw err;
      },
    );
    inflight.set(ticket.key, { ticket, answer });
    return answer;
  }

  return {
    ...(feed ? { feed } : {}),
    validate(input) {
      if (!cache) return ask(input);
      const lookup =
        input.token !== undefined
          ? cache.lookupToken(input.token, input.audience)
          : cache.lookup(input.cookie, input.audience);
      if (lookup.outcome === 'hit') return Promise.resolve(lookup.validation);
      if (lookup.outcome === 'miss') return miss(input, lookup.ticket);
      return ask(input);
    },
    forget(cookie) {
      const session = cache?.sessionIn(cookie);
      if (session) cache?.revoke([session.sid]);
    },
    cacheStats() {
      return {
        enabled: cache?.enabled ?? false,
        entries: cache?.size ?? 0,
        hits: cache?.stats.hits ?? 0,
        misses: cache?.stats.misses ?? 0,
        bypasses: cache?.stats.bypasses ?? 0,
      };
    },
    close() {
      stream?.close();
      agent.destroy();
    },
  };
}
