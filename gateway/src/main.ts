import { loadOrExit } from '../../common/src/config.js';
import { createLogger } from '../../common/src/logger.js';
import { onShutdown } from '../../common/src/shutdown.js';
import { createApp } from './app.js';
import { loadGatewayConfig } from './config.js';
import { createSessionClient } from './session-client.js';

const config = loadOrExit(() => loadGatewayConfig(process.env));
if (process.argv.includes('--check-config')) {
  process.stdout.write('configuration is valid\n');
  process.exit(0);
}
const logger = createLogger({ name: 'gateway', level: config.LOG_LEVEL });
const sessionClient = createSessionClient({
  baseUrl: config.SESSION_SERVICE_URL,
  timeoutMs: config.VALIDATE_TIMEOUT_MS,
});
const app = createApp({ config, logger, sessionClient });
const server = app.listen(config.GATEWAY_PORT, config.GATEWAY_HOST, () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.GATEWAY_PORT;
  logger.info({ port }, `gateway listening on http://${config.GATEWAY_HOST}:${port}`);
});
server.keepAliveTimeout = 65_000;
onShutdown(server, logger, [() => app.close(), () => sessionClient.close()]);
