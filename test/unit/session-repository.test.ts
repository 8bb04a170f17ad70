/**
 * The session repository's contract on the in-memory implementation: no Redis, milliseconds.
 * The same suite runs on standalone Redis, Redis Cluster and Sentinel in
 * test/integration/redis-contract.test.ts.
 */
import { createMemorySessionRepository } from '../../session-service/src/domain/session-repository-memory.js';
import { describeSessionRepositoryContract } from '../integration/session-repository-contract.js';

describeSessionRepositoryContract('memory', () => createMemorySessionRepository);
