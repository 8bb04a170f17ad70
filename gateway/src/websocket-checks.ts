/**
 * When open WebSockets are decided again, and closed: per session, not per socket. Sockets are
 * grouped by their session's stored id (storedSessionId, the name the revocation feed uses);
 * the tunnels themselves are websocket.ts.
 *
 * How soon a socket closes after its session ends, whatever the number of sessions n:
 * - with the revocation feed (on with the validation cache, VALIDATE_CACHE_TTL_MS > 0): a
 *   `revoke` event closes every socket of that session at once, within the feed's latency
 *   (milliseconds: one Map lookup per revoked session, no validate);
 * - without it (feed down, cache off, or a session that expires with no event): within
 *   WS_REVALIDATE_MS plus one validate. Each session is checked once per interval at a phase
 *   drawn at random within it (a timing wheel of up to 50 slots), one validate shared by its
 *   sockets (per cookie and route), through the validation cache while the feed is up, at most
 *   MAX_CONCURRENT_CHECKS sessions at once. The session-service sees about n validates per
 *   interval, spread evenly (fewer when cached answers outlive the interval), never n in one
 *   burst, and no check is skipped: a session due while its check still runs is checked again
 *   right after. The bound holds while the session-service answers n validates per interval;
 *   past that, checks wait in line.
 * A socket whose upgrade was admitted before its session's `revoke` event and opened after it
 * is closed as it opens. A `changed` event (a step-up) checks that session's sockets at once.
 */
import type { IncomingMessage } from 'node:http';
import type { Logger } from '../../common/src/logger.js';
import type { RevocationFeed } from './revocation-stream.js';
import type { Admission, Admit } from './websocket.js';

/** Failed checks in a row (session-service unavailable) before an open socket is closed. */
export const UNAVAILABLE_ROUNDS = 3;
/** Sessions checked at once; more wait in line, so validate calls stay smooth. */
export const MAX_CONCURRENT_CHECKS = 64;
/** Phases per interval: each session is checked in one of these slots, drawn at random. */
const MAX_SLOTS = 50;
/**
 * Revocations remembered for upgrades in flight (admitted before the event, open after it):
 * this long, and at most this many (past that, such a socket waits for its first check).
 */
const RECENT_REVOCATION_MS = 60_000;
const MAX_RECENT_REVOCATIONS = 50_000;

/** An open tunnel, as the checks see it. */
export interface CheckedSocket {
  req: IncomingMessage;
  requestId: string;
  closing: boolean;
  close(code: number, reason: string): void;
}

interface Entry {
  socket: CheckedSocket;
  /** Failed checks in a row. */
  failures: number;
  session?: Session;
}

/** The open sockets of one session: checked together, closed together on a revocation. */
interface Session {
  /** `sid:<stored id>`, or `cookie:<Cookie header>` while the stored id is not known. */
  key: string;
  sid: string | null;
  entries: Set<Entry>;
  /** Its place on the wheel: its phase within the interval. */
  slot: number;
  /** Waiting in line: not queued twice. */
  queued: boolean;
  running: boolean;
  /** Due again while its check still ran: checked again as soon as it ends. */
  again: boolean;
}

export interface SessionChecksOptions {
  admit: Admit;
  logger: Logger;
  /** WS_REVALIDATE_MS. */
  intervalMs: number;
  /** The session-service's revocation feed (session-client.ts), when there is one. */
  feed?: RevocationFeed;
  /** Sessions checked at once (default MAX_CONCURRENT_CHECKS). */
  maxConcurrent?: number;
  onOutcome?: (outcome: string) => void;
  /** The phase draw (tests). */
  random?: () => number;
}

/** Why a refused admission closes a socket: the close reason (code 1008). */
function reasonOf(admission: Extract<Admission, { ok: false }>): string {
  if (admission.code === 'STEP_UP_REQUIRED') return 'step-up required';
  if (admission.status === 401) return 'session ended';
  if (admission.status === 403) return 'forbidden';
  return 'no longer routed';
}

