import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from '../../gateway/src/app.js';
import { loadGatewayConfig } from '../../gateway/src/config.js';
import { createSessionClient, type SessionClient } from '../../gateway/src/session-client.js';
import { silentLogger } from './logger.js';
import { TEST_INTERNAL_TOKEN } from './processes.js';

export type GatewayApp = ReturnType<typeof createApp>;

export interface InProcessGateway {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  app: GatewayApp;
  server: http.Server;
  /** Its session client (cacheStats: whether the validation cache is on). */
  sessionClient: SessionClient;
  /** Stops the gateway: its WebSocket tunnels and agents, the session client, every connection. */
  close(): void;
}

/**
 * A gateway in this process, wired as main.ts wires it (`app.createServer()`: requests,
 * WebSocket upgrades, parser errors) and listening on port 0 of 127.0.0.1; the port the system
 * gave is read back. `env` is the gateway's environment (SESSION_SERVICE_URL, GATEWAY_ROUTES,
 * UPSTREAM_URL, …); the session client presents the tests' INTERNAL_TOKEN, as main.ts presents
 * the configured one. The validation cache (and its revocation stream) is on only when `env` sets
 * VALIDATE_CACHE_TTL_MS, so that other tests see every request validated.
 */
export async function startGateway(env: Record<string, string>): Promise<InProcessGateway> {
  const config = loadGatewayConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', ...env });
  const sessionClient = createSessionClient({
    baseUrl: config.SESSION_SERVICE_URL,
    timeoutMs: config.VALIDATE_TIMEOUT_MS,
    internalToken: TEST_INTERNAL_TOKEN,
    ...(env.VALIDATE_CACHE_TTL_MS !== undefined
      ? {
          cache: {
            ttlMs: config.VALIDATE_CACHE_TTL_MS,
            maxEntries: config.VALIDATE_CACHE_MAX_ENTRIES,
            logger: silentLogger,
          },
        }
      : {}),
  });
  const app = createApp({ config, logger: silentLogger, sessionClient });
  const server = app.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    app,
    server,
    sessionClient,
    close() {
      app.close();
      sessionClient.close();
      server.closeAllConnections();
      server.close();
    },
  };
}
