/**
 * The gateway's server entry: step 1 of the request path (docs/architecture.md), for HTTP requests
 * and WebSocket upgrades alike. Just over 300 lines, on purpose: one closure holds the per-server
 * state (the identity memo, the admission shared by requests, upgrades and their re-checks); each
 * step it takes is a module of its own.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { isLoopback, presentedToken } from '../../common/src/access-token.js';
import { authenticationHeaders } from '../../common/src/authentication.js';
import {
  errorResponseBytes,
  NO_STORE,
  requestIdFrom,
  sendError,
  wantsHtml,
} from '../../common/src/http.js';
import { identityHeaders } from '../../common/src/identity.js';
import type { Logger } from '../../common/src/logger.js';
import { observeRequest } from '../../common/src/observability.js';
import type { Trust } from '../../common/src/trust-proxy.js';
import {
  type CheckedRequest,
  checkRequest,
  HEALTH_PATH,
  isAuth,
  isReserved,
  RESERVED_PREFIX,
} from './check-request.js';
import type { GatewayConfig } from './config.js';
import { type CookiePolicy, foldCookieName } from './cookies.js';
import { type Decision, decide, type RequestFacts } from './decide.js';
import type { GatewayMetrics } from './metrics.js';
import type { createProxy, ProxyTarget } from './proxy.js';
import { forwardedFor, upstreamHeaders } from './request-headers.js';
import { type RequestTarget, stripSegments } from './request-target.js';
import type { Route } from './route-table.js';
import type { RouteStore } from './routes-file.js';
import type { SessionClient } from './session-client.js';
import { createSessionServicePassthrough } from './session-service-passthrough.js';
import type { Validation } from './validate-answer.js';
import type { Admission, Admit } from './websocket.js';

export { RESERVED_PREFIX } from './check-request.js';

/** The refusals worth a log line (the metric counts every outcome), and how loud. */
const REFUSAL_LOG: Partial<
  Record<Decision['outcome'], { level: 'warn' | 'info'; message: string }>
> = {
  unavailable: { level: 'warn', message: 'session service unavailable: failing closed' },
  forbidden: { level: 'info', message: 'not allowed on this route' },
  step_up: { level: 'info', message: 'step-up required on this route' },
  origin_refused: { level: 'info', message: 'websocket origin refused' },
  credential_refused: { level: 'info', message: 'credential not accepted on this route' },
  scope_refused: { level: 'info', message: "outside the access token's scope" },
  throttled: { level: 'info', message: 'too many invalid access tokens from this address' },
  https_required: { level: 'info', message: 'access token over plain HTTP refused' },
};

export interface ServerDeps {
  config: GatewayConfig;
  logger: Logger;
  sessionClient: SessionClient;
  routes: RouteStore;
  proxy: ReturnType<typeof createProxy>;
  metrics: GatewayMetrics;
  trust: Trust;
  cookies: CookiePolicy;
}

/**
 * The gateway's server entry: every HTTP request and WebSocket upgrade starts here, is checked
 * (checkRequest), decided (decide.ts) and proxied with the header policies of
 * request-headers.ts and response-headers.ts.
 */
