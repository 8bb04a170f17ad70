import type { Logger } from '../../common/src/logger.js';
import { createMetrics, instrumentRedis, type Metrics } from '../../common/src/observability.js';
import type { RedisClient } from '../../common/src/redis.js';
import type { SessionRepository } from './domain/session-repository.js';

/**
 * The session-service's Prometheus metrics (served on `/metrics`): HTTP and Redis timings, the
 * active sessions, validate and login outcomes, and the password checks that ran.
 */
export function createServiceMetrics(deps: {
  redis: RedisClient;
  /** Counts the live sessions (SessionRepository.countLiveSessions: no scan). */
  sessions: Pick<SessionRepository, 'countLiveSessions'>;
  logger: Logger;
}) {
  const metrics = createMetrics('session-service');
  instrumentRedis(metrics, deps.redis);
  activeSessions(metrics, deps.sessions, deps.logger);
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

/** A count is reused for this long (scrapes from several Prometheus servers share it). */
const COUNT_REUSE_MS = 5000;

/**
 * gatehouse_sessions_active: the live sessions of every instance, counted by the repository's
 * live-session count (16 ZCOUNTs on Redis, O(log n) each: milliseconds at 10^6 sessions), at
 * most every 5 s and only when scraped. A scrape waits for the count; concurrent scrapes share
 * one; when Redis does not answer, the last count stays (its age says how old).
 */
function activeSessions(
  metrics: Metrics,
  sessions: Pick<SessionRepository, 'countLiveSessions'>,
  logger: Logger,
) {
  let value: number | null = null;
  let countedAt = 0;
  let counting: Promise<void> | null = null;
  const refresh = () => {
    counting ??= sessions
      .countLiveSessions()
      .then((count) => {
        value = count;
        countedAt = Date.now();
      })
      .catch((err: Error) =>
        logger.debug({ err: { message: err.message } }, 'active sessions: count failed'),
      )
      .finally(() => {
        counting = null;
      });
    return counting;
  };
  metrics.gauge(
    'gatehouse_sessions_active',
    'Live sessions in Redis (all instances; a count kept beside the records, read at most every 5 s)',
    [],
    async (g) => {
      if (Date.now() - countedAt >= COUNT_REUSE_MS) await refresh();
      if (value !== null) g.set(value);
    },
  );
  metrics.gauge(
    'gatehouse_sessions_active_age_seconds',
    'Age of the last count of gatehouse_sessions_active',
    [],
    (g) => {
      if (countedAt > 0) g.set((Date.now() - countedAt) / 1000);
    },
  );
}
