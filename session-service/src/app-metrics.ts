import type { Logger } from '../../common/src/logger.js';
import {
  activeSessionsGauge,
  createMetrics,
  instrumentRedis,
} from '../../common/src/observability.js';
import type { RedisClient } from '../../common/src/redis.js';

/**
 * The session-service's Prometheus metrics (served on `/metrics`): HTTP and Redis timings, the
 * active sessions, validate and login outcomes, and the password checks that ran.
 */
export function createServiceMetrics(deps: {
  redis: RedisClient;
  /** The SCAN pattern of the session keys (the Redis repository's). */
  sessionKeyPattern: string;
  logger: Logger;
}) {
  const metrics = createMetrics('session-service');
  instrumentRedis(metrics, deps.redis);
  activeSessionsGauge(metrics, deps.redis, deps.sessionKeyPattern, {
    logger: deps.logger,
  });
  return {
    metrics,
    ...metrics.counters({
      validateOutcomes: ['gatehouse_validate_total', 'Validate requests by outcome', ['outcome']],
      loginOutcomes: ['gatehouse_login_attempts_total', 'Login attempts by outcome', ['outcome']],
      passwordChecks: [
        'gatehouse_password_checks_total',
        'Password checks run (argon2id, a dummy hash for unknown users included): what throttling and length limits spare',
        [],
      ],
    }),
  };
}
