import type { RedisCommands } from '../../../common/src/redis.js';

/**
 * Revocation events: every session ended before its time (logout, revocation by id, "end all
 * sessions", admin revoke, the users CLI, a user disabled, a session found expired) is published
 * on one Redis channel (this module: the channel, its messages, publishing them, which the session
 * repository does), and each session-service relays what it hears to the gateways connected to it
 * (adapters/revocation-subscription.ts subscribes, routes/revocation-feed.ts streams). A gateway's validation cache drops the session at once; when this
 * feed cannot vouch that it missed nothing, it closes the streams and the gateways turn their
 * caches off until they are connected again (docs/performance.md).
 *
 * Only ids of sessions that no longer exist travel here as `revoke` (a published id is already
 * deleted), and ids of live sessions whose authentication changed as `changed`. And
 * only their stored ids (storedSessionId: the SHA-256 of the cookie's id), never the cookie's
 * id itself: a subscriber to the channel learns nothing it could present as a cookie. The field
 * keeps its name `sids`; gateways hash the id in the cookies they cache to match it.
 */

/** The channel, under the key prefix so two deployments can share one Redis. */
export const revocationChannel = (prefix: string) => `${prefix}revocations`;

/** Ids per message: a revokeAll of thousands of sessions goes out in several messages. */
const CHUNK = 500;

/**
 * What travels on the channel: ended sessions (`revoke`), live sessions whose authentication
 * changed (`changed`, a step-up: gateways drop their cached validation and keep the session's
 * WebSockets open), and the subscribers' liveness pings.
 */
export type RevocationMessage =
  | { type: 'revoke'; sids: string[] }
  | { type: 'changed'; sids: string[] }
  | { type: 'ping'; from: string; n: number };

/** Publish `type` for these sessions (stored ids). Resolves once Redis took every message. */
async function publishSessions(
  redis: Pick<RedisCommands, 'publish'>,
  prefix: string,
  type: 'revoke' | 'changed',
  sids: readonly string[],
): Promise<void> {
  const channel = revocationChannel(prefix);
  const messages: Promise<unknown>[] = [];
  for (let i = 0; i < sids.length; i += CHUNK) {
    const message: RevocationMessage = { type, sids: sids.slice(i, i + CHUNK) };
    messages.push(redis.publish(channel, JSON.stringify(message)));
  }
  await Promise.all(messages);
}

/** Publish that these sessions (stored ids) ended. */
export const publishRevocations = (
  redis: Pick<RedisCommands, 'publish'>,
  prefix: string,
  sids: readonly string[],
) => publishSessions(redis, prefix, 'revoke', sids);

/** Publish that these live sessions' authentication changed (a step-up). */
export const publishChanges = (
  redis: Pick<RedisCommands, 'publish'>,
  prefix: string,
  sids: readonly string[],
) => publishSessions(redis, prefix, 'changed', sids);
