/**
 * Verify Gatehouse's signed identity assertion in a Node backend. Copy this one file into your
 * app as it is: it depends only on `jose` and Node's http types.
 *
 *   import { createIdentityVerifier } from './verify-identity.js';
 *   app.use(createIdentityVerifier({
 *     jwksUrl: 'http://session-service:4000/auth/.well-known/jwks.json',
 *     audience: 'my-route-id',
 *     issuer: 'gatehouse',
 *   }));
 *   app.get('/', (req, res) => res.send(`Hello ${req.identity?.name}`));
 *
 * The gateway sends `X-Auth-Request-Jwt`: an EdDSA JWT (sub, name, groups, email, how the user
 * signed in: amr, acr, auth_time; aud = the route id, exp <= 30 s) signed by the session-service. Requests without exactly one valid one get 401
 * and never reach your handlers, so a request that bypassed the gateway (or forged the plain
 * X-Auth-Request-* headers) is refused. The demo-app uses this file (demo-app/src/app.ts); it is
 * tested in test/unit/verify-identity.test.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRemoteJWKSet, type JWTVerifyGetKey, jwtVerify } from 'jose';

export interface VerifiedIdentity {
  /** The user id (`sub`). */
  id: string;
  /** The username. */
  name: string;
  groups: string[];
  email: string;
  /** Seconds since the epoch when this assertion expires. */
  exp: number;
  /**
   * How the user signed in (RFC 8176 method references: `pwd`, `otp`, `hwk`, `user`, `mfa`);
   * empty when the assertion does not say (a session-service from before second factors).
   */
  amr: string[];
  /** The assurance level: `aal1` (one factor) or `aal2` (two); '' when the assertion does not say. */
  acr: string;
  /** Seconds since the epoch when the user last proved who they are; 0 when not said. */
  authTime: number;
}

declare module 'node:http' {
  interface IncomingMessage {
    identity?: VerifiedIdentity;
  }
}

export interface IdentityVerifierOptions {
  /** The session-service's JWKS, e.g. http://127.0.0.1:4000/auth/.well-known/jwks.json */
  jwksUrl?: string;
  /** Or a key set you resolve yourself (tests, pinned keys). */
  keys?: JWTVerifyGetKey;
  /** The route id this backend is served under (the gateway's `aud`). */
  audience: string | string[];
  /** Expected `iss` (the session-service's PUBLIC_URL, or 'gatehouse'); unchecked when absent. */
  issuer?: string;
  /** Header carrying the assertion (the middleware's; default `x-auth-request-jwt`). */
  header?: string;
  /** Seconds of clock difference allowed on `exp` and `nbf` (default 5). */
  clockToleranceSeconds?: number;
}

export class IdentityError extends Error {
  readonly code = 'INVALID_IDENTITY_ASSERTION';
}

/**
 * Verified tokens kept (the gateway sends the same token for many requests of a session). The
 * cap is written out below rather than taken from lru-cache, as the rest of Gatehouse does:
 * this file is copied into users' apps and promises to need nothing but `jose`.
 */
const VERIFIED_CACHE_SIZE = 1000;

/**
 * Verify one assertion; throws IdentityError when it is missing, forged, expired or for another
 * audience. A token that verified is remembered until it expires (its signature, audience and
 * issuer cannot change): the gateway forwards the same token for a session for up to 20 s, and
 * an EdDSA verification costs far more than the rest of a small request. Refusals are not kept.
 */
