/**
 * The revocation channel's subscriber (one per session-service process): it relays what it
 * hears to the gateways' streams (routes/revocation-feed.ts) and vouches, with echoed pings,
 * that nothing was missed. The channel and its messages: domain/revocation-channel.ts.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../../common/src/logger.js';
import type { RedisCommands, RedisSubscriber } from '../../../common/src/redis.js';
import { type RevocationMessage, revocationChannel } from '../domain/revocation-channel.js';

export type RevocationEvent =
  /** These sessions ended. */
  | { type: 'revoke'; sids: string[] }
  /** These sessions' authentication changed (a step-up): drop cached validations only. */
  | { type: 'changed'; sids: string[] }
  /** The feed is live: a ping this instance published came back through Redis. */
  | { type: 'ping' }
  /** The feed may have missed events: every stream must end (gateways flush their caches). */
  | { type: 'down' };

export type RevocationFeed = ReturnType<typeof createRevocationFeed>;

/**
 * One Redis subscription per session-service process, shared by every stream, opened when the
 * first stream starts and closed when the last one ends.
 *
 * Ready means: subscribed, and a ping this instance published after the last sign of trouble came
 * back. Every `heartbeatMs` it publishes a ping; its echo is relayed to the streams as their
 * heartbeat, so a gateway that hears heartbeats knows the whole path (Redis included) works. An
 * error or reconnect of the subscription, or a ping not back within the next heartbeat, makes
 * the feed not ready: listeners get `down`, and it recovers with the next echoed ping.
 */
export function createRevocationFeed(options: {
  redis: Pick<RedisCommands, 'publish'>;
  /** Makes the subscriber connection (createRedisSubscriber). */
  subscriber: () => RedisSubscriber;
  prefix: string;
  logger: Logger;
  heartbeatMs?: number;
}) {
  const { logger } = options;
  const heartbeatMs = options.heartbeatMs ?? 5000;
  /** While not ready, pings go out this often so recovery is quick. */
  const recoveryMs = Math.min(250, heartbeatMs);
  const channel = revocationChannel(options.prefix);
  const instance = randomUUID();
  const listeners = new Set<(event: RevocationEvent) => void>();
  const waiters = new Set<() => void>();
  let subscriber: RedisSubscriber | null = null;
  let ready = false;
  let sent = 0;
  /** The ping whose echo makes (or keeps) the feed ready; earlier echoes prove nothing new. */
  let awaited = 0;
  let timer: NodeJS.Timeout | undefined;

  const emit = (event: RevocationEvent) => {
    for (const listener of listeners) listener(event);
  };

  function down(reason: string) {
    // Any ping sent so far may have crossed the gap: only a later one may make us ready again.
    awaited = sent + 1;
    if (!ready) return;
    ready = false;
    logger.warn({ reason }, 'revocation feed interrupted: closing gateway streams');
    emit({ type: 'down' });
  }

  function onMessage(raw: string) {
    let message: RevocationMessage;
    try {
      message = JSON.parse(raw) as RevocationMessage;
    } catch {
      return;
    }
    if ((message.type === 'revoke' || message.type === 'changed') && Array.isArray(message.sids)) {
      const sids = message.sids.filter((s): s is string => typeof s === 'string');
      if (sids.length > 0 && ready) emit({ type: message.type, sids });
      return;
    }
    if (message.type !== 'ping' || message.from !== instance || message.n < awaited) return;
    awaited = message.n + 1; // the next ping must come back too
    if (!ready) {
      ready = true;
      logger.info('revocation feed ready');
      for (const wake of waiters) wake();
      waiters.clear();
      schedule(heartbeatMs);
    }
    emit({ type: 'ping' });
  }

  function ping() {
    // The previous heartbeat's ping is not back: something on the way is broken.
    if (ready && awaited <= sent) down('heartbeat ping not echoed');
    sent += 1;
    options.redis
      .publish(
        channel,
        JSON.stringify({ type: 'ping', from: instance, n: sent } satisfies RevocationMessage),
      )
      .catch((err: Error) => down(`publish failed: ${err.message}`));
  }

  function schedule(ms: number) {
    clearTimeout(timer);
    timer = setTimeout(() => {
      ping();
      schedule(ready ? heartbeatMs : recoveryMs);
    }, ms);
    timer.unref();
  }

  async function start() {
    const sub = options.subscriber();
    subscriber = sub;
    sub.onDown((err) => down(err.message));
    for (let attempt = 0; subscriber === sub; attempt++) {
      try {
        await sub.connect();
        await sub.subscribe(channel, onMessage);
        break;
      } catch (err) {
        down(`subscribe failed: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** attempt, 2000)).unref());
      }
    }
    if (subscriber !== sub) return;
    ping();
    schedule(recoveryMs);
  }

  function stop() {
    clearTimeout(timer);
    timer = undefined;
    ready = false;
    const sub = subscriber;
    subscriber = null;
    if (sub) void sub.close().catch(() => {});
    for (const wake of waiters) wake();
    waiters.clear();
  }

  return {
    heartbeatMs,
    get ready() {
      return ready;
    },
    /** Wait until ready (the first stream starts the subscription), at most `timeoutMs`. */
    async whenReady(timeoutMs: number): Promise<boolean> {
      if (!subscriber) void start();
      if (ready) return true;
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(deadline);
          resolve();
        };
        const deadline = setTimeout(() => {
          waiters.delete(wake);
          resolve();
        }, timeoutMs);
        deadline.unref();
        waiters.add(wake);
      });
      if (!ready && listeners.size === 0 && waiters.size === 0) stop();
      return ready;
    },
    /** Receive events; returns the unsubscribe. The subscription closes with the last listener. */
    listen(listener: (event: RevocationEvent) => void): () => void {
      listeners.add(listener);
      if (!subscriber) void start();
      return () => {
        listeners.delete(listener);
        if (listeners.size === 0 && waiters.size === 0) stop();
      };
    },
    /** End every stream now (shutdown): listeners get `down`. */
    close() {
      emit({ type: 'down' });
      listeners.clear();
      stop();
    },
  };
}
