import http from 'node:http';
import type { Identity } from '../../common/src/identity.js';

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

export interface SessionClient {
  /** A validation, `null` for "no valid session"; throws SessionServiceUnavailableError otherwise. */
  validate(input: {
    cookie?: string;
    requestId?: string;
    clientIp?: string;
    userAgent?: string;
    /** The route id: asks for a signed identity for that audience (`?aud=`). */
    audience?: string;
  }): Promise<Validation | null>;
  close(): void;
}

const MAX_BODY = 64 * 1024;

/**
 * Calls the session-service's GET /auth/validate (with `?aud=<route id>` when an audience is
 * given) over a keep-alive agent with a hard deadline.
 */
export function createSessionClient(options: {
  baseUrl: string;
  timeoutMs: number;
}): SessionClient {
  const base = new URL('/auth/validate', options.baseUrl);
  const agent = new http.Agent({
    keepAlive: true,
    maxSockets: 256,
    maxFreeSockets: 64,
    scheduling: 'lifo',
  });

  return {
    validate(input) {
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
    },
    close() {
      agent.destroy();
    },
  };
}
