/**
 * Choosing a Redis topology (REDIS_URL, REDIS_SENTINELS, REDIS_CLUSTER_NODES), and what the
 * client does when a node of a Sentinel or Cluster setup fails. What every topology must do the
 * same is redis-contract.test.ts's.
 */
import { createClient } from 'redis';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../common/src/config.js';
import { createRedis, pingRedis, RedisTimeoutError } from '../../common/src/redis.js';
import { loadSessionServiceConfig } from '../../session-service/src/config.js';
import { silentLogger } from '../helpers/logger.js';
import { waitFor } from '../helpers/ports.js';
import { startRedisCluster, startRedisSentinel } from '../helpers/redis-topologies.js';
import { TEST_SECRET } from '../helpers/session-service.js';

describe('choosing the topology (REDIS_URL, REDIS_SENTINELS, REDIS_CLUSTER_NODES)', () => {
  const problemsOf = (env: Record<string, string>) => {
    try {
      loadSessionServiceConfig({ SESSION_SECRET: TEST_SECRET, ...env });
      return [];
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
  };
  const redisOf = (env: Record<string, string>) =>
    loadSessionServiceConfig({ SESSION_SECRET: TEST_SECRET, ...env }).redis;

  it('refuses more than one topology, naming the variables that were set', () => {
    expect(
      problemsOf({ REDIS_URL: 'redis://a:6379', REDIS_CLUSTER_NODES: 'b:7000,c:7001' }),
    ).toContainEqual(
      expect.stringMatching(/set only one.*found REDIS_URL and REDIS_CLUSTER_NODES/),
    );
    expect(
      problemsOf({
        REDIS_SENTINELS: 'a:26379',
        REDIS_SENTINEL_NAME: 'main',
        REDIS_CLUSTER_NODES: 'b:7000',
      }),
    ).toContainEqual(expect.stringMatching(/found REDIS_SENTINELS and REDIS_CLUSTER_NODES/));
  });

  it('requires REDIS_SENTINEL_NAME with REDIS_SENTINELS, and host:port entries', () => {
    expect(problemsOf({ REDIS_SENTINELS: 'a:26379' })).toContainEqual(
      expect.stringMatching(/^REDIS_SENTINEL_NAME: is required with REDIS_SENTINELS/),
    );
    expect(problemsOf({ REDIS_SENTINEL_NAME: 'main' })).toContainEqual(
      'REDIS_SENTINEL_NAME: only applies with REDIS_SENTINELS',
    );
    expect(
      problemsOf({ REDIS_SENTINELS: 'a:26379,nope', REDIS_SENTINEL_NAME: 'main' }),
    ).toContainEqual('REDIS_SENTINELS: nope is not host:port');
    expect(problemsOf({ REDIS_CLUSTER_NODES: 'b:70000' })).toContainEqual(
      'REDIS_CLUSTER_NODES: b:70000 is not host:port or a redis:// URL',
    );
  });

  it('reads each topology with the credentials, and defaults to local standalone Redis', () => {
    expect(redisOf({})).toEqual({ url: 'redis://127.0.0.1:6379' });
    expect(
      redisOf({
        REDIS_SENTINELS: ' 10.0.0.1:26379, [::1]:26380 ',
        REDIS_SENTINEL_NAME: 'main',
        REDIS_PASSWORD: 's3cret',
      }),
    ).toEqual({
      sentinel: {
        name: 'main',
        nodes: [
          { host: '10.0.0.1', port: 26379 },
          { host: '::1', port: 26380 },
        ],
      },
      password: 's3cret',
    });
    expect(
      redisOf({
        REDIS_CLUSTER_NODES: 'a:7000,rediss://b.example:7001',
        REDIS_USERNAME: 'gatehouse',
        REDIS_PASSWORD: 's3cret',
        REDIS_URL: '',
      }),
    ).toEqual({
      cluster: { nodes: ['redis://a:7000', 'rediss://b.example:7001'] },
      username: 'gatehouse',
      password: 's3cret',
    });
  });
});

describe('when a node fails', () => {
  it('Sentinel: commands fail within the deadline while the master is down, then follow the failover', async () => {
    const sentinel = await startRedisSentinel();
    const redis = createRedis(
      {
        sentinel: { name: sentinel.name, nodes: sentinel.sentinels },
        commandTimeoutMs: 500,
      },
      silentLogger,
    );
    try {
      await redis.connect();
      await redis.set('failover-key', 'kept');
      // Replicated before the primary dies (WAIT), so the promoted replica has it.
      const primary = createClient({ url: sentinel.primary.url });
      await primary.connect();
      expect(await primary.wait(1, 2000)).toBe(1);
      primary.destroy();

      await sentinel.stopPrimary();
      const started = Date.now();
      await expect(redis.get('failover-key')).rejects.toBeInstanceOf(RedisTimeoutError);
      expect(Date.now() - started).toBeLessThan(1500);
      expect(await pingRedis(redis)).toBe(false);

      const promoted = await sentinel.waitForFailover();
      expect(promoted.port).toBe(sentinel.replica.port);
      await waitFor(
        async () => (await redis.get('failover-key').catch(() => null)) === 'kept',
        15_000,
        'reads from the promoted replica',
      );
      expect(await pingRedis(redis)).toBe(true);
      expect(await redis.set('failover-key', 'written', { condition: 'XX' })).toBe('OK');
    } finally {
      await redis.close();
      await sentinel.stop();
    }
  });

  it('Cluster: keys of a dead master fail fast, the others keep working, then its replica takes over', async () => {
    // Without full coverage required, the other masters keep serving while the dead one is
    // failed over (with Redis's default the whole cluster refuses commands in between).
    const cluster = await startRedisCluster({ replicas: 1, requireFullCoverage: false });
    const redis = createRedis(
      { cluster: { nodes: cluster.nodes.map((n) => n.url) }, commandTimeoutMs: 500 },
      silentLogger,
    );
    try {
      await redis.connect();
      const keys = Array.from({ length: 30 }, (_, i) => `node-failure:${i}`);
      for (const key of keys) await redis.set(key, 'v');
      const [dead] = cluster.nodes;
      const onDead = createClient({ url: dead?.url });
      await onDead.connect();
      const lost = new Set(await onDead.keys('node-failure:*'));
      expect(await onDead.wait(1, 2000)).toBe(1); // replicated before it dies
      onDead.destroy();
      expect(lost.size).toBeGreaterThan(0);
      expect(lost.size).toBeLessThan(keys.length);

      dead?.process.kill('SIGKILL');
      await waitFor(() => !redis.isReady, 5000, 'the cluster connection to notice');
      expect(await pingRedis(redis)).toBe(false);
      const started = Date.now();
      const results = await Promise.all(keys.map((key) => redis.get(key).catch(() => null)));
      expect(Date.now() - started).toBeLessThan(1500);
      keys.forEach((key, i) => {
        expect(results[i]).toBe(lost.has(key) ? null : 'v');
      });

      // The replica is promoted (cluster-node-timeout 2 s, then the election) and found.
      await waitFor(
        async () => {
          const all = await Promise.all(keys.map((key) => redis.get(key).catch(() => null)));
          return all.every((value) => value === 'v');
        },
        15_000,
        "every key readable again from the dead master's promoted replica",
      );
      expect(await pingRedis(redis)).toBe(true);
    } finally {
      await redis.close();
      await cluster.stop();
    }
  });
});
