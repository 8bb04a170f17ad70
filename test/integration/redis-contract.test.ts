/**
 * One contract, three Redis topologies: everything Gatehouse does with Redis (the session
 * repository, whose contract suite, session-repository-contract.ts, also runs in memory; the
 * login throttle, the signing key, readiness, and a whole login → validate → logout) must behave
 * the same on standalone Redis, Redis Cluster and Sentinel (as oauth2-proxy runs one
 * session-store suite against every backend). No mocks: the real domain code on real
 * redis-server processes. The parts: redis-contract-domain.ts, redis-contract-service.ts; what
 * they share: redis-contract-context.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis, pingRedis, type RedisClient } from '../../common/src/redis.js';
import { loadSessionServiceConfig } from '../../session-service/src/config.js';
import { createRedisFactorRepository } from '../../session-service/src/domain/factors-redis.js';
import { createSealer } from '../../session-service/src/domain/sealing.js';
import { createRedisSessionRepository } from '../../session-service/src/domain/session-repository-redis.js';
import { silentLogger } from '../helpers/logger.js';
import { TEST_ENCRYPTION_KEY } from '../helpers/processes.js';
import { TEST_SECRET } from '../helpers/session-service.js';
import { testRecords } from '../helpers/stored-sessions.js';
import { describeFactorRepositoryContract } from './factor-repository-contract.js';
import { contractContext, setUp, TOPOLOGIES, type Topology } from './redis-contract-context.js';
import { describeDomainContract } from './redis-contract-domain.js';
import { describeServiceContract } from './redis-contract-service.js';

const testTotpSecrets = createSealer([TEST_ENCRYPTION_KEY], 'totp-secret');

import { describeSessionRepositoryContract } from './session-repository-contract.js';

describe.each(TOPOLOGIES)('on %s', (name, start) => {
  const ctx = contractContext();
  const { prefix } = ctx;
  let topology: Topology | undefined;
  let redis: RedisClient | undefined;

  beforeAll(async () => {
    topology = await start();
    const config = loadSessionServiceConfig({
      NODE_ENV: 'test',
      SESSION_SECRET: TEST_SECRET,
      REDIS_PREFIX: prefix,
      ...topology.env,
    });
    redis = createRedis({ ...config.redis, commandTimeoutMs: 2000 }, silentLogger);
    setUp(ctx, { topology, config, redis });
    await redis.connect();
  });

  afterAll(async () => {
    await redis?.close();
    await topology?.stop();
  });

  describe('readiness', () => {
    it('answers PING and reports ready', async () => {
      expect(ctx.redis.isReady).toBe(true);
      expect(await pingRedis(ctx.redis)).toBe(true);
    });

    it('reports not ready once the connection is closed', async () => {
      const other = createRedis(ctx.config.redis, silentLogger);
      await other.connect();
      expect(await pingRedis(other)).toBe(true);
      await other.close();
      expect(await pingRedis(other)).toBe(false);
    });
  });

  describeSessionRepositoryContract(
    name,
    () => (options) =>
      createRedisSessionRepository({ redis: ctx.redis, prefix, records: testRecords, ...options }),
  );

  describeFactorRepositoryContract(name, () =>
    createRedisFactorRepository({ redis: ctx.redis, prefix, secrets: testTotpSecrets }),
  );

  describeDomainContract(ctx);
  describeServiceContract(ctx);
});
