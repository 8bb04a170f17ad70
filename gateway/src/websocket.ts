/**
 * WebSocket upgrades through the gateway: admission, the raw tunnel and the close. The tunnel's
 * state (both sockets, the frame boundary) lives in one closure; frame parsing is
 * websocket-frames.ts, when open sockets are checked again and closed is websocket-checks.ts.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Missing } from '../../common/src/authentication.js';
import { type ErrorCode, isGatehouseError } from '../../common/src/errors.js';
import { errorResponseBytes } from '../../common/src/http.js';
import type { Logger } from '../../common/src/logger.js';
import { type ProxyTarget, requestFn, requestOptions, upstreamTimeout } from './proxy.js';
import { downstreamHeaders } from './response-headers.js';
import type { RevocationFeed } from './revocation-stream.js';
import { type CheckedSocket, createSessionChecks } from './websocket-checks.js';
import { closeFrame, FrameBoundary } from './websocket-frames.js';

/** What the gateway decided about a request (the same decision for HTTP and WebSocket). */
export type Admission =
  | { ok: true; target: ProxyTarget; routeId: string }
  | {
      ok: false;
      status: number;
      code: ErrorCode;
      message?: string;
      headers?: Record<string, string>;
      /** STEP_UP_REQUIRED / REAUTHENTICATION_REQUIRED: what the session lacks. */
      need?: Missing;
      /** An access token's (or a tokens-only route's) refusal: JSON, never a login redirect. */
      bearer?: true;
    };

/** Decide again for an open socket; `cache` shares one validate call per session per check. */
export type Admit = (
  req: IncomingMessage,
  options: { upgrade?: string; cache?: Map<string, Promise<unknown>> },
) => Promise<Admission>;

export { UNAVAILABLE_ROUNDS } from './websocket-checks.js';

/** Answer an upgrade request with a plain HTTP error (JSON, the catalogue's status) and close. */
export function refuseUpgrade(
  socket: Duplex,
  code: ErrorCode,
  message: string | undefined,
  requestId: string,
  headers: Record<string, string> = {},
  fields?: Record<string, string>,
): void {
  if (socket.destroyed) return;
  socket.end(
    errorResponseBytes(code, {
      ...(message !== undefined ? { message } : {}),
      headers: { 'X-Request-Id': requestId, ...headers },
      ...(fields ? { fields } : {}),
    }),
  );
  setTimeout(() => socket.destroy(), 1000).unref();
}

function headLines(status: number, message: string, rawHeaders: readonly string[]): string {
  let out = `HTTP/1.1 ${status} ${message}\r\n`;
  for (let i = 0; i < rawHeaders.length; i += 2)
    out += `${rawHeaders[i]}: ${rawHeaders[i + 1]}\r\n`;
  return `${out}\r\n`;
}

interface Tunnel extends CheckedSocket {
  closing: boolean;
}

/**
 * WebSocket upgrades: the same decision as HTTP (path, route, public, allow, session), then a raw
 * tunnel to the upstream (frames pass untouched: extensions and subprotocols are the two ends'
 * business). An open socket is closed (both sides, close code 1008) when its session ends or the
 * user is no longer allowed, and (1013) when the session-service stays unavailable for
 * UNAVAILABLE_ROUNDS checks in a row: at once on the revocation feed's event, else by the
 * per-session checks of websocket-checks.ts (within WS_REVALIDATE_MS plus one validate).
 */
