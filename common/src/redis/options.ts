/** Concern: how Gatehouse is told to reach Redis (the three topologies), parsed and described. */

export interface RedisNode {
  host: string;
  port: number;
}

/** Exactly one of the three. */
export type RedisTopology =
  /** One Redis: `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS). */
  | { url: string }
  /** Sentinel: the sentinels' addresses and the name of the master they monitor. */
  | { sentinel: { name: string; nodes: RedisNode[] } }
  /** Cluster: some of its nodes as `redis://host:port` URLs; the rest is discovered. */
  | { cluster: { nodes: string[] } };

export interface RedisCredentials {
  /** ACL user and password, used for every node (and every sentinel). */
  username?: string;
  password?: string;
}

export type RedisOptions = RedisTopology &
  RedisCredentials & {
    /** Per-command deadline in ms: a frozen Redis must fail requests, not hang them. */
    commandTimeoutMs?: number;
    connectTimeoutMs?: number;
    /** false: one connection attempt, no reconnects (one-shot tools). Default true. */
    reconnect?: boolean;
  };

export type SentinelOptions = RedisOptions & { sentinel: { name: string; nodes: RedisNode[] } };
export type ClusterOptions = RedisOptions & { cluster: { nodes: string[] } };
export type StandaloneOptions = RedisOptions & { url: string };

/** How to reach Redis, for messages: never a password. */
export function describeRedis(topology: RedisTopology): string {
  if ('sentinel' in topology) {
    const nodes = topology.sentinel.nodes.map((n) => `${n.host}:${n.port}`).join(',');
    return `sentinels ${nodes} (master ${topology.sentinel.name})`;
  }
  if ('cluster' in topology) return `cluster ${topology.cluster.nodes.map(redactUrl).join(',')}`;
  return redactUrl(topology.url);
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}

/** `host:port` or `[ipv6]:port`; null when it is neither. */
export function parseHostPort(text: string): RedisNode | null {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(text.trim());
  const port = Number(match?.[3]);
  const host = match?.[1] ?? match?.[2];
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { host, port };
}

/** A cluster node given as `host:port` or a `redis://` / `rediss://` URL, as a URL; else null. */
export function clusterNodeUrl(text: string): string | null {
  const value = text.trim();
  if (/^rediss?:\/\//.test(value)) {
    try {
      const url = new URL(value);
      return url.hostname && url.port ? value : null;
    } catch {
      return null;
    }
  }
  const node = parseHostPort(value);
  if (!node) return null;
  return `redis://${node.host.includes(':') ? `[${node.host}]` : node.host}:${node.port}`;
}
