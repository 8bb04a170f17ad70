/**
 * `npm start`: the whole system on this machine. Redis (the one REDIS_URL, REDIS_SENTINELS or
 * REDIS_CLUSTER_NODES names, or else a redis-server from PATH that this script starts with its
 * data under ./data/redis), then the session-service, the demo-app and the gateway. Ctrl-C or
 * SIGTERM stops everything it started, cleanly.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { accepting, freePortFrom } from './ports.js';

/**
 * The redis-server npm start runs: this machine only, sessions kept across restarts in an
 * append-only file (no RDB snapshots), and never evicted to make room.
 */
const LOCAL_REDIS = {
  bind: '127.0.0.1',
  appendonly: 'yes',
  save: '',
  'maxmemory-policy': 'noeviction',
  loglevel: 'warning',
};
const redisServerArgs = (settings: Record<string, string>) =>
  Object.entries({ ...LOCAL_REDIS, ...settings }).flatMap(([name, value]) => [`--${name}`, value]);

const ROOT = resolve(import.meta.dirname, '..');
const DATA = resolve(ROOT, 'data');
const env = { ...process.env };
const children: Array<{ name: string; child: ChildProcess }> = [];
let stopping = false;

function say(text: string) {
  process.stdout.write(`${text}\n`);
}

async function waitHealthy(url: string, name: string, child: ChildProcess, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited with code ${child.exitCode}`);
    const ok = await fetch(url)
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} did not become healthy at ${url} within ${timeoutMs / 1000} s`);
}

function launch(
  name: string,
  command: string,
  args: string[],
  extraEnv: Record<string, string> = {},
) {
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...env, ...extraEnv },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  children.push({ name, child });
  child.on('exit', (code, signal) => {
    if (stopping) return;
    say(`\n${name} stopped unexpectedly (${signal ?? `exit code ${code}`}); stopping everything.`);
    void stopAll(1);
  });
  return child;
}

async function stopAll(code: number) {
  if (stopping) return;
  stopping = true;
  // Services first (they drain and close Redis connections), Redis last (it writes its AOF).
  const services = children.filter((c) => c.name !== 'redis');
  const redis = children.filter((c) => c.name === 'redis');
  for (const group of [services, redis]) {
    await Promise.all(
      group.map(
        ({ child }) =>
          new Promise<void>((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done();
            const force = setTimeout(() => child.kill('SIGKILL'), 15_000);
            child.once('exit', () => {
              clearTimeout(force);
              done();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
  }
  process.exit(code);
}

process.on('SIGINT', () => void stopAll(0));
process.on('SIGTERM', () => void stopAll(0));

async function main() {
  mkdirSync(DATA, { recursive: true });
  // Exactly one of these chooses the Redis topology (the session-service refuses more than one).
  const topology = ['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'].filter(
    (name) => (env[name] ?? '').trim() !== '',
  );
  if (topology.length > 1) {
    process.stderr.write(
      `Set only one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES (found ${topology.join(' and ')}): they choose the Redis topology.\n`,
    );
    process.exit(1);
  }
  if (topology.length === 1) {
    say(`using the Redis of ${topology[0]}`);
  } else {
    const found = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
    if (found.error || found.status !== 0) {
      process.stderr.write(
        'Gatehouse needs Redis for its sessions, and found neither REDIS_URL nor a redis-server on your PATH. ' +
          'Install Redis (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) and run npm start again, ' +
          'or point Gatehouse at a Redis you already run: REDIS_URL=redis://host:6379/0 npm start.\n',
      );
      process.exit(1);
    }
    const port = await freePortFrom(Number(env.REDIS_PORT ?? 6379));
    const dir = resolve(DATA, 'redis');
    mkdirSync(dir, { recursive: true });
    const redis = launch('redis', 'redis-server', redisServerArgs({ port: String(port), dir }));
    env.REDIS_URL = `redis://127.0.0.1:${port}`;
    const deadline = Date.now() + 10_000;
    while (!(await accepting(port)) && Date.now() < deadline) {
      if (redis.exitCode !== null) throw new Error('redis-server exited at start');
      await new Promise((r) => setTimeout(r, 50));
    }
    say(`redis-server started on port ${port}, data in ./data/redis`);
  }

  const sessionPort = env.SESSION_SERVICE_PORT ?? '4000';
  const demoPort = env.DEMO_APP_PORT ?? '3000';
  const gatewayPort = env.GATEWAY_PORT ?? '8080';
  env.USERS_FILE ??= resolve(DATA, 'users.json');
  env.SESSION_SERVICE_URL ??= `http://127.0.0.1:${sessionPort}`;
  env.UPSTREAM_URL ??= `http://127.0.0.1:${demoPort}`;
  env.JWKS_URL ??= `http://127.0.0.1:${sessionPort}/auth/.well-known/jwks.json`;
  const node = process.execPath;
  const tsx = ['--import', 'tsx'];

  const sessionService = launch('session-service', node, [...tsx, 'session-service/src/main.ts']);
  const demoApp = launch('demo-app', node, [...tsx, 'demo-app/src/main.ts']);
  await Promise.all([
    waitHealthy(`http://127.0.0.1:${sessionPort}/healthz`, 'session-service', sessionService),
    waitHealthy(`http://127.0.0.1:${demoPort}/healthz`, 'demo-app', demoApp),
  ]);
  const gateway = launch('gateway', node, [...tsx, 'gateway/src/main.ts']);
  await waitHealthy(`http://127.0.0.1:${gatewayPort}/_gatehouse/healthz`, 'gateway', gateway);

  let userCount = 0;
  try {
    userCount = (JSON.parse(readFileSync(env.USERS_FILE, 'utf8')) as { users: unknown[] }).users
      .length;
  } catch {
    userCount = 0;
  }
  const host = env.GATEWAY_HOST && env.GATEWAY_HOST !== '0.0.0.0' ? env.GATEWAY_HOST : '127.0.0.1';
  say('');
  say('  Gatehouse is running.');
  say(`  Open http://${host}:${gatewayPort}/ in your browser.`);
  if (userCount === 0 || !existsSync(env.USERS_FILE)) {
    say('  No users yet. In another terminal, create one:');
    say('    npm run users -- add alice --groups admins');
  } else {
    say(`  ${userCount} user(s) in ${env.USERS_FILE}. Add more with: npm run users -- add <name>`);
  }
  say('  Press Ctrl-C to stop.');
  say('');
}

main().catch((err: Error) => {
  process.stderr.write(`npm start failed: ${err.message}\n`);
  void stopAll(1);
});