export function createAssertionVerifier(
  options: IdentityVerifierOptions & { now?: () => number },
): AssertionVerifier {
  const keys =
    options.keys ??
    (options.jwksUrl
      ? createRemoteJWKSet(new URL(options.jwksUrl), { cooldownDuration: 30_000 })
      : undefined);
  if (!keys) throw new Error('createAssertionVerifier needs jwksUrl or keys');
  const tolerance = options.clockToleranceSeconds ?? 5;
  const now = options.now ?? Date.now;
  /** token -> identity and the instant jose would start calling it expired. */
  const verified = new Map<string, { identity: VerifiedIdentity; untilMs: number }>();
  return async (token: string | undefined): Promise<VerifiedIdentity> => {
    if (!token) throw new IdentityError('no identity assertion');
    const known = verified.get(token);
    if (known) {
      if (now() < known.untilMs) return copyOf(known.identity);
      verified.delete(token);
    }
    try {
      const { payload } = await jwtVerify(token, keys, {
        algorithms: ['EdDSA', 'ES256'],
        audience: options.audience,
        ...(options.issuer ? { issuer: options.issuer } : {}),
        clockTolerance: tolerance,
        requiredClaims: ['sub', 'exp', 'aud'],
        ...(options.now ? { currentDate: new Date(options.now()) } : {}),
      });
      const strings = (value: unknown) =>
        Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
      const identity: VerifiedIdentity = {
        id: String(payload.sub),
        name: typeof payload.name === 'string' ? payload.name : '',
        groups: strings(payload.groups),
        email: typeof payload.email === 'string' ? payload.email : '',
        exp: Number(payload.exp),
        amr: strings(payload.amr),
        acr: typeof payload.acr === 'string' ? payload.acr : '',
        authTime: typeof payload.auth_time === 'number' ? payload.auth_time : 0,
      };
      // jose refuses once floor(now / 1000) >= exp + tolerance; so do we. `nbf`, when present,
      // has passed already (it only moves further into the past).
      if (verified.size >= VERIFIED_CACHE_SIZE) {
        const oldest = verified.keys().next();
        if (!oldest.done) verified.delete(oldest.value);
      }
      verified.set(token, {
        identity: copyOf(identity),
        untilMs: (identity.exp + tolerance) * 1000,
      });
      return identity;
    } catch (err) {
      throw new IdentityError(`identity assertion rejected: ${(err as Error).message}`);
    }
  };
}

/** A copy: a backend that changes req.identity must not change it for other requests. */
const copyOf = (identity: VerifiedIdentity): VerifiedIdentity => ({
  ...identity,
  groups: [...identity.groups],
  amr: [...identity.amr],
});

/** What createAssertionVerifier returns: token in, identity out, IdentityError when refused. */
export type AssertionVerifier = (token: string | undefined) => Promise<VerifiedIdentity>;

export interface IdentityMiddlewareOptions {
  /** Header carrying the assertion (default `x-auth-request-jwt`). */
  header?: string;
  /**
   * Answer a refused request (the assertion missing, sent twice, or not valid). By default a
   * `401 {"error":"UNAUTHENTICATED","message":…}` JSON answer with `Cache-Control: no-store`;
   * an app with its own error writer passes it here.
   */
  onRefused?: (req: IncomingMessage, res: ServerResponse, error: IdentityError) => void;
}

/** The header's value when the request carries it exactly once; otherwise undefined. */
function singleHeader(req: IncomingMessage, name: string): string | undefined {
  const raw = req.rawHeaders;
  let value: string | undefined;
  let count = 0;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]?.toLowerCase() !== name) continue;
    count++;
    value = raw[i + 1];
  }
  return count === 1 ? value : undefined;
}

function refuseWith401(_req: IncomingMessage, res: ServerResponse): void {
  const body = JSON.stringify({
    error: 'UNAUTHENTICATED',
    message: 'A valid identity assertion from the Gatehouse gateway is required.',
  });
  res.statusCode = 401;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}

/**
 * Express/Connect-style middleware around an assertion verifier: sets `req.identity` and calls
 * next(), or answers the refusal (onRefused) without calling next(). A header sent more than
 * once is refused, whatever the copies hold.
 */
export function identityMiddleware(
  verify: AssertionVerifier,
  options: IdentityMiddlewareOptions = {},
) {
  const header = (options.header ?? 'x-auth-request-jwt').toLowerCase();
  const onRefused = options.onRefused ?? refuseWith401;
  return (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void => {
    verify(singleHeader(req, header)).then(
      (identity) => {
        req.identity = identity;
        next();
      },
      (err: unknown) => {
        onRefused(
          req,
          res,
          err instanceof IdentityError ? err : new IdentityError(String(err), { cause: err }),
        );
      },
    );
  };
}

/** The middleware for a key set: `app.use(createIdentityVerifier({ jwksUrl, audience, issuer }))`. */
export function createIdentityVerifier(
  options: IdentityVerifierOptions & IdentityMiddlewareOptions,
) {
  return identityMiddleware(createAssertionVerifier(options), options);
}