export function createServerEntry(deps: ServerDeps) {
  const { config, logger, sessionClient, routes, proxy, metrics, trust, cookies } = deps;
  const toSessionService = createSessionServicePassthrough({ config, sessionClient, proxy, trust });

  /**
   * Identity and authentication headers per validate answer (the cache hands out the same object
   * until it expires).
   */
  const identities = new WeakMap<Validation, Record<string, string>>();
  const identityOf = (validation: Validation) => {
    let identity = identities.get(validation);
    if (!identity) {
      // An access token proves no sign-in: no -Amr, -Acr, -Auth-Time (the JWT says `tok`).
      identity = {
        ...identityHeaders(validation.user, validation.session.expiresAt),
        ...(validation.authentication ? authenticationHeaders(validation.authentication) : {}),
      };
      if (validation.jwt) identity['x-auth-request-jwt'] = validation.jwt;
      identities.set(validation, identity);
    }
    return identity;
  };

  function validator(
    req: IncomingMessage,
    peerTrusted: boolean,
    token: string | undefined,
    cache?: Map<string, Promise<unknown>>,
  ) {
    return (audience: string | undefined): Promise<Validation | null> => {
      // An access token is validated in place of the cookie (never both).
      const cookie = token === undefined ? req.headers.cookie : undefined;
      const key = cache
        ? `${audience ?? ''}\n${token === undefined ? `c${cookie ?? ''}` : `t${token}`}`
        : '';
      const cached = cache?.get(key) as Promise<Validation | null> | undefined;
      if (cached) return cached;
      const pending = sessionClient.validate({
        ...(cookie ? { cookie } : {}),
        ...(token !== undefined ? { token } : {}),
        ...(audience ? { audience } : {}),
        // Read only when the session-service is asked (a cache miss), not on every request: the
        // client address walks X-Forwarded-For.
        get requestId() {
          return String(req.headers['x-request-id']);
        },
        get clientIp() {
          return trust.clientIp(req, peerTrusted);
        },
        get userAgent() {
          return String(req.headers['user-agent'] ?? '');
        },
      });
      cache?.set(key, pending);
      return pending;
    };
  }

  function upstreamPath(route: Route, target: RequestTarget): string {
    const base = route.upstream.pathname.replace(/\/$/, '');
    const path = route.stripPrefix ? stripSegments(target, route.segments.length) : target.rawPath;
    return `${base}${path}${target.search}`;
  }

  /** The upstream request for an admitted request: path, the header policy's headers, answer policy. */
  function proxyTarget(
    req: IncomingMessage,
    decision: Extract<Decision, { ok: true }>,
    checked: CheckedRequest,
    peerTrusted: boolean,
    upgrade?: string,
  ): ProxyTarget {
    const { route, validation } = decision;
    const requestId = String(req.headers['x-request-id']);
    const forwarded = forwardedFor(req, checked.host, peerTrusted, trust.clientIp);
    return {
      upstream: route.upstream,
      path: upstreamPath(route, checked.target),
      timeoutMs: route.timeoutMs,
      requestId,
      headers: upstreamHeaders(req, {
        host: route.preserveHost
          ? (checked.host?.value ?? route.upstream.host)
          : route.upstream.host,
        cookies,
        forwarded,
        requestId,
        ...(validation ? { identity: identityOf(validation) } : {}),
        ...(upgrade ? { upgrade } : {}),
      }),
      response: {
        cookies,
        dropClearSiteData: true,
        addCachePolicy: !route.public && route.cache === 'gateway',
      },
    };
  }

  function count(decision: Decision, req: IncomingMessage, counted: boolean) {
    if (!counted) return; // re-checks of open WebSockets stay quiet: the tunnel logs when it closes
    metrics.authOutcomes.inc({ outcome: decision.outcome });
    const note = REFUSAL_LOG[decision.outcome];
    if (!note) return;
    const { reason, need } = decision as { reason?: string; need?: string };
    logger[note.level](
      {
        route: decision.route?.id,
        user: decision.validation?.user.username,
        reason,
        need,
        ...(decision.outcome === 'origin_refused' ? { origin: req.headers.origin } : {}),
        requestId: req.headers['x-request-id'],
      },
      note.message,
    );
  }

  const sessionCookieName = foldCookieName(config.COOKIE_NAME);
  /** Does the Cookie header carry the session cookie (under any of its names)? */
  const hasSessionCookie = (header: string | undefined) =>
    header?.split(';').some((pair) => {
      const eq = pair.indexOf('=');
      return foldCookieName(eq === -1 ? pair : pair.slice(0, eq)) === sessionCookieName;
    }) ?? false;
  const httpsOnly = config.PUBLIC_URL?.startsWith('https:') ?? false;

  /** WebSocket upgrades and their re-checks: the same checks and decision as HTTP. */
  const admit: Admit = (req, options) => {
    const checked = checkRequest(req);
    return checked.ok ? admitChecked(req, checked, options) : Promise.resolve(checked);
  };

  async function admitChecked(
    req: IncomingMessage,
    checked: CheckedRequest,
    options: Parameters<Admit>[1],
  ): Promise<Admission> {
    if (isReserved(checked.target) || isAuth(checked.target))
      return { ok: false, status: 404, code: 'NOT_FOUND' };
    const peerTrusted = trust.peer(req);
    const token = presentedToken(req.headers.authorization);
    const facts: RequestFacts = {
      host: checked.host,
      target: checked.target,
      method: req.method ?? 'GET',
      ...(options.cache ? { recheck: true } : {}),
    };
    if (token !== undefined) {
      facts.token = token;
      if (httpsOnly) {
        const forwarded = forwardedFor(req, checked.host, peerTrusted, trust.clientIp);
        facts.plainHttpFromAfar = forwarded.proto !== 'https' && !isLoopback(forwarded.clientIp);
      }
    } else facts.sessionCookie = hasSessionCookie(req.headers.cookie);
    if (options.upgrade) {
      const forwarded = forwardedFor(req, checked.host, peerTrusted, trust.clientIp);
      const header = (name: string) => {
        const value = req.headers[name];
        return typeof value === 'string' ? value : undefined;
      };
      facts.upgrade = {
        origin: header('origin'),
        secFetchSite: header('sec-fetch-site'),
        ownOrigin: `${forwarded.proto}://${forwarded.host}`,
      };
    }
    const decision = await decide(
      facts,
      routes.current(),
      validator(req, peerTrusted, token ?? undefined, options.cache),
      { signedIdentity: config.JWT_ENABLED, now: Date.now() },
    );
    count(decision, req, !options.cache);
    if (!decision.ok) return decision;
    return {
      ok: true,
      target: proxyTarget(req, decision, checked, peerTrusted, options.upgrade),
      routeId: decision.route.id,
    };
  }

  async function serve(
    req: IncomingMessage,
    res: ServerResponse,
    checked: CheckedRequest,
    observed: { routeId?: string },
  ) {
    const admission = await admitChecked(req, checked, {});
    if (!admission.ok) {
      res.setHeader('X-Request-Id', String(req.headers['x-request-id']));
      if (admission.status === 401) {
        res.setHeader('Cache-Control', NO_STORE);
        // A token's client is a program: never a login page, whatever its Accept says.
        if (!admission.bearer && wantsHtml(req)) {
          // Back to this very request after signing in, or after the step the route asks for.
          const rd = encodeURIComponent(req.url ?? '/');
          const location = admission.need
            ? `/auth/step-up?rd=${rd}&need=${admission.need}`
            : `/auth/login?rd=${rd}`;
          res.statusCode = 302;
          res.setHeader('Location', location);
          res.setHeader('Content-Type', 'text/html; charset=utf-8');
          res.end(`<p>Found. Redirecting to <a href="${location}">${location}</a></p>`);
          return;
        }
      }
      return sendError(req, res, admission.code, {
        ...(admission.bearer ? { json: true } : {}),
        ...(admission.message !== undefined ? { message: admission.message } : {}),
        ...(admission.headers ? { headers: admission.headers } : {}),
        ...(admission.need ? { fields: { need: admission.need } } : {}),
      });
    }
    observed.routeId = admission.routeId;
    proxy.web(req, res, admission.target);
  }

  /** Every HTTP request starts here. */
  function handle(req: IncomingMessage, res: ServerResponse) {
    const observed: { routeId?: string; label?: string } = {};
    // Request id, log line and histogram, without a per-request child logger. The X-Request-Id
    // answer header is set by whoever answers (a proxied answer carries it in its raw headers).
    observeRequest(logger, metrics.metrics, req, res, () =>
      observed.routeId ? `upstream:${observed.routeId}` : (observed.label ?? 'unrouted'),
    );
    const requestId = String(req.headers['x-request-id']);
    // Before anything else decides on the path: refuse what another parser could read differently.
    const checked = checkRequest(req);
    if (!checked.ok) {
      observed.label = checked.code === 'BAD_PATH' ? 'bad_path' : 'refused';
      metrics.refused.inc({ reason: checked.code });
      logger.info({ reason: checked.reason, requestId }, 'refused request');
      res.setHeader('X-Request-Id', requestId);
      if (checked.status === 431) res.setHeader('Connection', 'close');
      return sendError(req, res, checked.code, { message: checked.message });
    }
    const { target } = checked;
    if (isReserved(target)) {
      res.setHeader('X-Request-Id', requestId);
      observed.label = target.rawPath === HEALTH_PATH ? HEALTH_PATH : RESERVED_PREFIX;
      if (target.rawPath === HEALTH_PATH && (req.method === 'GET' || req.method === 'HEAD')) {
        res.setHeader('Cache-Control', NO_STORE);
        res.setHeader('Content-Type', 'application/json; charset=utf-8');
        res.end(JSON.stringify({ status: 'ok' }));
        return;
      }
      return sendError(req, res, 'NOT_FOUND');
    }
    const fail = (err: unknown) => {
      logger.error({ err, requestId }, 'unhandled error');
      if (!res.headersSent) res.setHeader('X-Request-Id', requestId);
      sendError(req, res, 'INTERNAL_ERROR');
    };
    if (isAuth(target)) {
      observed.label = '/auth';
      toSessionService(req, res, checked).catch(fail);
      return;
    }
    serve(req, res, checked, observed).catch(fail);
  }

  /**
   * A request Node's parser refused (headers past maxHeaderSize, malformed framing): a short JSON
   * answer and close, never Node's bare status line.
   */
  function handleClientError(err: NodeJS.ErrnoException, socket: Duplex) {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    socket.end(
      errorResponseBytes(err.code === 'HPE_HEADER_OVERFLOW' ? 'HEADERS_TOO_LARGE' : 'BAD_REQUEST'),
    );
  }

  return { handle, admit, handleClientError, requestIdFrom };
}
