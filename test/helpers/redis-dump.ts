/**
 * Everything a reader of Redis gets: every key under a prefix on every node given (each master of
 * a Cluster), with its type and contents, by SCAN + TYPE + GET/HGETALL/ZRANGE/SMEMBERS/LRANGE.
 * For tests that assert what a leaked dump, a backup or a replica would disclose.
 */
import { createClient } from 'redis';

export interface DumpedKey {
  node: string;
  key: string;
  type: string;
  /** The contents as strings: a value, hash fields and values, members (and scores). */
  values: string[];
}

export async function dumpRedis(urls: readonly string[], prefix: string): Promise<DumpedKey[]> {
  const out: DumpedKey[] = [];
  for (const url of urls) {
    const node = createClient({ url });
    node.on('error', () => {});
    await node.connect();
    try {
      for await (const keys of node.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
        for (const key of keys) {
          const type = await node.type(key);
          let values: string[] = [];
          if (type === 'string') values = [(await node.get(key)) ?? ''];
          else if (type === 'hash') values = Object.entries(await node.hGetAll(key)).flat();
          else if (type === 'zset')
            values = (await node.zRangeWithScores(key, 0, -1)).flatMap((e) => [
              e.value,
              String(e.score),
            ]);
          else if (type === 'set') values = await node.sMembers(key);
          else if (type === 'list') values = await node.lRange(key, 0, -1);
          else values = [`(${type})`];
          out.push({ node: url, key, type, values });
        }
      }
    } finally {
      node.destroy();
    }
  }
  return out;
}

/** Every message published on `channel` (on the node at `url`) until `stop` is called. */
export async function recordChannel(url: string, channel: string) {
  const messages: string[] = [];
  const subscriber = createClient({ url });
  subscriber.on('error', () => {});
  await subscriber.connect();
  await subscriber.subscribe(channel, (message) => {
    messages.push(message);
  });
  return {
    messages,
    async stop() {
      await subscriber.unsubscribe(channel).catch(() => {});
      subscriber.destroy();
    },
  };
}

/** The dumped keys and values in which `needle` occurs (as it is, or base64/base64url/hex). */
export function occurrences(dump: readonly DumpedKey[], needle: string): string[] {
  const raw = Buffer.from(needle, 'utf8');
  const spellings = [
    needle,
    raw.toString('base64'),
    raw.toString('base64url'),
    raw.toString('hex'),
  ];
  const hits: string[] = [];
  for (const entry of dump) {
    for (const text of [entry.key, ...entry.values]) {
      if (spellings.some((s) => text.includes(s))) hits.push(`${entry.key}: ${text.slice(0, 120)}`);
    }
  }
  return hits;
}
