import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { freePort, GiveUp, waitFor } from './ports.js';

export const ROOT = resolve(import.meta.dirname, '../..');

/** tsx's loader by absolute path, so that a service can run in another directory. */
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/**
 * The INTERNAL_TOKEN every service started here gets (unless `env` says otherwise), and that
 * in-process gateways present: without it, both would make a development token under ROOT/data/.
 */
export const TEST_INTERNAL_TOKEN = 'test-internal-token-test-internal-token-0123';

/** The SESSION_ENCRYPTION_KEY of every service started here, and of buildSessionService. */
export const TEST_ENCRYPTION_KEY = 'test-encryption-key-test-encryption-key-0123';

export interface ServiceProcess {
  name: string;
  url: string;
  port: number;
  process: ChildProcess;
  /** Everything it printed (JSON log lines), for assertions on logs. */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Where each service starts and says it is up: `startService({ ...SERVICES.gateway, name, env })`.
 */
export const SERVICES = {
  gateway: {
    entry: 'gateway/src/main.ts',
    portVariable: 'GATEWAY_PORT',
    healthPath: '/_gatehouse/healthz',
  },
  sessionService: {
    entry: 'session-service/src/main.ts',
    portVariable: 'SESSION_SERVICE_PORT',
    healthPath: '/healthz',
  },
  demoApp: { entry: 'demo-app/src/main.ts', portVariable: 'DEMO_APP_PORT', healthPath: '/healthz' },
} as const;

/** Starts `node --import tsx <entry>` as a real process and waits until `healthPath` answers 200. */
export interface StartServiceOptions {
  name: string;
  /** The directory it runs in (./data/ is relative to it); the repository root by default. */
  cwd?: string;
  entry: string;
  portVariable: string;
  env: Record<string, string>;
  healthPath: string;
  /** The port to bind; by default the system chooses one (port 0) and the log line says it. */
  port?: number;
  /**
   * false: return at once, without waiting for health (nor for the port when the system chooses
   * it: `port` is then 0), for a process that is expected to exit.
   */
  waitHealthy?: boolean;
}

/**
 * The line main.ts writes once it listens, whatever LOG_LEVEL says:
 * `gateway listening on http://127.0.0.1:40123`.
 */
const LISTENING = / listening on https?:\/\/[^\s"]+:(\d+)/;

export function startService(options: StartServiceOptions): Promise<ServiceProcess> {
  // Port 0 unless the caller names one: the service binds whatever port the system gives and
  // says which in its listening line, so no port is chosen here that another test could take.
  return startServiceOnce(options, options.port ?? 0);
}

async function startServiceOnce(options: StartServiceOptions, askedPort: number) {
  let output = '';
  const child = spawn(process.execPath, ['--import', TSX, join(ROOT, options.entry)], {
    cwd: options.cwd ?? ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      NODE_ENV: 'test',
      LOG_LEVEL: 'info',
      INTERNAL_TOKEN: TEST_INTERNAL_TOKEN,
      SESSION_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY,
      // A gateway's metrics listener has a fixed default port: tests that scrape it choose one.
      GATEWAY_METRICS_PORT: 'off',
      ...options.env,
      [options.portVariable]: String(askedPort),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  let port = askedPort;
  if (port === 0 && options.waitHealthy !== false) {
    try {
      await waitFor(
        () => {
          const match = LISTENING.exec(output);
          if (match) port = Number(match[1]);
          else if (child.exitCode !== null || child.signalCode !== null)
            throw new GiveUp(`${options.name} exited: ${output}`);
          return match !== null;
        },
        20_000,
        `${options.name} to say which port it listens on`,
      );
    } catch (err) {
      child.kill('SIGKILL'); // never leave a half-started process behind
      throw err;
    }
  }
  const service: ServiceProcess = {
    name: options.name,
    url: `http://127.0.0.1:${port}`,
    port,
    process: child,
    output: () => output,
    stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null)
        return Promise.resolve(child.exitCode);
      return new Promise((resolveExit) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', (code) => {
          clearTimeout(timer);
          resolveExit(code);
        });
        child.kill(signal);
      });
    },
  };
  if (options.waitHealthy !== false) {
    try {
      await waitFor(
        async () => {
          if (child.exitCode !== null) throw new GiveUp(`${options.name} exited: ${output}`);
          const res = await fetch(`${service.url}${options.healthPath}`).catch(() => null);
          return res?.status === 200;
        },
        20_000,
        `${options.name} to be healthy`,
      );
    } catch (err) {
      child.kill('SIGKILL'); // never leave a half-started process behind
      throw err;
    }
  }
  return service;
}

