import http from 'node:http';
import https from 'node:https';
import { GatehouseError } from '../../common/src/errors.js';
import type { Logger } from '../../common/src/logger.js';
import {
  createRevocationStream,
  type RevocationFeed,
  type RevocationListener,
} from './revocation-stream.js';
import { readValidateAnswer, type Validation } from './validate-answer.js';
import { createValidationCache, type Ticket } from './validation-cache.js';

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
          const answer = readValidateAnswer(
            {
              status: res.statusCode,
              headers: res.headers,
              text: Buffer.concat(chunks).toString('utf8'),
            },
            { token: token !== undefined, signed },
          );
          if (answer.kind === 'none') resolve(null);
          else if (answer.kind === 'valid') resolve(answer.validation);
          else if (answer.kind === 'refused') reject(answer.error);
          else fail(answer.why);
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
