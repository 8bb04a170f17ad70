import { z } from 'zod';
import { logLevel, nodeEnv, parseConfig, port, url } from '../../common/src/config.js';

export const demoAppSchema = z.object({
  NODE_ENV: nodeEnv,
  LOG_LEVEL: logLevel,
  /** Loopback by default: only the gateway (on this machine) may reach it. */
  DEMO_APP_HOST: z.string().default('127.0.0.1'),
  DEMO_APP_PORT: port(3000),
  /** Trust only identities signed by the session-service (X-Auth-Request-Jwt). */
  REQUIRE_SIGNED_IDENTITY: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true'),
  JWKS_URL: url.default('http://127.0.0.1:4000/auth/.well-known/jwks.json'),
  /** The gateway route id this app is served under (the assertion's `aud`). */
  IDENTITY_AUDIENCE: z.string().default('default'),
  /** Expected `iss`: the session-service's PUBLIC_URL, or 'gatehouse' when it has none. */
  IDENTITY_ISSUER: z.string().default('gatehouse'),
});

export type DemoAppConfig = z.infer<typeof demoAppSchema>;

export function loadDemoAppConfig(env: NodeJS.ProcessEnv): Readonly<DemoAppConfig> {
  return parseConfig(demoAppSchema, env);
}
