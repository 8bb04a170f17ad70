/**
 * The session's vocabulary, for the code that only talks about sessions (validate, the views,
 * the assertion signer): what a session holds and how long it lives. Creating, reading, sliding,
 * listing and ending sessions is the session repository's (session-repository.ts), the one owner
 * of the record, its key format and the per-user index.
 */
import {
  createRedisSessionRepository,
  type RedisSessionRepositoryOptions,
} from './session-repository-redis.js';

export {
  absoluteExpiry,
  type Lifetimes,
  LOGIN_GRACE_MS,
  parseRecord,
  remainingMs,
  type SessionAuth,
  type SessionRepository,
  type SessionSummary,
  type ValidSession,
} from './session-repository.js';

/**
 * The Redis repository under the names it had before it was one (`validate`, `revokeAll`), for
 * the callers not yet moved to createRedisSessionRepository: the users CLI and
 * test/integration/session-lifecycle.test.ts, owned elsewhere. New code uses the repository.
 * @deprecated use createRedisSessionRepository
 */
export function createSessionStore(options: RedisSessionRepositoryOptions) {
  const repository = createRedisSessionRepository(options);
  return Object.assign(repository, {
    validate: repository.validateSession,
    revokeAll: repository.deleteUserSessions,
  });
}
