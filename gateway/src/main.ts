import { unwatchFile, watchFile } from 'node:fs';
import http from 'node:http';
import { loadOrExit } from '../../common/src/config.js';
import { DEV_INTERNAL_TOKEN_FILE, loadOrCreateDevSecret } from '../../common/src/dev-secret.js';
import { createLogger } from '../../common/src/logger.js';
import { onShutdown } from '../../common/src/shutdown.js';
import { createApp } from './app.js';
import { loadGatewayConfig } from './config.js';
import { createRouteStore } from './routes-file.js';
import { createSessionClient } from './session-client.js';

/** How often the routes file is looked at (fs.watchFile polls: works on every filesystem). */
const ROUTES_POLL_MS = 500;

// Development: the INTERNAL_TOKEN the session-service keeps under ./data/ (whichever starts first
// makes it). Production requires INTERNAL_TOKEN (config.ts).
const devInternalToken =
  !process.env.INTERNAL_TOKEN && process.env.NODE_ENV !== 'production'
    ? loadOrCreateDevSecret(DEV_INTERNAL_TOKEN_FILE)
    : undefined;
const config = loadOrExit(() =>
  loadGatewayConfig(
    devInternalToken ? { ...process.env, INTERNAL_TOKEN: devInternalToken } : process.env,
  ),
);
const logger = createLogger({ name: 'gateway', level: config.LOG_LEVEL });
const routes = loadOrExit(() =>
  createRouteStore({
    ...(config.GATEWAY_ROUTES ? { file: config.GATEWAY_ROUTES } : {}),
    defaultUpstream: config.UPSTREAM_URL,
    defaultTimeoutMs: config.UPSTREAM_TIMEOUT_MS,
    logger,
  }),
);
if (process.argv.includes('--check-config')) {
  process.stdout.write('configuration is valid\n');
  process.exit(0);
}
const sessionClient = createSessionClient({
  baseUrl: config.SESSION_SERVICE_URL,
  timeoutMs: config.VALIDATE_TIMEOUT_MS,
  ...(config.INTERNAL_TOKEN ? { internalToken: config.INTERNAL_TOKEN } : {}),
  cache: {
    ttlMs: config.VALIDATE_CACHE_TTL_MS,
    maxEntries: config.VALIDATE_CACHE_MAX_ENTRIES,
    logger,
  },
});
if (devInternalToken)
  logger.warn(`INTERNAL_TOKEN not set: using the development token in ${DEV_INTERNAL_TOKEN_FILE}`);
const app = createApp({ config, logger, sessionClient, routes });
const server = app.listen(config.GATEWAY_PORT, config.GATEWAY_HOST, () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.GATEWAY_PORT;
  // The listening line is written whatever LOG_LEVEL says (a logger of its own at info): it is
  // how an operator, and a process started on port 0, learns where the service listens.
  logger
    .child({}, { level: 'info' })
    .info(
      { port, routes: routes.current().routes.map((r) => `${r.id} ${r.host ?? '*'}${r.path}`) },
      `gateway listening on http://${config.GATEWAY_HOST}:${port}`,
    );
});
server.keepAliveTimeout = 65_000;
// Metrics on a listener of their own, never the public port (metrics.ts).
const metricsServer =
  config.GATEWAY_METRICS_PORT === 'off'
    ? undefined
    : http
        .createServer((req, res) => void app.serveMetrics(req, res))
        .listen(config.GATEWAY_METRICS_PORT, config.GATEWAY_METRICS_HOST, () => {
          const address = metricsServer?.address();
          const port = typeof address === 'object' && address ? address.port : '';
          logger.info(`gateway metrics on http://${config.GATEWAY_METRICS_HOST}:${port}/metrics`);
        })
        .on('error', (err) => {
          logger.error({ err }, 'gateway metrics listener failed (GATEWAY_METRICS_PORT)');
          process.exit(1);
        });
server.once('close', () => metricsServer?.close());

// Reload the routes on change and on SIGHUP; an invalid file keeps the current table.
if (routes.file) {
  const file = routes.file;
  watchFile(file, { interval: ROUTES_POLL_MS }, (now, before) => {
    if (now.mtimeMs !== before.mtimeMs || now.size !== before.size || now.ino !== before.ino)
      routes.reload();
  });
  process.on('SIGHUP', () => routes.reload());
  server.once('close', () => unwatchFile(file));
} else {
  process.on('SIGHUP', () => logger.info('SIGHUP: no GATEWAY_ROUTES file to reload'));
}
// Upgraded sockets are no longer HTTP connections the server can drain: close the WebSocket
// tunnels (1001 to both sides) as soon as shutdown starts, or server.close() would wait for them.
for (const signal of ['SIGTERM', 'SIGINT'] as const)
  process.on(signal, () => app.websockets.close());
onShutdown(server, logger, [() => app.close(), () => sessionClient.close()]);
