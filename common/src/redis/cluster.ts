/** Concern: Redis Cluster (REDIS_CLUSTER_NODES) as a Backend, following failovers by public API. */
import { createCluster } from 'redis';
import type { Logger } from '../logger.js';
import type { Backend } from './client.js';
import type { RedisCommands } from './commands.js';
import { closeWithin, withDeadline } from './deadline.js';
import { asError } from './errors.js';
import { clusterOptions } from './node-options.js';
import type { ClusterOptions } from './options.js';
import { scanStepOf } from './scan.js';

export function createClusterBackend(
  options: ClusterOptions,
  timeoutMs: number,
  logger: Logger,
): Backend {
  const make = () => createCluster(clusterOptions(options, timeoutMs));
  type Cluster = ReturnType<typeof make>;
  // Discovery tries the root nodes one after the other, then connects to every master.
  const connectDeadlineMs = (options.connectTimeoutMs ?? 2000) * (options.cluster.nodes.length + 1);
  const errorListeners: Array<(err: Error) => void> = [];
  let stopped = false;
  let lastCheck = 0;
  let checking = false;
  /** A cluster object being connected to replace the current one. */
  let candidate: Cluster | undefined;

  const wire = (connection: Cluster): Cluster => {
    for (const event of ['error', 'node-error'] as const) {
      connection.on(event, (err: unknown) => {
        // Only the cluster in use speaks: a replaced one closing, or a candidate, stays quiet.
        if (connection !== cluster) return;
        for (const listener of errorListeners) listener(asError(err, event));
        if (event === 'node-error') followFailover();
      });
    }
    return connection;
  };
  let cluster = wire(make());

  const addresses = (nodes: ReadonlyArray<{ host: string; port: number }>) =>
    new Set(nodes.map((node) => `${node.host}:${node.port}`));

  /**
   * node-redis 5 re-reads the slot map only on a MOVED or ASK reply (node-redis #2806; version 6
   * adds `topologyRefreshOnReconnectionAttempt`). When a master dies and the cluster promotes its
   * replica, nobody is left to answer MOVED for its slots: their commands would fail until the
   * dead node came back. So while a node's connection fails, ask a live master for the slot map
   * (CLUSTER SLOTS, at most once a second); when its masters are not ours, connect a new cluster
   * object (discovered afresh from the root nodes) and send the commands there.
   */
  function followFailover(): void {
    const now = Date.now();
    if (stopped || checking || !cluster.isOpen || now - lastCheck < 1000) return;
    lastCheck = now;
    checking = true;
    replaceIfMastersChanged()
      .catch((err: Error) =>
        logger.debug?.({ err: { message: err.message } }, 'redis cluster: slot map check failed'),
      )
      .finally(() => {
        checking = false;
      });
  }

  async function replaceIfMastersChanged(): Promise<void> {
    const current = cluster;
    const via = current.masters.find((master) => master.client?.isReady);
    if (!via) return; // nobody to ask; node-redis reconnects each node by itself
    const node = await withDeadline(current.nodeClient(via), timeoutMs, 'connect');
    const shards = await withDeadline(node.clusterSlots(), timeoutMs, 'CLUSTER SLOTS');
    const known = addresses(current.masters);
    const masters = addresses(shards.map((shard) => shard.master));
    if (masters.size === known.size && [...masters].every((address) => known.has(address))) return;
    const next = make();
    candidate = wire(next);
    try {
      await withDeadline(next.connect(), connectDeadlineMs, 'cluster connect');
    } catch (err) {
      next.destroy();
      throw err;
    } finally {
      candidate = undefined;
    }
    if (stopped || cluster !== current) return next.destroy();
    cluster = next;
    logger.warn(
      { from: [...known], to: [...addresses(next.masters)] },
      'redis cluster masters changed (failover): now connected to the new ones',
    );
    await closeWithin(current, timeoutMs + 1000);
  }

  const stop = () => {
    stopped = true;
    candidate?.destroy();
  };
  return {
    get commands() {
      return cluster as unknown as RedisCommands;
    },
    get isOpen() {
      return cluster.isOpen;
    },
    isReady: () =>
      cluster.isOpen &&
      cluster.masters.length > 0 &&
      cluster.masters.every((master) => master.client?.isReady === true),
    // Before the slot map is known node-redis fails with a TypeError; say what it means.
    refusal: () => (cluster.masters.length > 0 ? null : 'not connected'),
    async connect() {
      await cluster.connect();
      logger.info({ masters: cluster.masters.length }, 'redis cluster ready');
    },
    reset: () => {},
    close() {
      stop();
      return cluster.close();
    },
    destroy() {
      stop();
      cluster.destroy();
    },
    onError(listener) {
      errorListeners.push(listener);
    },
    stop,
    // Ready means every master answers: a third of the sessions live on each of three masters.
    async probe() {
      const replies = await Promise.all(
        cluster.masters.map(async (master) => {
          const node = await withDeadline(cluster.nodeClient(master), timeoutMs, 'connect');
          return withDeadline(node.ping(), timeoutMs, 'PING');
        }),
      );
      return replies.length > 0 && replies.every((reply) => reply === 'PONG');
    },
    // Keys live on every master: scan each.
    scanSteps: () =>
      Promise.all(
        cluster.masters.map(async (master) =>
          scanStepOf(
            await withDeadline(cluster.nodeClient(master), timeoutMs, 'connect'),
            timeoutMs,
          ),
        ),
      ),
  };
}
