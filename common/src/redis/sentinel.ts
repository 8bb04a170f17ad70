/** Concern: Redis behind Sentinel (REDIS_SENTINELS) as a Backend, following failovers. */
import { createSentinel } from 'redis';
import type { Logger } from '../logger.js';
import type { Backend } from './client.js';
import type { RedisCommands } from './commands.js';
import { asError } from './errors.js';
import { sentinelOptions } from './node-options.js';
import type { RedisNode, SentinelOptions } from './options.js';
import { scanStepOf } from './scan.js';

export function createSentinelBackend(
  options: SentinelOptions,
  timeoutMs: number,
  logger: Logger,
): Backend {
  const sentinel = createSentinel({
    ...sentinelOptions(options, timeoutMs),
    commandOptions: { timeout: timeoutMs },
  });
  let master: RedisNode | undefined;
  sentinel.on('topology-change', (event: { type: string; node?: RedisNode }) => {
    if (event.type !== 'MASTER_CHANGE') return;
    // The first one is the initial discovery; later ones are failovers.
    if (master) logger.warn({ from: master, to: event.node }, 'redis master changed (failover)');
    master = event.node;
  });
  return {
    commands: sentinel as unknown as RedisCommands,
    get isOpen() {
      return sentinel.isOpen;
    },
    isReady: () => sentinel.isReady,
    // Until the first connect completes, commands would wait for it: refuse them instead.
    refusal: () => (sentinel.isReady ? null : 'not connected'),
    async connect() {
      await sentinel.connect();
      logger.info({ master: sentinel.getMasterNode() }, 'redis ready (sentinel)');
    },
    // A failed connect leaves the Sentinel object "open"; destroy() makes it connectable again.
    reset: () => (sentinel.isOpen ? sentinel.destroy() : undefined),
    close: () => sentinel.close(),
    destroy: () => sentinel.destroy(),
    onError(listener) {
      sentinel.on('error', (err: unknown) => listener(asError(err, 'error')));
    },
    scanSteps: async () => [scanStepOf(sentinel, timeoutMs)],
  };
}
