/**
 * Everything the benchmark measures, started on this machine as real processes: Redis, the three
 * services, a demo-app that trusts plain headers (scenario a), the origin-article baseline (e), an
 * Express hello-world (f), nginx with the auth_request template (d) and Caddy with
 * examples/caddy/Caddyfile's forward_auth (d2). Shared by bench/run.ts and
 * bench/profile.ts.
 */
import { CookieJar } from '../test/helpers/cookie-jar.js';
import { browserLogin } from '../test/helpers/login.js';
import { type NginxServer, startNginx } from '../test/helpers/nginx.js';
import {
  type ServiceProcess,
  startService,
  TEST_INTERNAL_TOKEN,
} from '../test/helpers/processes.js';
import { type RunningProxy, startCaddy } from '../test/helpers/proxies.js';
import { type RedisServer, startRedis } from '../test/helpers/redis.js';
import { writeTestUsers } from '../test/helpers/users.js';

export const BENCH_USER = 'bench';
export const BENCH_PASSWORD = 'bench password 123';
const SECRET = 'bench-secret-bench-secret-bench-secret-00';

export interface BenchSystem {
  redis: RedisServer;
  sessionService: ServiceProcess;
  /** Verifies the signed identity (JWT), behind the gateway and nginx. */
  demoApp: ServiceProcess;
  /** Trusts plain headers: scenario (a), the floor. */
  demoPlain: ServiceProcess;
  gateway: ServiceProcess;
  /** Extra gateways (`gatewayVariants`), by name. */
  variants: Map<string, ServiceProcess>;
  baseline: ServiceProcess;
  hello: ServiceProcess;
  nginx: NginxServer | null;
  /** Caddy with examples/caddy/Caddyfile (forward_auth) in front of the demo-app (scenario d2). */
  caddy: RunningProxy | null;
  /** `gatehouse=<value>` of a session made by a browser login through the gateway. */
  sessionCookie: string;
  /** The baseline's own session cookie. */
  baselineCookie: string;
  /** The session-service's users file (the bench user alone). */
  usersFile: string;
  /** Every Node process, for RSS sampling. */
  services: ServiceProcess[];
  stop(): Promise<void>;
}

export interface BenchSystemOptions {
  /** Extra environment of the three Gatehouse services (e.g. NODE_OPTIONS for --cpu-prof). */
  gatehouseEnv?: Record<string, string>;
  /** Extra environment of the gateway. */
  gatewayEnv?: Record<string, string>;
  /** More gateways to compare in the same run: name -> extra environment. */
  gatewayVariants?: Record<string, Record<string, string>>;
  /** Start nginx (scenario d); default true. */
  nginx?: boolean;
  /** Start Caddy's forward_auth (scenario d2); default: as nginx. */
  caddy?: boolean;
}

