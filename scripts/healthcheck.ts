/**
 * The Gatehouse image's HEALTHCHECK (`gatehouse-entrypoint healthcheck`): asks the service running
 * in this container whether it is ready, exits 0 (healthy) or 1 (unhealthy) with one line saying
 * why. One image runs every service, so it finds which one from the processes it sees
 * (`node dist/<service>/src/main.js`, started by scripts/docker-entrypoint.sh), then asks that
 * service's health path on the address and port its environment sets:
 *
 *   session-service   GET /readyz              (503 until Redis answers)
 *   gateway           GET /_gatehouse/healthz
 *   demo-app          GET /healthz
 *
 * docker-compose.yml relies on it too (it sets no healthcheck command of its own).
 */
import { readdirSync, readFileSync } from 'node:fs';

const SERVICES = {
  'session-service': {
    hostVar: 'SESSION_SERVICE_HOST',
    portVar: 'SESSION_SERVICE_PORT',
    port: 4000,
    path: '/readyz',
  },
  gateway: {
    hostVar: 'GATEWAY_HOST',
    portVar: 'GATEWAY_PORT',
    port: 8080,
    path: '/_gatehouse/healthz',
  },
  'demo-app': { hostVar: 'DEMO_APP_HOST', portVar: 'DEMO_APP_PORT', port: 3000, path: '/healthz' },
} as const;
type Service = keyof typeof SERVICES;

const TIMEOUT_MS = 2_500;

/** The Gatehouse service a process of this container runs, from /proc/<pid>/cmdline. */
export function runningService(proc = '/proc'): Service | undefined {
  for (const pid of readdirSync(proc)) {
    if (!/^\d+$/.test(pid)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`${proc}/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // the process ended while we looked
    }
    for (const arg of argv) {
      const match = /(?:^|\/)dist\/([a-z-]+)\/src\/main\.js$/.exec(arg);
      if (match?.[1] && match[1] in SERVICES) return match[1] as Service;
    }
  }
  return undefined;
}

/** Where to ask: loopback when the service listens on every address, else the address it names. */
export function healthUrl(service: Service, env: NodeJS.ProcessEnv): string {
  const { hostVar, portVar, port, path } = SERVICES[service];
  const host = env[hostVar];
  const address =
    !host || host === '0.0.0.0' || host === '::'
      ? '127.0.0.1'
      : host.includes(':')
        ? `[${host}]`
        : host;
  return `http://${address}:${env[portVar] || port}${path}`;
}

async function main(): Promise<number> {
  const service = runningService();
  if (!service) {
    process.stdout.write('unhealthy: no Gatehouse service runs in this container\n');
    return 1;
  }
  const url = healthUrl(service, process.env);
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    const body = (await response.text()).slice(0, 200).trim();
    process.stdout.write(
      `${response.ok ? 'healthy' : 'unhealthy'}: ${service} ${url} ${response.status} ${body}\n`,
    );
    return response.ok ? 0 : 1;
  } catch (err) {
    const reason =
      err instanceof Error
        ? err.cause instanceof Error
          ? err.cause.message
          : err.message
        : String(err);
    process.stdout.write(`unhealthy: ${service} ${url} ${reason}\n`);
    return 1;
  }
}

if (process.argv[1]?.endsWith('healthcheck.js') || process.argv[1]?.endsWith('healthcheck.ts')) {
  main().then((code) => process.exit(code));
}
