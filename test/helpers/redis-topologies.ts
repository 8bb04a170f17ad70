/**
 * Distributed Redis for tests: a 3-master Redis Cluster, and Sentinel (1 primary, 1 replica,
 * 3 sentinels), each on free ports with its own temp dir, from the redis-server and redis-cli
 * on PATH. Readiness is polled with deadlines, never waited for with fixed sleeps.
 *
 * Over 300 lines: Cluster and Sentinel share the node spawning, config files and polling here.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitFor } from './ports.js';
import { killAndWait } from './redis.js';

const run = promisify(execFile);
const HOST = '127.0.0.1';

export interface RedisNodeAddress {
  host: string;
  port: number;
}

/** One redis-server process of a topology. */
export interface RedisNodeProcess extends RedisNodeAddress {
  url: string;
  process: ChildProcess;
}

export interface RedisClusterSetup {
  /** The masters at creation. */
  nodes: RedisNodeProcess[];
  /** Their replicas (`replicas` per master), if any. */
  replicas: RedisNodeProcess[];
  /** The value of REDIS_CLUSTER_NODES for this cluster. */
  clusterNodes: string;
  stop(): Promise<void>;
}

export interface RedisSentinelSetup {
  /** The monitored master's name (REDIS_SENTINEL_NAME). */
  name: string;
  primary: RedisNodeProcess;
  replica: RedisNodeProcess;
  sentinels: RedisNodeProcess[];
  /** The value of REDIS_SENTINELS for this setup. */
  sentinelList: string;
  /** The address the sentinels currently give for the master. */
  masterAddress(): Promise<RedisNodeAddress>;
  /** Kill the primary (SIGKILL): the sentinels then promote the replica (failover tests). */
  stopPrimary(): Promise<void>;
  /** Wait until the sentinels name a master other than the original primary; returns it. */
  waitForFailover(timeoutMs?: number): Promise<RedisNodeAddress>;
  stop(): Promise<void>;
}

/** `redis-cli -p <port> <args>`: its stdout, or null when the server does not answer. */
async function cli(port: number, ...args: string[]): Promise<string | null> {
  try {
    const { stdout } = await run('redis-cli', ['-h', HOST, '-p', String(port), ...args], {
      timeout: 2000,
    });
    return stdout;
  } catch {
    return null;
  }
}

/** A data node of a test topology on HOST:`port`: files in `dir`, no persistence, no eviction. */
function dataNodeArgs(port: number, dir: string): string[] {
  return [
    '--port',
    String(port),
    '--bind',
    HOST,
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'no',
    '--maxmemory-policy',
    'noeviction',
  ];
}

function spawnServer(args: string[], what: string): ChildProcess {
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  child.on('error', (err) => {
    throw new Error(`could not start ${what} (is redis-server installed?): ${err.message}`);
  });
  return child;
}

async function waitForPong(port: number, what: string): Promise<void> {
  await waitFor(async () => (await cli(port, 'PING'))?.trim() === 'PONG', 10_000, what);
}

/** The fields of an INFO-style reply (`name:value` lines). */
function infoFields(text: string | null): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of (text ?? '').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}

/** Ports that are free now, all different (the OS may hand the same port out twice in a row). */
async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

async function stopAll(processes: ChildProcess[], dir: string): Promise<void> {
  await Promise.all(processes.map((child) => killAndWait(child)));
  rmSync(dir, { recursive: true, force: true });
}

/**
 * A Redis Cluster of `masters` masters (3) with `replicas` replicas each (0). Each node gets an
 * explicit cluster bus port (the default, port + 10000, may be taken or out of range for a high
 * free port). `requireFullCoverage: false` keeps the other masters serving their slots once one
 * has failed (Redis's default, true, stops the whole cluster after cluster-node-timeout, 2 s here).
 */
export async function startRedisCluster(
  options: { masters?: number; replicas?: number; requireFullCoverage?: boolean } = {},
) {
  const replicasPerMaster = options.replicas ?? 0;
  const count = (options.masters ?? 3) * (1 + replicasPerMaster);
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-cluster-'));
  const ports = await freePorts(count * 2);
  const nodes: RedisNodeProcess[] = [];
  const stop = () =>
    stopAll(
      nodes.map((n) => n.process),
      dir,
    );
  const masterPorts = new Set<number>();
  try {
    for (let i = 0; i < count; i++) {
      const port = ports[i] as number;
      const args = [
        ...dataNodeArgs(port, dir),
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(dir, `nodes-${port}.conf`),
        '--cluster-port',
        String(ports[count + i]),
        '--cluster-node-timeout',
        '2000',
        '--cluster-require-full-coverage',
        options.requireFullCoverage === false ? 'no' : 'yes',
        '--repl-diskless-sync-delay',
        '0',
      ];
      nodes.push({
        host: HOST,
        port,
        url: `redis://${HOST}:${port}`,
        process: spawnServer(args, 'a cluster node'),
      });
    }
    await Promise.all(nodes.map((n) => waitForPong(n.port, `cluster node ${n.port}`)));
    await run(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...nodes.map((n) => `${n.host}:${n.port}`),
        '--cluster-replicas',
        String(replicasPerMaster),
        '--cluster-yes',
      ],
      { timeout: 20_000 },
    );
    // Every node must agree before a client's first CLUSTER SLOTS gives the whole slot map.
    await waitFor(
      async () => {
        const infos = await Promise.all(nodes.map((n) => cli(n.port, 'CLUSTER', 'INFO')));
        return infos.every((info) => infoFields(info).get('cluster_state') === 'ok');
      },
      15_000,
      'cluster_state:ok on every node',
    );
    // Each node knows its own role; replicas count once their first sync is done.
    await waitFor(
      async () => {
        masterPorts.clear();
        let syncedReplicas = 0;
        for (const n of nodes) {
          const info = infoFields(await cli(n.port, 'INFO', 'replication'));
          if (info.get('role') === 'master') masterPorts.add(n.port);
          else if (info.get('master_link_status') === 'up') syncedReplicas++;
        }
        return syncedReplicas === nodes.length - masterPorts.size;
      },
      15_000,
      'the replicas to sync',
    );
  } catch (err) {
    await stop();
    throw err;
  }
  const masters = nodes.filter((n) => masterPorts.has(n.port));
  const setup: RedisClusterSetup = {
    nodes: masters,
    replicas: nodes.filter((n) => !masterPorts.has(n.port)),
    clusterNodes: masters.map((n) => `${n.host}:${n.port}`).join(','),
    stop,
  };
  return setup;
}

