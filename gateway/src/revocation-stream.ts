import http from 'node:http';
import https from 'node:https';
import { createParser } from 'eventsource-parser';
import type { Logger } from '../../common/src/logger.js';

export interface StreamHello {
  /** The cookie validate reads. */
  cookieName: string;
  heartbeatMs: number;
}

export interface RevocationStreamOptions {
  /** The session-service's GET /internal/revocations. */
  url: URL;
  /** Sent as `Authorization: Bearer` (INTERNAL_TOKEN). */
  token?: string;
  logger: Logger;
  /** Connected (hello received): the cache may start, from empty. */
  onUp(hello: StreamHello): void;
  onRevoke(sids: string[]): void;
  /**
   * These live sessions' authentication changed (a step-up): their cached validations are stale,
   * the sessions themselves are not ended.
   */
  onChanged(sids: string[]): void;
  /** Not connected (any more): the cache must be off. */
  onDown(reason: string): void;
  /** Before the hello, and when the hello gives none. */
  heartbeatMs?: number;
}

/** A revocation feed event: `revoke` names ended sessions, `changed` live ones re-authenticated. */
export type RevocationListener = (event: 'revoke' | 'changed', sids: readonly string[]) => void;

/**
 * The feed as the rest of the gateway sees it (session-client.ts relays this stream): which
 * session a Cookie header names, in the feed's terms (the stored id, storedSessionId), and its
 * events. The WebSocket checks (websocket-checks.ts) close a revoked session's sockets from it
 * at once.
 */
export interface RevocationFeed {
  /** The stored id of the session this Cookie header carries; null: none, or not known yet. */
  sessionOf(cookieHeader: string | undefined): string | null;
  /** Hear every `revoke` and `changed` event (after the validation cache dropped them). */
  subscribe(listener: RevocationListener): () => void;
}

/** The longest event we accept (a revoke message holds at most 500 ids). */
const MAX_EVENT_BYTES = 256 * 1024;
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;

/**
 * One server-sent-events stream to the session-service's revocation feed, kept open for the
 * gateway's life: reconnects with capped, jittered backoff; a stream silent for two heartbeats
 * plus a second is taken for dead (within about 11 s with the 5 s heartbeat) and replaced.
 */
export function createRevocationStream(options: RevocationStreamOptions) {
  const { logger } = options;
  let request: http.ClientRequest | null = null;
  let up = false;
  let closed = false;
  let attempt = 0;
  let retryTimer: NodeJS.Timeout | undefined;
  let silence: NodeJS.Timeout | undefined;
  let heartbeatMs = options.heartbeatMs ?? 5000;
  /** Log a broken stream once, not at every failed reconnect. */
  let reported = false;

  function down(reason: string) {
    clearTimeout(silence);
    const wasUp = up;
    up = false;
    options.onDown(reason);
    if (closed) return;
    if (wasUp || !reported) {
      reported = true;
      logger.warn({ reason }, 'revocation stream down: validation cache off until it is back');
    }
    const delay = Math.min(BACKOFF_MIN_MS * 2 ** attempt, BACKOFF_MAX_MS);
    attempt += 1;
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, delay + Math.floor(Math.random() * delay * 0.2));
    retryTimer.unref();
  }

  /** Silence longer than two heartbeats (plus slack) means the stream is dead. */
  function watch(): void {
    clearTimeout(silence);
    silence = setTimeout(() => request?.destroy(new Error('no heartbeat')), heartbeatMs * 2 + 1000);
    silence.unref();
  }

  function handle(event: string, data: string) {
    let body: unknown;
    try {
      body = JSON.parse(data || '{}');
    } catch {
      return;
    }
    if (event === 'hello') {
      const hello = body as Partial<StreamHello>;
      if (typeof hello.cookieName !== 'string' || !hello.cookieName) {
        request?.destroy(new Error('hello without a cookie name'));
        return;
      }
      if (typeof hello.heartbeatMs === 'number' && hello.heartbeatMs > 0)
        heartbeatMs = hello.heartbeatMs;
      up = true;
      attempt = 0;
      if (reported) logger.info('revocation stream connected: validation cache on');
      reported = false;
      options.onUp({ cookieName: hello.cookieName, heartbeatMs });
      watch();
    } else if ((event === 'revoke' || event === 'changed') && up) {
      const sids = (body as { sids?: unknown }).sids;
      if (!Array.isArray(sids)) return;
      const ids = sids.filter((s): s is string => typeof s === 'string');
      if (event === 'revoke') options.onRevoke(ids);
      else options.onChanged(ids);
    }
  }

  function connect() {
    if (closed) return;
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    const send = options.url.protocol === 'https:' ? https.request : http.request;
    let failed = false;
    const fail = (reason: string) => {
      if (failed) return;
      failed = true;
      request = null;
      down(reason);
    };
    const req = send(options.url, { method: 'GET', headers, agent: false });
    request = req;
    // Until the hello: a connection that hangs counts as down.
    silence = setTimeout(() => req.destroy(new Error('no hello')), heartbeatMs * 2 + 1000);
    silence.unref();
    req.on('error', (err) => fail(err.message));
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        req.destroy();
        fail(`revocation stream answered ${res.statusCode}`);
        return;
      }
      res.setEncoding('utf8');
      // The text/event-stream format is eventsource-parser's business; the connection (token,
      // TLS, heartbeat watchdog, capped jittered backoff) stays ours.
      const parser = createParser({
        maxBufferSize: MAX_EVENT_BYTES,
        onEvent: (event) => handle(event.event ?? 'message', event.data),
        onError: (err) => {
          if (err.type === 'max-buffer-size-exceeded') req.destroy(new Error('event too large'));
        },
      });
      res.on('data', (chunk: string) => {
        if (up) watch();
        parser.feed(chunk);
      });
      res.on('error', (err) => fail(err.message));
      res.on('close', () => fail('revocation stream ended'));
    });
    req.end();
  }

  connect();
  return {
    get connected() {
      return up;
    },
    close() {
      closed = true;
      clearTimeout(retryTimer);
      clearTimeout(silence);
      request?.destroy();
      request = null;
      if (up) {
        up = false;
        options.onDown('closed');
      }
    },
  };
}
