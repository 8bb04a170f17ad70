import http from 'node:http';
import type { Socket } from 'node:net';
import type { Request } from 'express';
import { createProxyMiddleware } from 'http-proxy-middleware';
import { sendError } from '../../common/src/http.js';
import type { Logger } from '../../common/src/logger.js';

export interface ProxyOptions {
  target: string;
  timeoutMs: number;
  logger: Logger;
  pathFilter?: (path: string) => boolean;
  onUpstreamError?: (code: string) => void;
}

/**
 * A streaming proxy (no body parsing anywhere in front of it: a parsed body cannot be proxied,
 * http-proxy-middleware #40). Upstream failures become 502/504 answers, never a crash.
 */
export function createUpstreamProxy(options: ProxyOptions) {
  const agent = new http.Agent({
    keepAlive: true,
    maxSockets: 512,
    maxFreeSockets: 128,
    scheduling: 'lifo',
  });
  const middleware = createProxyMiddleware<Request>({
    target: options.target,
    changeOrigin: false,
    xfwd: false, // set by forwardedHeaders() from trusted values only
    agent,
    proxyTimeout: options.timeoutMs,
    ...(options.pathFilter
      ? { pathFilter: (path: string) => options.pathFilter?.(path) ?? true }
      : {}),
    logger: undefined,
    on: {
      error: (err, req, res) => {
        const code = (err as NodeJS.ErrnoException).code ?? 'ERROR';
        options.onUpstreamError?.(code);
        options.logger.warn(
          { err: { code, message: err.message }, requestId: req.headers['x-request-id'] },
          'upstream error',
        );
        if (!(res instanceof http.ServerResponse)) {
          (res as Socket).destroy();
          return;
        }
        const timedOut =
          code === 'ECONNRESET' && (err as Error).message.includes('timeout')
            ? true
            : code === 'ETIMEDOUT';
        if (timedOut)
          sendError(req, res, 504, 'UPSTREAM_TIMEOUT', 'The application did not answer in time.');
        else
          sendError(
            req,
            res,
            502,
            'UPSTREAM_UNAVAILABLE',
            'The application is not reachable right now.',
          );
      },
    },
  });
  return { middleware, close: () => agent.destroy() };
}
