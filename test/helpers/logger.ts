import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createLogger } from '../../common/src/logger.js';

export const silentLogger = pino({ level: 'silent' });

/**
 * A logger like the services' own (createLogger: same redaction), whose JSON lines are kept for
 * assertions: `text()` is everything written, `records()` each line parsed.
 */
export function captureLogger(level = 'debug') {
  const lines: string[] = [];
  const logger = createLogger({
    name: 'test',
    level,
    destination: new Writable({
      write(chunk, _enc, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    }),
  });
  return {
    logger,
    lines: () => [...lines],
    text: () => lines.join('\n'),
    records: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}