/**
 * Sentinel: one primary, one replica and three sentinels with quorum 2, fast failure detection
 * (down-after-milliseconds 1000) and `resolve-hostnames no`.
 */
export async function startRedisSentinel(options: { name?: string } = {}) {
  const name = options.name ?? 'gatehouse';
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-sentinel-'));
  const [primaryPort, replicaPort, ...sentinelPorts] = await freePorts(5);
  const processes: ChildProcess[] = [];
  const stop = () => stopAll(processes, dir);
  const dataArgs = (port: number) => [
    ...dataNodeArgs(port, dir),
    '--dbfilename',
    `dump-${port}.rdb`,
    // The replica's first sync starts at once instead of after the default 5 s delay.
    '--repl-diskless-sync-delay',
    '0',
  ];
  const node = (port: number, child: ChildProcess): RedisNodeProcess => {
    processes.push(child);
    return { host: HOST, port, url: `redis://${HOST}:${port}`, process: child };
  };

  let primary: RedisNodeProcess;
  let replica: RedisNodeProcess;
  const sentinels: RedisNodeProcess[] = [];
  try {
    primary = node(primaryPort as number, spawnServer(dataArgs(primaryPort as number), 'primary'));
    replica = node(
      replicaPort as number,
      spawnServer(
        [...dataArgs(replicaPort as number), '--replicaof', HOST, String(primaryPort)],
        'replica',
      ),
    );
    await Promise.all([
      waitForPong(primary.port, 'the primary'),
      waitForPong(replica.port, 'the replica'),
    ]);
    // Sentinels learn about replicas from the primary's INFO: start them once the link is up, or
    // the first sighting waits for the next INFO round (10 s).
    await waitFor(
      async () =>
        infoFields(await cli(replica.port, 'INFO', 'replication')).get('master_link_status') ===
        'up',
      10_000,
      'the replica to sync with the primary',
    );
    for (const port of sentinelPorts as number[]) {
      // Sentinel rewrites its configuration file: each gets its own, writable, in the temp dir.
      const file = join(dir, `sentinel-${port}.conf`);
      writeFileSync(
        file,
        [
          `port ${port}`,
          `bind ${HOST}`,
          `dir ${dir}`,
          'sentinel resolve-hostnames no',
          `sentinel monitor ${name} ${HOST} ${primaryPort} 2`,
          `sentinel down-after-milliseconds ${name} 1000`,
          `sentinel failover-timeout ${name} 5000`,
          `sentinel parallel-syncs ${name} 1`,
          '',
        ].join('\n'),
      );
      sentinels.push(node(port, spawnServer([file, '--sentinel'], 'a sentinel')));
    }
    await Promise.all(sentinels.map((s) => waitForPong(s.port, `sentinel ${s.port}`)));
    // Ready when every sentinel sees the replica (healthy) and the two other sentinels.
    await waitFor(
      async () => {
        const views = await Promise.all(
          sentinels.map(async (s) => {
            const master = infoFields(await cli(s.port, 'INFO', 'sentinel')).get('master0') ?? '';
            return (
              /status=ok/.test(master) && /slaves=1/.test(master) && /sentinels=3/.test(master)
            );
          }),
        );
        return views.every(Boolean);
      },
      20_000,
      'the sentinels to see the replica and each other',
    );
  } catch (err) {
    await stop();
    throw err;
  }

  const masterAddress = async (): Promise<RedisNodeAddress> => {
    for (const s of sentinels) {
      const reply = await cli(s.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name);
      const [host, port] = (reply ?? '').trim().split(/\r?\n/);
      if (host && port) return { host, port: Number(port) };
    }
    throw new Error('no sentinel answers');
  };

  const setup: RedisSentinelSetup = {
    name,
    primary,
    replica,
    sentinels,
    sentinelList: sentinels.map((s) => `${s.host}:${s.port}`).join(','),
    masterAddress,
    stopPrimary: () => killAndWait(primary.process),
    async waitForFailover(timeoutMs = 20_000) {
      let address: RedisNodeAddress | undefined;
      await waitFor(
        async () => {
          address = await masterAddress();
          if (address.port === primary.port) return false;
          // Promoted: the new master answers as a master.
          const role = infoFields(await cli(address.port, 'INFO', 'replication')).get('role');
          return role === 'master';
        },
        timeoutMs,
        'the sentinels to promote the replica',
      );
      return address as RedisNodeAddress;
    },
    stop,
  };
  return setup;
}