export interface System {
  sessionService: ServiceProcess;
  gateway: ServiceProcess;
  /** The gateway's metrics listener (GATEWAY_METRICS_PORT): `<url>` answers GET /metrics. */
  gatewayMetricsUrl: string;
  demoApp: ServiceProcess;
  stop(): Promise<void>;
}

/** Env for a gateway process with its metrics listener on a free port, and where to scrape it. */
export async function gatewayMetricsListener() {
  const port = await freePort();
  return { env: { GATEWAY_METRICS_PORT: String(port) }, url: `http://127.0.0.1:${port}/metrics` };
}

/** The three services as real processes on free ports, sharing the Redis at `redisUrl`. */
export async function startSystem(options: {
  redisUrl: string;
  usersFile: string;
  env?: Record<string, string>;
  sessionEnv?: Record<string, string>;
  gatewayEnv?: Record<string, string>;
  demoEnv?: Record<string, string>;
  /**
   * The gateway's port, when it must be known before the services start (PUBLIC_URL for OpenID
   * Connect callbacks: pick it with reservedDeadPort()); by default the system chooses one.
   */
  gatewayPort?: number;
}): Promise<System> {
  const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-data-'));
  const shared = { REDIS_URL: options.redisUrl, ...(options.env ?? {}) };
  const started: ServiceProcess[] = [];
  // A service that fails to start must not leave the ones before it running.
  const track = async (p: Promise<ServiceProcess>) => {
    try {
      const service = await p;
      started.push(service);
      return service;
    } catch (err) {
      await Promise.all(started.map((s) => s.stop()));
      throw err;
    }
  };
  const sessionService = await track(
    startService({
      name: 'session-service',
      ...SERVICES.sessionService,
      env: {
        ...shared,
        USERS_FILE: options.usersFile,
        SESSION_SECRET: 'test-secret-test-secret-test-secret-0123',
        DEV_SECRET_FILE: join(dataDir, 'session-secret'),
        ...(options.sessionEnv ?? {}),
      },
    }),
  );
  // The demo-app trusts only identities signed by this session-service (its JWKS).
  const demoApp = await track(
    startService({
      name: 'demo-app',
      ...SERVICES.demoApp,
      env: {
        ...shared,
        JWKS_URL: `${sessionService.url}/auth/.well-known/jwks.json`,
        ...(options.demoEnv ?? {}),
      },
    }),
  );
  const metrics = await gatewayMetricsListener();
  const gateway = await track(
    startService({
      name: 'gateway',
      ...SERVICES.gateway,
      ...(options.gatewayPort ? { port: options.gatewayPort } : {}),
      env: {
        ...shared,
        ...metrics.env,
        SESSION_SERVICE_URL: sessionService.url,
        UPSTREAM_URL: demoApp.url,
        ...(options.gatewayEnv ?? {}),
      },
    }),
  );
  return {
    sessionService,
    gateway,
    gatewayMetricsUrl: metrics.url,
    demoApp,
    async stop() {
      await Promise.all([gateway.stop(), sessionService.stop(), demoApp.stop()]);
    },
  };
}

/** The session-service alone as a real process (for tests that build their own gateway). */
export function startSessionServiceProcess(options: {
  redisUrl: string;
  usersFile: string;
  env?: Record<string, string>;
}): Promise<ServiceProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-ss-'));
  return startService({
    name: 'session-service',
    ...SERVICES.sessionService,
    env: {
      REDIS_URL: options.redisUrl,
      USERS_FILE: options.usersFile,
      SESSION_SECRET: 'test-secret-test-secret-test-secret-0123',
      DEV_SECRET_FILE: join(dir, 'secret'),
      ...(options.env ?? {}),
    },
  });
}

/**
 * Wait until the session-service at `url` says ready (`/readyz` 200: it reaches Redis again),
 * at most `timeoutMs`. For tests that froze, killed or restarted Redis, before the next step.
 */
export async function untilReady(url: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(
    async () => (await fetch(`${url}/readyz`)).status === 200,
    timeoutMs,
    `${url}/readyz to answer 200`,
  );
}
