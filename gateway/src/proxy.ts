import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { sendError } from '../../common/src/http.js';
import type { Logger } from '../../common/src/logger.js';
import { downstreamHeaders, hasBody } from './headers.js';

/**
 * The gateway's own streaming proxy on node:http. Not http-proxy (under http-proxy-middleware):
 * it rebuilds the outgoing path with url.parse() and urlJoin(), which re-escapes characters and
 * collapses `//`, so the upstream would act on a different path than the one the route and
 * its public/allow rules were chosen for (a bypass when two routes share an upstream). Here the
 * upstream receives exactly the path we matched, headers in the client's order and casing, and
 * bodies stream both ways without buffering.
 */
export interface ProxyTarget {
  upstream: URL;
  /** Path and query to send, already final (stripPrefix applied, original encoding). */
  path: string;
  /** Raw [name, value, …] list (see upstreamHeaders). */
  headers: string[];
  timeoutMs: number;
  /** Added to the answer as X-Request-Id unless the upstream sent one. */
  requestId?: string;
}

export class UpstreamTimeoutError extends Error {
  readonly code = 'UPSTREAM_TIMEOUT';
}

/** Keep-alive agents per upstream origin, shared by every route table (reloads keep them). */
export function createAgentPool() {
  const agents = new Map<string, http.Agent>();
  const options: http.AgentOptions = {
    keepAlive: true,
    maxSockets: 512,
    maxFreeSockets: 128,
    scheduling: 'lifo',
  };
  return {
    get(upstream: URL): http.Agent {
      const key = upstream.origin;
      let agent = agents.get(key);
      if (!agent) {
        agent = upstream.protocol === 'https:' ? new https.Agent(options) : new http.Agent(options);
        agents.set(key, agent);
      }
      return agent;
    },
    close() {
      for (const agent of agents.values()) agent.destroy();
      agents.clear();
    },
  };
}
export type AgentPool = ReturnType<typeof createAgentPool>;

/** Options of http(s).request for `target`. */
export function requestOptions(
  target: ProxyTarget,
  method: string,
  agent: http.Agent | false,
): http.RequestOptions {
  const { upstream } = target;
  const hostname = upstream.hostname.replace(/^\[(.*)\]$/, '$1');
  return {
    protocol: upstream.protocol,
    hostname,
    port: upstream.port || (upstream.protocol === 'https:' ? 443 : 80),
    method,
    path: target.path,
    headers: target.headers,
    agent,
    ...(upstream.protocol === 'https:' && !/^[\d.:]+$/.test(hostname)
      ? { servername: hostname }
      : {}),
  };
}

export const requestFn = (upstream: URL) =>
  upstream.protocol === 'https:' ? https.request : http.request;

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS']);

export function createProxy(options: {
  logger: Logger;
  agents: AgentPool;
  onUpstreamError?: (code: string) => void;
}) {
  const { logger, agents } = options;

  function fail(req: IncomingMessage, res: ServerResponse, err: NodeJS.ErrnoException) {
    const code = err.code ?? 'ERROR';
    options.onUpstreamError?.(code);
    logger.warn(
      { err: { code, message: err.message }, requestId: req.headers['x-request-id'] },
      'upstream error',
    );
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const requestId = req.headers['x-request-id'];
    if (typeof requestId === 'string' && !res.hasHeader('x-request-id'))
      res.setHeader('X-Request-Id', requestId);
    if (err instanceof UpstreamTimeoutError)
      sendError(req, res, 504, 'UPSTREAM_TIMEOUT', 'The application did not answer in time.');
    else
      sendError(
        req,
        res,
        502,
        'UPSTREAM_UNAVAILABLE',
        'The application is not reachable right now.',
      );
  }

  function web(req: IncomingMessage, res: ServerResponse, target: ProxyTarget, retried = false) {
    const method = req.method ?? 'GET';
    const withBody = hasBody(req);
    const proxyReq = requestFn(target.upstream)(
      requestOptions(target, method, agents.get(target.upstream)),
    );
    let clientGone = false;
    // Deadline for the upstream to start answering; body upload progress counts as activity.
    // Once the answer starts it streams as long as it likes (downloads, server-sent events).
    const timer = setTimeout(() => {
      proxyReq.destroy(new UpstreamTimeoutError(`no answer within ${target.timeoutMs} ms`));
    }, target.timeoutMs);
    const onData = () => timer.refresh();
    if (withBody) req.on('data', onData);

    const onClientClose = () => {
      if (!res.writableFinished) {
        clientGone = true;
        clearTimeout(timer);
        proxyReq.destroy();
      }
    };
    res.once('close', onClientClose);

    proxyReq.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      req.off('data', onData);
      if (clientGone) return;
      // A kept-alive socket the upstream closed as we reused it: safe to retry once when nothing
      // was streamed (nodejs.org/api/http.html#requestreusedsocket).
      if (
        !retried &&
        proxyReq.reusedSocket &&
        err.code === 'ECONNRESET' &&
        IDEMPOTENT.has(method) &&
        !withBody &&
        !res.headersSent
      ) {
        res.off('close', onClientClose);
        web(req, res, target, true);
        return;
      }
      fail(req, res, err);
    });

    proxyReq.on('response', (proxyRes) => {
      clearTimeout(timer);
      req.off('data', onData);
      const headers = downstreamHeaders(proxyRes.rawHeaders, target.requestId);
      // Headers as one raw list into a response with none set yet: Node writes them as they are
      // (headers set earlier would make it merge them one by one).
      res.writeHead(proxyRes.statusCode ?? 502, proxyRes.statusMessage ?? '', headers);
      // An answer cut short upstream is cut short here too (never a silently truncated 200).
      proxyRes.on('error', () => res.destroy());
      proxyRes.on('aborted', () => res.destroy());
      // pipe() without its bookkeeping: data with backpressure, then end.
      proxyRes.on('data', (chunk: Buffer) => {
        if (!res.write(chunk)) proxyRes.pause();
      });
      res.on('drain', () => proxyRes.resume());
      proxyRes.on('end', () => res.end());
    });

    if (withBody) {
      req.on('error', () => proxyReq.destroy());
      req.pipe(proxyReq);
    } else proxyReq.end();
  }

  return { web };
}
