import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { type Dispatcher, Pool } from 'undici';
import { type ErrorCode, GatehouseError, isGatehouseError } from '../../common/src/errors.js';
import { sendError } from '../../common/src/http.js';
import type { Logger } from '../../common/src/logger.js';
import { hasBody } from './request-headers.js';
import { type DownstreamOptions, downstreamHeaders } from './response-headers.js';

/**
 * The gateway's own streaming proxy on node:http. Not http-proxy (under http-proxy-middleware):
 * it rebuilds the outgoing path with url.parse() and urlJoin(), which re-escapes characters and
 * collapses `//`, so the upstream would act on a different path than the one the route and
 * its public/allow rules were chosen for (a bypass when two routes share an upstream). Here the
 * upstream receives exactly the path we matched, headers in the client's order and casing, and
 * bodies stream both ways without buffering.
 *
 * Upstream requests go through undici's connection pools (its public `Pool.dispatch` with the
 * controller handler API), not http.request: measured in the gateway, 155 µs of CPU per proxied
 * page against 192–206 µs, and 1.05–1.16× the throughput (docs/performance.md). WebSocket upgrades
 * keep node:http (websocket.ts). Importing undici also makes its Agent the process's global
 * dispatcher (behind fetch) when none is set: the gateway itself never calls fetch.
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
  /** What of the answer reaches the browser (response-headers.ts). */
  response?: DownstreamOptions;
  /** The request body, already read (the headers then carry its Content-Length). */
  body?: Buffer;
  /** The answer when the upstream cannot be reached or fails (default: 502/504). */
  unavailable?: { code: ErrorCode; message?: string; headers?: Readonly<Record<string, string>> };
}

/** No answer from the upstream within the route's deadline (answered 504 UPSTREAM_TIMEOUT). */
export const upstreamTimeout = (timeoutMs: number) =>
  new GatehouseError('UPSTREAM_TIMEOUT', { message: `no answer within ${timeoutMs} ms` });

/**
 * Keep-alive connection pools per upstream origin, shared by every route table (reloads keep
 * them). undici's own timeouts are off: the proxy sets its own deadline for the answer to start,
 * and then lets it stream as long as it likes (downloads, server-sent events).
 */
