import { pino } from 'pino';

export type Logger = Pick<pino.Logger, 'info' | 'warn' | 'error' | 'debug' | 'child'>;

/** Paths that must never reach a log line: cookies, credentials, passwords. */
export const REDACT_PATHS = [
  'req.headers.cookie',
  'req.headers.authorization',
  'req.headers["proxy-authorization"]',
  'req.headers["x-admin-token"]',
  'req.headers["x-gatehouse-authorization"]',
  'res.headers["set-cookie"]',
  'headers.cookie',
  'headers.authorization',
  'headers["x-gatehouse-authorization"]',
  'password',
  '*.password',
  'body.password',
  'secret',
  '*.secret',
];

/**
 * JSON lines on stdout. Written synchronously by default: pino's asynchronous writer may lose the
 * last lines when the process dies and reorders lines written just before an exit (measured:
 * "stopped" before "redis connection closed" in 1 run of 6), and under a flood of lines (every
 * request failing during an outage) it buffers without bound while a synchronous writer slows
 * the process down instead. Our volume is one line per failed request, so the cost is small.
 */
export function createLogger(options: {
  name: string;
  level: string;
  destination?: pino.DestinationStream;
}) {
  return pino(
    {
      name: options.name,
      level: options.level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { service: options.name },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
