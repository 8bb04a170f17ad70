import { loadOrExit } from '../../common/src/config.js';
import { createLogger } from '../../common/src/logger.js';
import { onShutdown } from '../../common/src/shutdown.js';
import { createAssertionVerifier } from '../../common/src/verify-identity.js';
import { createApp } from './app.js';
import { loadDemoAppConfig } from './config.js';

const config = loadOrExit(() => loadDemoAppConfig(process.env));
if (process.argv.includes('--check-config')) {
  process.stdout.write('configuration is valid\n');
  process.exit(0);
}
const logger = createLogger({ name: 'demo-app', level: config.LOG_LEVEL });
const verifyIdentity = config.REQUIRE_SIGNED_IDENTITY
  ? createAssertionVerifier({
      jwksUrl: config.JWKS_URL,
      audience: config.IDENTITY_AUDIENCE,
      issuer: config.IDENTITY_ISSUER,
    })
  : undefined;
if (!verifyIdentity) logger.warn('REQUIRE_SIGNED_IDENTITY=false: trusting plain identity headers');
const app = createApp({ logger, ...(verifyIdentity ? { verifyIdentity } : {}) });
const server = app.listen(config.DEMO_APP_PORT, config.DEMO_APP_HOST, () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.DEMO_APP_PORT;
  // The listening line is written whatever LOG_LEVEL says (a logger of its own at info): it is
  // how an operator, and a process started on port 0, learns where the service listens.
  logger
    .child({}, { level: 'info' })
    .info({ port }, `demo-app listening on http://${config.DEMO_APP_HOST}:${port}`);
});
server.keepAliveTimeout = 65_000;
onShutdown(server, logger, []);