export function createAgentPool() {
  const pools = new Map<string, Pool>();
  return {
    get(upstream: URL): Pool {
      const key = upstream.origin;
      let pool = pools.get(key);
      if (!pool) {
        pool = new Pool(key, {
          connections: 512,
          pipelining: 1,
          headersTimeout: 0,
          bodyTimeout: 0,
        });
        pools.set(key, pool);
      }
      return pool;
    },
    close() {
      for (const pool of pools.values()) void pool.destroy().catch(() => {});
      pools.clear();
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

  function fail(
    req: IncomingMessage,
    res: ServerResponse,
    err: NodeJS.ErrnoException,
    target: ProxyTarget,
  ) {
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
    const unavailable = target.unavailable;
    if (unavailable) sendError(req, res, unavailable.code, unavailable);
    else
      sendError(
        req,
        res,
        isGatehouseError(err, 'UPSTREAM_TIMEOUT') ? 'UPSTREAM_TIMEOUT' : 'UPSTREAM_UNAVAILABLE',
      );
  }

  function web(req: IncomingMessage, res: ServerResponse, target: ProxyTarget, retried = false) {
    const method = req.method ?? 'GET';
    const withBody = target.body === undefined && hasBody(req);
    /** undici's handle on this exchange (abort, pause, resume), once it has started. */
    let controller: Dispatcher.DispatchController | null = null;
    /** Why this exchange ended early (deadline, client gone), for an abort still to come. */
    let ended: Error | null = null;
    let clientGone = false;
    let answered = false;

    const end = (reason: Error) => {
      ended ??= reason;
      controller?.abort(reason);
    };
    // Deadline for the upstream to start answering; body upload progress counts as activity.
    // Once the answer starts it streams as long as it likes (downloads, server-sent events).
    const timer = setTimeout(() => {
      const err = upstreamTimeout(target.timeoutMs);
      end(err);
      // Not even connected yet (undici tells us how to abort once it is): answer now.
      if (!controller) onError(err);
    }, target.timeoutMs);

    const onClientClose = () => {
      if (!res.writableFinished) {
        clientGone = true;
        clearTimeout(timer);
        end(new Error('client closed the connection'));
      }
    };
    res.once('close', onClientClose);
    const onDrain = () => controller?.resume();
    res.on('drain', onDrain);

    function onError(err: Error) {
      clearTimeout(timer);
      if (answered) return;
      answered = true;
      if (clientGone) return;
      const code = (err as NodeJS.ErrnoException).code;
      // A kept-alive connection the upstream closed as we reused it: safe to retry once when
      // nothing was sent back and the request has no body (nodejs.org/api/http.html#requestreusedsocket).
      if (
        !retried &&
        !isGatehouseError(err, 'UPSTREAM_TIMEOUT') &&
        (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') &&
        IDEMPOTENT.has(method) &&
        !withBody &&
        !res.headersSent
      ) {
        res.off('close', onClientClose);
        res.off('drain', onDrain);
        web(req, res, target, true);
        return;
      }
      fail(req, res, err as NodeJS.ErrnoException, target);
    }

    /** The request body, pulled as the upstream takes it; each chunk counts as activity. */
    async function* body() {
      for await (const chunk of req) {
        timer.refresh();
        yield chunk as Buffer;
      }
    }

    let headers = target.headers;
    if (withBody) {
      // undici frames a body of unknown length itself (chunked) and refuses the header.
      headers = [];
      for (let i = 0; i < target.headers.length; i += 2)
        if (target.headers[i]?.toLowerCase() !== 'transfer-encoding')
          headers.push(target.headers[i] as string, target.headers[i + 1] as string);
      req.on('error', (err) => end(err));
    }

    try {
      agents.get(target.upstream).dispatch(
        {
          path: target.path,
          method,
          headers,
          body: target.body ?? (withBody ? Readable.from(body()) : null),
        },
        {
          onRequestStart(started: Dispatcher.DispatchController) {
            controller = started;
            if (ended) started.abort(ended);
          },
          onResponseStart(
            started: Dispatcher.DispatchController,
            status: number,
            _parsed: unknown,
            statusText?: string,
          ) {
            if (status < 200) return; // 1xx: the final answer is still to come
            if (answered) {
              started.abort(new Error('answered already'));
              return;
            }
            clearTimeout(timer);
            // The headers as they came (names in their casing, order and number), not undici's
            // parsed object: the browser gets exactly what the policy lets through.
            const raw = (started.rawHeaders ?? []) as Array<Buffer | string>;
            const names: string[] = new Array(raw.length);
            for (let i = 0; i < raw.length; i++) names[i] = raw[i]?.toString('latin1') ?? '';
            // Headers as one raw list into a response with none set yet: Node writes them as
            // they are (headers set earlier would make it merge them one by one).
            res.writeHead(
              status,
              statusText ?? '',
              downstreamHeaders(names, { requestId: target.requestId, ...target.response }),
            );
          },
          onResponseData(started: Dispatcher.DispatchController, chunk: Buffer) {
            // Backpressure: undici stops reading until resume() (on the client's drain).
            if (!res.write(chunk)) started.pause();
          },
          onResponseEnd() {
            answered = true;
            res.off('drain', onDrain);
            res.end();
          },
          // An answer cut short upstream is cut short here too (never a silently truncated 200).
          onResponseError(_started: Dispatcher.DispatchController, err: Error) {
            onError(err);
          },
        },
      );
    } catch (err) {
      // Refused before anything was sent (a request undici will not make): as any upstream failure.
      end(err as Error);
      onError(err as Error);
    }
  }

  return { web };
}
