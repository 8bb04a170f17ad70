/** The factor repository's contract in memory; on Redis in test/integration/redis-contract.test.ts. */
import { createMemoryFactorRepository } from '../../session-service/src/domain/factors-memory.js';
import { describeFactorRepositoryContract } from '../integration/factor-repository-contract.js';

describeFactorRepositoryContract('memory', () => createMemoryFactorRepository());
