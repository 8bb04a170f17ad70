/** Concern: walking the keyspace with SCAN (every master of a Cluster), for statistics only. */
import { isGatehouseRedis, type RedisClient } from './commands.js';
import { withDeadline } from './deadline.js';

/** `text` matched literally in a SCAN/KEYS glob pattern. */
export const escapeGlob = (text: string) => text.replace(/[*?[\]\\]/g, '\\$&');

/** One SCAN step on one node: the next cursor and the keys of this step. */
export type ScanStep = (
  cursor: string,
  match: string,
  count: number,
) => Promise<{ cursor: string; keys: string[] }>;

/** A node-redis connection to one node (or a Sentinel master), as far as SCAN uses it. */
interface Scannable {
  scan(
    cursor: string,
    options: { MATCH: string; COUNT: number },
  ): Promise<{ cursor: string; keys: string[] }>;
}

/** SCAN steps on `node`, each within the command deadline. */
export const scanStepOf =
  (node: Scannable, timeoutMs: number): ScanStep =>
  (cursor, match, count) =>
    withDeadline(node.scan(cursor, { MATCH: match, COUNT: count }), timeoutMs, 'SCAN');

/**
 * The keys matching `match`, in batches: every step of every node in `steps`, a full SCAN each.
 * `stillReady` is asked before each step (a connection that went down ends the walk).
 */
export async function* scanAll(
  steps: ScanStep[],
  match: string,
  count: number,
  stillReady: () => void,
): AsyncGenerator<string[]> {
  for (const step of steps) {
    let cursor = '0';
    do {
      stillReady();
      const reply = await step(cursor, match, count);
      cursor = String(reply.cursor);
      yield reply.keys;
    } while (cursor !== '0');
  }
}

/**
 * How many keys match `pattern`, by SCAN (every master of a Cluster), stopping at `limit` keys
 * (then `complete` is false and `count` a lower bound). For occasional statistics only (the
 * active-sessions gauge): never on a request's path. Null for connections not made by createRedis.
 */
export async function countKeys(
  client: RedisClient,
  pattern: string,
  options: { limit?: number; count?: number } = {},
): Promise<{ count: number; complete: boolean } | null> {
  if (!isGatehouseRedis(client)) return null;
  const limit = options.limit ?? 1_000_000;
  let count = 0;
  for await (const keys of client.scan(pattern, { count: options.count ?? 1000 })) {
    count += keys.length;
    if (count >= limit) return { count, complete: false };
  }
  return { count, complete: true };
}
