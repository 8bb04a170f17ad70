import { z } from 'zod';
import {
  flag,
  logLevel,
  nodeEnv,
  parseConfig,
  port,
  trustProxy,
  url,
} from '../../common/src/config.js';

export const gatewaySchema = z.object({
  NODE_ENV: nodeEnv,
  LOG_LEVEL: logLevel,
  GATEWAY_HOST: z.string().default('127.0.0.1'),
  GATEWAY_PORT: port(8080),
  /** The metrics listener (GET /metrics), never the public port; `off` serves no metrics. */
  GATEWAY_METRICS_HOST: z.string().default('127.0.0.1'),
  GATEWAY_METRICS_PORT: z.union([z.literal('off'), port(9180)]).default(9180),
  SESSION_SERVICE_URL: url.default('http://127.0.0.1:4000'),
  /** The default route's upstream (the demo-app) when no routes file is given. */
  UPSTREAM_URL: url.default('http://127.0.0.1:3000'),
  /** A YAML or JSON routes file (docs/protecting-your-app.md); unset: one route `/` → UPSTREAM_URL. */
  GATEWAY_ROUTES: z.string().min(1).optional(),
  VALIDATE_TIMEOUT_MS: z.coerce.number().int().positive().default(1500),
  /**
   * How long a positive validate answer is reused for the same session cookie (and route); 0
   * validates every request. On only while the session-service's revocation stream is connected.
   */
  VALIDATE_CACHE_TTL_MS: z.coerce.number().int().min(0).max(60_000).default(2000),
  /** Most answers kept (oldest dropped first). */
  VALIDATE_CACHE_MAX_ENTRIES: z.coerce.number().int().positive().default(10_000),
  /**
   * Bearer token for the session-service's /internal/validate (signed identities) and
   * /internal/revocations: its INTERNAL_TOKEN. Required in production; in development main.ts
   * reads the one the session-service keeps under ./data/ (or makes it).
   */
  INTERNAL_TOKEN: z.string().min(32, 'must be at least 32 characters').optional(),
  UPSTREAM_TIMEOUT_MS: z.coerce.number().int().positive().default(30_000),
  /** How long a request body to /auth/* may take to arrive (it is read whole first); past it 408. */
  AUTH_BODY_TIMEOUT_MS: z.coerce.number().int().positive().default(10_000),
  /** How often an open WebSocket's session is checked again. */
  WS_REVALIDATE_MS: z.coerce.number().int().min(100).default(2000),
  /** Ask the session-service for a signed identity (`aud` = route id) and pass it upstream. */
  JWT_ENABLED: flag(true),
  TRUST_PROXY: trustProxy,
  /**
   * The address users reach Gatehouse at: the session-service's PUBLIC_URL. When it is https, an
   * access token that came over plain HTTP (no TLS here, no trusted X-Forwarded-Proto https) from
   * another machine is refused (403 HTTPS_REQUIRED) before the session-service is asked.
   */
  PUBLIC_URL: url.optional(),
  /** The session cookie's name, removed from the Cookie header sent to upstreams. */
  COOKIE_NAME: z.string().default('gatehouse'),
});

export type GatewayConfig = z.infer<typeof gatewaySchema>;

/** Checks across variables, on the raw environment (reported together with field errors). */
function crossChecks(env: NodeJS.ProcessEnv): string[] {
  return env.NODE_ENV === 'production' && !env.INTERNAL_TOKEN
    ? [
        "INTERNAL_TOKEN: is required when NODE_ENV=production (the session-service's INTERNAL_TOKEN)",
      ]
    : [];
}

export function loadGatewayConfig(env: NodeJS.ProcessEnv): Readonly<GatewayConfig> {
  return parseConfig(gatewaySchema, env, crossChecks);
}
