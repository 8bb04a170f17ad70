import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendError } from '../../common/src/http.js';
import type { Trust } from '../../common/src/trust-proxy.js';
import type { CheckedRequest } from './check-request.js';
import type { GatewayConfig } from './config.js';
import type { createProxy } from './proxy.js';
import { forwardedFor, hasBody, upstreamHeaders } from './request-headers.js';
import type { SessionClient } from './session-client.js';

/**
 * Bodies to /auth/* are read whole before the session-service is asked, within this size and
 * AUTH_BODY_TIMEOUT_MS: a slow client holds none of the session-service's connections.
 */
export const AUTH_BODY_LIMIT_BYTES = 64 * 1024;

const SESSION_SERVICE_UNAVAILABLE = {
  code: 'SESSION_SERVICE_UNAVAILABLE',
  headers: { 'Retry-After': '1' },
} as const;

/** Reads a request body whole, within AUTH_BODY_LIMIT_BYTES and timeoutMs. */
function readBody(req: IncomingMessage, timeoutMs: number): Promise<Buffer | 413 | 408> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (result: Buffer | 413 | 408) => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > AUTH_BODY_LIMIT_BYTES) done(413);
      else chunks.push(chunk);
    };
    const onEnd = () => done(Buffer.concat(chunks));
    const timer = setTimeout(() => done(408), timeoutMs);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', () => done(408));
  });
}

/**
 * /auth/*: to the session-service as it came (login page, login, logout, validate), with the
 * request-header policy for the session-service (its cookies kept: logout needs them).
 */
export function createSessionServicePassthrough(deps: {
  config: GatewayConfig;
  sessionClient: SessionClient;
  proxy: ReturnType<typeof createProxy>;
  trust: Trust;
}) {
  const { config, sessionClient, proxy, trust } = deps;
  const sessionService = new URL(config.SESSION_SERVICE_URL);
  /** /auth/*: to the session-service as is, its body read first; unreachable is 503, as validate. */
  return async function toSessionService(
    req: IncomingMessage,
    res: ServerResponse,
    checked: CheckedRequest,
  ) {
    const peerTrusted = trust.peer(req);
    const requestId = String(req.headers['x-request-id']);
    // A logout or a revocation may end this cookie's session: stop serving it from this
    // gateway's cache now (the session-service's revocation event reaches every gateway).
    if (req.method !== 'GET' && req.method !== 'HEAD') sessionClient.forget?.(req.headers.cookie);
    let body: Buffer | undefined;
    if (hasBody(req)) {
      const read = await readBody(req, config.AUTH_BODY_TIMEOUT_MS);
      if (read === 413 || read === 408) {
        res.setHeader('Connection', 'close');
        res.setHeader('X-Request-Id', requestId);
        sendError(req, res, read === 413 ? 'PAYLOAD_TOO_LARGE' : 'REQUEST_TIMEOUT');
        return;
      }
      body = read;
    }
    const headers = upstreamHeaders(req, {
      host: checked.host?.value ?? sessionService.host,
      cookies: null, // logout needs the session cookie
      keepAccessToken: true, // /auth/validate reads a client's token from Authorization
      forwarded: forwardedFor(req, checked.host, peerTrusted, trust.clientIp),
      requestId,
      ...(body ? { bodyLength: body.length } : {}),
    });
    proxy.web(req, res, {
      upstream: sessionService,
      path: `${checked.target.rawPath}${checked.target.search}`,
      timeoutMs: config.VALIDATE_TIMEOUT_MS * 4,
      headers,
      requestId,
      ...(body ? { body } : {}),
      unavailable: SESSION_SERVICE_UNAVAILABLE,
    });
  };
}