export function createWebSocketProxy(options: {
  admit: Admit;
  logger: Logger;
  intervalMs: number;
  /** The session-service's revocation feed (session-client.ts), when there is one. */
  feed?: RevocationFeed;
  onOutcome?: (outcome: string) => void;
}) {
  const { logger } = options;
  const tunnels = new Set<Tunnel>();
  const checks = createSessionChecks(options);

  function track(tunnel: Tunnel, admittedFrom: number): () => void {
    tunnels.add(tunnel);
    const untrack = checks.track(tunnel, admittedFrom);
    return () => {
      tunnels.delete(tunnel);
      untrack();
    };
  }

  function tunnel(
    admittedFrom: number,
    req: IncomingMessage,
    requestId: string,
    client: Duplex,
    clientHead: Buffer,
    upstream: Socket,
    upstreamHead: Buffer,
  ) {
    const toClient = new FrameBoundary();
    const toUpstream = new FrameBoundary();
    const relays: Array<() => void> = [];
    const relay = (from: Duplex, to: Duplex, frames: FrameBoundary) => {
      const onData = (chunk: Buffer) => {
        frames.feed(chunk);
        if (!to.write(chunk)) from.pause();
      };
      const onDrain = () => from.resume();
      from.on('data', onData);
      to.on('drain', onDrain);
      relays.push(() => {
        from.off('data', onData);
        to.off('drain', onDrain);
      });
    };
    const discard = () => {};
    const state: Tunnel = {
      req,
      requestId,
      closing: false,
      close(code, reason) {
        if (state.closing) return;
        state.closing = true;
        for (const stop of relays) stop();
        // keep reading (and dropping) so each side's close handshake and FIN arrive
        client.on('data', discard).resume();
        upstream.on('data', discard).resume();
        if (toClient.atBoundary) client.end(closeFrame(code, reason, false));
        else client.destroy();
        if (toUpstream.atBoundary) upstream.end(closeFrame(code, reason, true));
        else upstream.destroy();
        setTimeout(() => {
          client.destroy();
          upstream.destroy();
        }, 2000).unref();
      },
    };
    const untrack = track(state, admittedFrom);
    let open = 2;
    const onClose = (other: Duplex) => (hadError: boolean) => {
      if (hadError) other.destroy();
      else other.end();
      setTimeout(() => other.destroy(), 5000).unref();
      open -= 1;
      if (open === 0) {
        untrack();
        logger.debug({ requestId }, 'websocket closed');
      }
    };
    client.once('close', onClose(upstream));
    upstream.once('close', onClose(client));
    client.on('end', () => (state.closing ? client.destroy() : upstream.end()));
    upstream.on('end', () => (state.closing ? upstream.destroy() : client.end()));
    upstream.on('error', (err) =>
      logger.debug({ requestId, err: { message: err.message } }, 'websocket upstream error'),
    );
    const clientSocket = client as Socket;
    clientSocket.setTimeout?.(0);
    clientSocket.setNoDelay?.(true);
    upstream.setTimeout(0);
    upstream.setNoDelay(true);
    upstream.setKeepAlive(true);
    if (upstreamHead.length > 0) {
      toClient.feed(upstreamHead);
      client.write(upstreamHead);
    }
    if (clientHead.length > 0) {
      toUpstream.feed(clientHead);
      upstream.write(clientHead);
    }
    relay(client, upstream, toUpstream);
    relay(upstream, client, toClient);
  }

  async function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', (err) =>
      logger.debug({ err: { message: err.message } }, 'websocket client socket error'),
    );
    const requestId = String(req.headers['x-request-id']);
    let admission: Admission;
    /** A revocation heard from here on may postdate the answer that admits this socket. */
    const admittedFrom = performance.now();
    try {
      admission = await options.admit(req, { upgrade: String(req.headers.upgrade) });
    } catch (err) {
      logger.error({ err, requestId }, 'websocket admission failed');
      admission = { ok: false, status: 500, code: 'INTERNAL_ERROR' };
    }
    const path = (req.url ?? '').split('?')[0];
    if (!admission.ok) {
      options.onOutcome?.(`refused_${admission.status}`);
      logger.info({ requestId, path, status: admission.status }, 'websocket refused');
      refuseUpgrade(
        socket,
        admission.code,
        admission.message,
        requestId,
        admission.headers,
        admission.need ? { need: admission.need } : undefined,
      );
      return;
    }
    if (socket.destroyed) return;
    const { target } = admission;
    const proxyReq = requestFn(target.upstream)(requestOptions(target, req.method ?? 'GET', false));
    let upgraded = false;
    const timer = setTimeout(() => {
      proxyReq.destroy(upstreamTimeout(target.timeoutMs));
    }, target.timeoutMs);
    socket.once('close', () => {
      if (!upgraded) proxyReq.destroy();
    });
    proxyReq.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (upgraded || socket.destroyed) return;
      logger.warn(
        { err: { code: err.code, message: err.message }, requestId },
        'websocket upstream error',
      );
      options.onOutcome?.('upstream_error');
      if (isGatehouseError(err, 'UPSTREAM_TIMEOUT'))
        refuseUpgrade(socket, 'UPSTREAM_TIMEOUT', undefined, requestId);
      else refuseUpgrade(socket, 'UPSTREAM_UNAVAILABLE', undefined, requestId);
    });
    // The upstream refused the upgrade with a plain answer: pass it on, then close.
    proxyReq.on('response', (res) => {
      clearTimeout(timer);
      // The same response policy as any proxied answer (no Gatehouse cookie, no assertion).
      const rawHeaders = downstreamHeaders(res.rawHeaders, { requestId, ...target.response });
      rawHeaders.push('Connection', 'close');
      socket.write(headLines(res.statusCode ?? 502, res.statusMessage ?? '', rawHeaders));
      res.on('error', () => socket.destroy());
      res.pipe(socket);
    });
    proxyReq.on('upgrade', (res, upstream, upstreamHead) => {
      clearTimeout(timer);
      upgraded = true;
      if (socket.destroyed) {
        upstream.destroy();
        return;
      }
      options.onOutcome?.('opened');
      logger.info({ requestId, path, route: admission.routeId }, 'websocket opened');
      socket.write(
        headLines(
          res.statusCode ?? 101,
          res.statusMessage || 'Switching Protocols',
          downstreamHeaders(res.rawHeaders, { ...target.response, upgrade: true }),
        ),
      );
      tunnel(admittedFrom, req, requestId, socket, head, upstream, upstreamHead);
    });
    proxyReq.end();
  }

  return {
    handleUpgrade,
    /** Open tunnels (for tests and metrics). */
    get size() {
      return tunnels.size;
    },
    /** Sessions with open sockets (for tests). */
    get sessions() {
      return checks.sessions;
    },
    close() {
      checks.close();
      for (const t of tunnels) t.close(1001, 'gateway shutting down');
    },
  };
}
