/** Concern: one Redis server (REDIS_URL) as a Backend, with the stall guard. */
import { createClient } from 'redis';
import type { Logger } from '../logger.js';
import type { Backend } from './client.js';
import { asError } from './errors.js';
import { nodeClientOptions, socketTimeoutFor } from './node-options.js';
import type { StandaloneOptions } from './options.js';
import { scanStepOf } from './scan.js';
import { createStallGuard } from './stall-guard.js';

export function createStandaloneBackend(
  options: StandaloneOptions,
  timeoutMs: number,
  logger: Logger,
): Backend {
  const standalone = createClient({
    url: options.url,
    ...nodeClientOptions(options),
    commandOptions: { timeout: timeoutMs },
  });
  const guard = createStallGuard(timeoutMs, socketTimeoutFor(timeoutMs) + timeoutMs, (stalled) => {
    if (stalled)
      logger.warn(
        { deadlineMs: timeoutMs },
        'redis is not answering: refusing commands until it does',
      );
    else logger.info('redis is answering again');
  });
  standalone.on('ready', () => {
    guard.reset();
    logger.info('redis ready');
  });
  return {
    commands: standalone,
    get isOpen() {
      return standalone.isOpen;
    },
    isReady: () => standalone.isReady && !guard.stalled,
    refusal: () =>
      !standalone.isReady ? 'not connected' : guard.stalled ? 'not answering (stalled)' : null,
    async connect() {
      await standalone.connect();
    },
    reset: () => {},
    close: () => standalone.close(),
    destroy: () => standalone.destroy(),
    onError(listener) {
      standalone.on('error', (err: unknown) => listener(asError(err, 'error')));
    },
    track: (work) => guard.track(work),
    stop: () => guard.stop(),
    scanSteps: async () => [scanStepOf(standalone, timeoutMs)],
  };
}
