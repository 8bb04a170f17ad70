import http from 'node:http';
import type { Identity } from '../../common/src/identity.js';
import type { Logger } from '../../common/src/logger.js';
import { createRevocationStream } from './revocation-stream.js';
import { createValidationCache, type Ticket } from './validation-cache.js';

export interface Validation {
  user: Identity;
  session: { createdAt: string; expiresAt: string };
  /** The signed identity (compact JWT, aud = the route id) when asked for and the service signs. */
  jwt?: string;
}

/** A compact JWS (header.payload.signature, base64url): nothing else goes into a header. */
const COMPACT_JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** The session service could not give an answer (down, slow, failing): the gateway fails closed. */
export class SessionServiceUnavailableError extends Error {
  readonly code = 'SESSION_SERVICE_UNAVAILABLE';
}

export interface ValidateInput {
  cookie?: string;
  requestId?: string;
  clientIp?: string;
  userAgent?: string;
  /** The route id: asks for a signed identity for that audience (`?aud=`). */
  audience?: string;
}

export interface SessionClient {
  /** A validation, `null` for "no valid session"; throws SessionServiceUnavailableError otherwise. */
  validate(input: ValidateInput): Promise<Validation | null>;
  /**
   * A request that may end this cookie's session (logout, revocation) is on its way: drop the
   * session from this gateway's cache now (the revocation event reaches every gateway anyway).
   */
  forget?(cookie: string | undefined): void;
  /** The validation cache's state, for metrics. */
  cacheStats?(): CacheStats;
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
  baseUrl: string;
  timeoutMs: number;
  /**
   * The validation cache (VALIDATE_CACHE_TTL_MS): on while the revocation stream from the
   * session-service is connected. Absent or ttlMs 0: every request is validated.
   */
  cache?: { ttlMs: number; maxEntries: number; logger: Logger; internalToken?: string };
}

const MAX_BODY = 64 * 1024;

/**
 * Calls the session-service's GET /auth/validate (with `?aud=<route id>` when an audience is
 * given) over a keep-alive agent with a hard deadline; with `cache`, positive answers are kept
 * briefly (validation-cache.ts) and dropped on the revocation events of the session-service.
 */
export function createSessionClient(options: SessionClientOptions): SessionClient {
  const base = new URL('/auth/validate', options.baseUrl);
  const agent = new http.Agent({
    keepAlive: true,
    maxSockets: 256,
    maxFreeSockets: 64,
    scheduling: 'lifo',
  });

  function ask(input: ValidateInput): Promise<Validation | null> {
    return new Promise((resolve, reject) => {
      const fail = (why: string) => reject(new SessionServiceUnavailableError(why));
      const headers: Record<string, string> = { accept: 'application/json' };
      if (input.cookie) headers.cookie = input.cookie;
      if (input.requestId) headers['x-request-id'] = input.requestId;
      if (input.clientIp) headers['x-forwarded-for'] = input.clientIp;
      if (input.userAgent) headers['user-agent'] = input.userAgent;
      const url = new URL(base);
      if (input.audience) url.searchParams.set('aud', input.audience);
      const req = http.request(url, { method: 'GET', agent, headers }, (res) => {
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
          if (res.statusCode === 401) return resolve(null);
          if (res.statusCode !== 200) return fail(`validate answered ${res.statusCode}`);
          try {
            const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Validation;
            if (!body?.user || typeof body.user.username !== 'string')
              return fail('validate answer malformed');
            const jwt = res.headers['x-auth-request-jwt'];
            resolve({
              user: body.user,
              session: body.session,
              ...(typeof jwt === 'string' && COMPACT_JWT.test(jwt) ? { jwt } : {}),
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
          ...(cacheOptions.internalToken ? { token: cacheOptions.internalToken } : {}),
          logger: cacheOptions.logger,
          onUp: (hello) => cache.enable(hello.cookieName),
          onRevoke: (sids) => cache.revoke(sids),
          onDown: () => cache.disable(),
        })
      : null;
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
    validate(input) {
      if (!cache) return ask(input);
      const lookup = cache.lookup(input.cookie, input.audience);
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
