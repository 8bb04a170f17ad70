import type { Request, Response } from 'express';
import { NO_STORE, sendError } from '../../../common/src/http.js';
import type { RevocationEvent, RevocationFeed } from '../adapters/revocation-subscription.js';
import { hasInternalToken } from './internal-token.js';

/** How long a new stream waits for the feed to be ready before answering 503. */
const READY_WAIT_MS = 2000;

/**
 * GET /internal/revocations: the revocation feed as server-sent events, for gateways (never
 * under /auth/, so no gateway proxies it to browsers). Events:
 *
 * - `hello` first, `{"cookieName","heartbeatMs"}`: the cookie validate reads (gateways key their
 *   caches on it) and the heartbeat period;
 * - `revoke`, `{"sids":[...]}`: these sessions ended;
 * - `changed`, `{"sids":[...]}`: these sessions' authentication changed (a step-up): drop their
 *   cached validations, keep their WebSockets (gateways that predate it ignore the event);
 * - `ping` every heartbeatMs: the feed, Redis included, works.
 *
 * The stream ends when the feed may have missed events (Redis connection lost, ping not echoed);
 * a gateway then flushes its cache and keeps it off until it is connected again. 503 while the
 * feed is not ready; 401 without the INTERNAL_TOKEN when one is set.
 */
export function revocationsHandler(deps: {
  feed: RevocationFeed;
  cookieName: string;
  internalToken?: string;
}) {
  return async (req: Request, res: Response) => {
    if (deps.internalToken && !hasInternalToken(req, deps.internalToken))
      return sendError(req, res, 'UNAUTHENTICATED', {
        message: 'A valid internal token is required.',
      });
    const ready = await deps.feed.whenReady(READY_WAIT_MS);
    if (req.destroyed || res.writableEnded) return;
    if (!ready || !deps.feed.ready) {
      return sendError(req, res, 'SESSION_STORE_UNAVAILABLE', { headers: { 'Retry-After': '1' } });
    }
    // From here to listen() nothing awaits: no event can fall between the check and the stream.
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': NO_STORE,
      // No proxy on the way may hold events back (nginx buffers answers by default).
      'X-Accel-Buffering': 'no',
    });
    req.socket.setNoDelay(true);
    req.socket.setTimeout(0);
    const hello = { cookieName: deps.cookieName, heartbeatMs: deps.feed.heartbeatMs };
    res.write(`event: hello\ndata: ${JSON.stringify(hello)}\n\n`);
    const stop = deps.feed.listen((event: RevocationEvent) => {
      if (event.type === 'down') {
        stop();
        res.end();
      } else if (event.type === 'revoke' || event.type === 'changed') {
        res.write(`event: ${event.type}\ndata: ${JSON.stringify({ sids: event.sids })}\n\n`);
      } else {
        res.write('event: ping\ndata: {}\n\n');
      }
    });
    res.once('close', stop);
  };
}