export function createSessionChecks(options: SessionChecksOptions) {
  const { logger, feed } = options;
  const random = options.random ?? Math.random;
  const maxConcurrent = options.maxConcurrent ?? MAX_CONCURRENT_CHECKS;
  let open = 0;
  const sessions = new Map<string, Session>();
  const slotCount = Math.max(1, Math.min(MAX_SLOTS, Math.floor(options.intervalMs / 10)));
  const slotMs = options.intervalMs / slotCount;
  /** Slot i holds the sessions checked at phase i of every interval. */
  const wheel = Array.from({ length: slotCount }, () => new Set<Session>());
  /** The last slot turned, counted from the epoch (Date.now() / slotMs). */
  let turned = 0;
  let ticker: NodeJS.Timeout | undefined;
  /** Sessions waiting for their check, first in first out, and the checks running. */
  let line: Session[] = [];
  let head = 0;
  let active = 0;
  /** Stored id -> when (performance.now()) the feed said it was revoked, oldest first. */
  const revoked = new Map<string, number>();

  function remember(sid: string, at: number): void {
    revoked.delete(sid);
    revoked.set(sid, at);
    for (const [old, when] of revoked) {
      if (at - when < RECENT_REVOCATION_MS && revoked.size <= MAX_RECENT_REVOCATIONS) break;
      revoked.delete(old);
    }
  }

  function close(entry: Entry, code: number, reason: string, fields: object = {}) {
    options.onOutcome?.(`closed_${reason.replaceAll(' ', '_')}`);
    logger.info(
      { requestId: entry.socket.requestId, reason, ...fields },
      'websocket closed by the gateway',
    );
    entry.socket.close(code, reason);
  }

  const unsubscribe = feed?.subscribe((event, sids) => {
    const at = performance.now();
    for (const sid of sids) {
      if (event === 'revoke') remember(sid, at);
      const session = sessions.get(`sid:${sid}`);
      if (!session) continue;
      if (event === 'changed') due(session);
      else
        for (const entry of [...session.entries])
          if (!entry.socket.closing) close(entry, 1008, 'session ended', { by: 'revocation' });
    }
    drain();
  });

  function apply(entry: Entry, admission: Admission): void {
    if (entry.socket.closing) return;
    if (admission.ok) entry.failures = 0;
    else if (admission.status !== 503) close(entry, 1008, reasonOf(admission));
    else {
      entry.failures += 1;
      if (entry.failures >= UNAVAILABLE_ROUNDS) {
        options.onOutcome?.('closed_unavailable');
        entry.socket.close(1013, 'session check unavailable');
      }
    }
  }

  /** Decide again for every socket of one session: one validate per cookie and route. */
  async function check(session: Session): Promise<void> {
    const shared = new Map<string, Promise<unknown>>();
    await Promise.all(
      [...session.entries].map(async (entry) => {
        let admission: Admission;
        try {
          admission = await options.admit(entry.socket.req, { cache: shared });
        } catch {
          admission = { ok: false, status: 503, code: 'SESSION_SERVICE_UNAVAILABLE' };
        }
        apply(entry, admission);
      }),
    );
    // Sockets opened before the feed said the cookie's name: index them by stored id now.
    if (session.sid === null && feed)
      for (const entry of [...session.entries]) {
        const sid = feed.sessionOf(entry.socket.req.headers.cookie);
        if (sid !== null && !entry.socket.closing) join(entry, sid);
      }
  }

  function drain(): void {
    while (active < maxConcurrent && head < line.length) {
      const session = line[head] as Session;
      head += 1;
      session.queued = false;
      if (session.entries.size === 0) continue;
      session.running = true;
      active += 1;
      void check(session).finally(() => {
        active -= 1;
        session.running = false;
        if (session.again) {
          session.again = false;
          due(session);
        }
        drain();
      });
    }
    if (head === line.length) {
      line = [];
      head = 0;
    } else if (head > 1024) {
      line = line.slice(head);
      head = 0;
    }
  }

  /** A session's turn: into the line, or once more right after the check it is in. */
  function due(session: Session): void {
    if (session.running) session.again = true;
    else if (!session.queued && session.entries.size > 0) {
      session.queued = true;
      line.push(session);
    }
  }

  /** Every slot whose time came since the last turn (each at most once per turn). */
  function turn(): void {
    const now = Math.floor(Date.now() / slotMs);
    for (let slot = Math.max(turned + 1, now - slotCount + 1); slot <= now; slot++)
      for (const session of wheel[slot % slotCount] as Set<Session>) due(session);
    turned = now;
    drain();
  }

  function leave(entry: Entry): void {
    const { session } = entry;
    if (!session) return;
    entry.session = undefined;
    session.entries.delete(entry);
    if (session.entries.size === 0 && sessions.get(session.key) === session) {
      sessions.delete(session.key);
      wheel[session.slot]?.delete(session);
    }
  }

  /** Put an entry in its session (made, at a random phase, if it is the first socket of it). */
  function join(entry: Entry, sid: string | null): void {
    leave(entry);
    const key = sid !== null ? `sid:${sid}` : `cookie:${entry.socket.req.headers.cookie ?? ''}`;
    let session = sessions.get(key);
    if (!session) {
      const slot = Math.min(slotCount - 1, Math.floor(random() * slotCount));
      session = { key, sid, entries: new Set(), slot, queued: false, running: false, again: false };
      sessions.set(key, session);
      wheel[slot]?.add(session);
    }
    session.entries.add(entry);
    entry.session = session;
  }

  return {
    /**
     * Check this open socket from now on; the function returned stops (call it on close).
     * `admittedFrom` (performance.now()): when the admission that opened it began.
     */
    track(socket: CheckedSocket, admittedFrom = Number.POSITIVE_INFINITY): () => void {
      const entry: Entry = { socket, failures: 0 };
      open += 1;
      const sid = feed?.sessionOf(socket.req.headers.cookie) ?? null;
      join(entry, sid);
      const revokedAt = sid === null ? undefined : revoked.get(sid);
      // (once the caller has set the tunnel up: it calls this mid-way)
      if (revokedAt !== undefined && revokedAt >= admittedFrom)
        queueMicrotask(() => {
          if (!socket.closing) close(entry, 1008, 'session ended', { by: 'revocation' });
        });
      if (!ticker) {
        turned = Math.floor(Date.now() / slotMs);
        ticker = setInterval(turn, Math.max(1, Math.floor(slotMs)));
        ticker.unref();
      }
      let tracked = true;
      return () => {
        if (!tracked) return;
        tracked = false;
        open -= 1;
        leave(entry);
        if (open === 0 && ticker) {
          clearInterval(ticker);
          ticker = undefined;
        }
      };
    },
    /** Sessions with open sockets. */
    get sessions() {
      return sessions.size;
    },
    close(): void {
      if (ticker) clearInterval(ticker);
      ticker = undefined;
      unsubscribe?.();
    },
  };
}