export async function startBenchSystem(options: BenchSystemOptions = {}): Promise<BenchSystem> {
  const stops: Array<() => Promise<unknown>> = [];
  const stop = async () => {
    for (const fn of stops.reverse()) await fn().catch(() => {});
  };
  try {
    const redis = await startRedis();
    stops.push(() => redis.stop());
    const users = await writeTestUsers([
      { username: BENCH_USER, password: BENCH_PASSWORD, groups: ['bench'] },
    ]);
    // Production mode, warnings only: what a deployment runs (no per-request info lines).
    const quiet = { LOG_LEVEL: 'warn', NODE_ENV: 'production' };
    const gatehouse = { ...quiet, ...(options.gatehouseEnv ?? {}) };
    const services: ServiceProcess[] = [];
    const start = async (...args: Parameters<typeof startService>) => {
      const service = await startService(...args);
      services.push(service);
      stops.push(() => service.stop());
      return service;
    };

    const sessionService = await start({
      name: 'session-service',
      entry: 'session-service/src/main.ts',
      portVariable: 'SESSION_SERVICE_PORT',
      healthPath: '/healthz',
      env: {
        ...gatehouse,
        REDIS_URL: redis.url,
        USERS_FILE: users.path,
        SESSION_SECRET: SECRET,
        // Login throughput is measured on purpose: lift the per-address burst limit.
        LOGIN_THROTTLE_ADDRESS_ATTEMPTS: '1000000',
      },
    });
    const demoApp = await start({
      name: 'demo-app',
      entry: 'demo-app/src/main.ts',
      portVariable: 'DEMO_APP_PORT',
      healthPath: '/healthz',
      env: { ...gatehouse, JWKS_URL: `${sessionService.url}/auth/.well-known/jwks.json` },
    });
    const demoPlain = await start({
      name: 'demo-app (plain headers)',
      entry: 'demo-app/src/main.ts',
      portVariable: 'DEMO_APP_PORT',
      healthPath: '/healthz',
      env: { ...quiet, REQUIRE_SIGNED_IDENTITY: 'false' },
    });
    const gatewayEnv = {
      ...gatehouse,
      SESSION_SERVICE_URL: sessionService.url,
      UPSTREAM_URL: demoApp.url,
      ...(options.gatewayEnv ?? {}),
    };
    const gateway = await start({
      name: 'gateway',
      entry: 'gateway/src/main.ts',
      portVariable: 'GATEWAY_PORT',
      healthPath: '/_gatehouse/healthz',
      env: gatewayEnv,
    });
    const variants = new Map<string, ServiceProcess>();
    for (const [name, env] of Object.entries(options.gatewayVariants ?? {})) {
      variants.set(
        name,
        await start({
          name: `gateway (${name})`,
          entry: 'gateway/src/main.ts',
          portVariable: 'GATEWAY_PORT',
          healthPath: '/_gatehouse/healthz',
          env: { ...gatewayEnv, ...env },
        }),
      );
    }
    const baseline = await start({
      name: 'baseline (origin article)',
      entry: 'bench/baseline-app.ts',
      portVariable: 'PORT',
      healthPath: '/healthz',
      env: { ...quiet, REDIS_URL: redis.url },
    });
    const hello = await start({
      name: 'express hello-world',
      entry: 'bench/hello-app.ts',
      portVariable: 'PORT',
      healthPath: '/healthz',
      env: quiet,
    });
    let nginx: NginxServer | null = null;
    if (options.nginx !== false) {
      const server = await startNginx({
        template: 'auth-request',
        vars: {
          PROTECTED_UPSTREAM: `127.0.0.1:${demoApp.port}`,
          SESSION_SERVICE_UPSTREAM: `127.0.0.1:${sessionService.port}`,
          IDENTITY_AUDIENCE: 'default',
        },
      });
      nginx = server;
      stops.push(() => server.stop());
    }

    let caddy: RunningProxy | null = null;
    if (options.caddy ?? options.nginx !== false) {
      const server = await startCaddy({
        sessionService: `127.0.0.1:${sessionService.port}`,
        protectedUpstream: `127.0.0.1:${demoApp.port}`,
        audience: 'default',
        internalToken: TEST_INTERNAL_TOKEN,
      });
      caddy = server;
      stops.push(() => server.stop());
    }

    // Sessions: one made by a browser login through the gateway, one on the baseline.
    const jar = new CookieJar();
    const login = await browserLogin(jar, gateway.url, BENCH_USER, BENCH_PASSWORD);
    if (login.status !== 303) throw new Error(`bench login failed: ${login.status}`);
    const baseLogin = await fetch(`${baseline.url}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: BENCH_USER }),
    });
    const baselineCookie = baseLogin.headers.getSetCookie()[0]?.split(';')[0] ?? '';
    if (!baselineCookie) throw new Error('baseline login set no cookie');

    return {
      redis,
      sessionService,
      demoApp,
      demoPlain,
      gateway,
      variants,
      baseline,
      hello,
      nginx,
      caddy,
      sessionCookie: `gatehouse=${jar.get('gatehouse')}`,
      baselineCookie,
      usersFile: users.path,
      services,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
