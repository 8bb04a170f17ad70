import { z } from 'zod';
import { logLevel, nodeEnv, parseConfig, port, trustProxy, url } from '../../common/src/config.js';

export const gatewaySchema = z.object({
  NODE_ENV: nodeEnv,
  LOG_LEVEL: logLevel,
  GATEWAY_HOST: z.string().default('127.0.0.1'),
  GATEWAY_PORT: port(8080),
  SESSION_SERVICE_URL: url.default('http://127.0.0.1:4000'),
  /** The default route's upstream (the demo-app) when no routes file is given. */
  UPSTREAM_URL: url.default('http://127.0.0.1:3000'),
  VALIDATE_TIMEOUT_MS: z.coerce.number().int().positive().default(1500),
  UPSTREAM_TIMEOUT_MS: z.coerce.number().int().positive().default(30_000),
  TRUST_PROXY: trustProxy,
  /** The session cookie's name, removed from the Cookie header sent to upstreams. */
  COOKIE_NAME: z.string().default('gatehouse'),
});

export type GatewayConfig = z.infer<typeof gatewaySchema>;

export function loadGatewayConfig(env: NodeJS.ProcessEnv): Readonly<GatewayConfig> {
  return parseConfig(gatewaySchema, env);
}
