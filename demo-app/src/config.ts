import { z } from 'zod';
import { logLevel, nodeEnv, parseConfig, port } from '../../common/src/config.js';

export const demoAppSchema = z.object({
  NODE_ENV: nodeEnv,
  LOG_LEVEL: logLevel,
  /** Loopback by default: only the gateway (on this machine) may reach it. */
  DEMO_APP_HOST: z.string().default('127.0.0.1'),
  DEMO_APP_PORT: port(3000),
});

export type DemoAppConfig = z.infer<typeof demoAppSchema>;

export function loadDemoAppConfig(env: NodeJS.ProcessEnv): Readonly<DemoAppConfig> {
  return parseConfig(demoAppSchema, env);
}
