import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'redis';
import { freePort, waitFor } from './ports.js';

export interface RedisServer {
  port: number;
  url: string;
  dir: string;
  process: ChildProcess;
  /** A plain client for assertions (what is in Redis afterwards). */
  client: ReturnType<typeof createClient>;
  stop(): Promise<void>;
  /** Kill and start again on the same port (same data dir: AOF data survives when enabled). */
  restart(): Promise<void>;
  pause(): void;
  resume(): void;
}

/** Starts a real redis-server on a free port with its own temp dir. */
type StartRedisOptions = { appendonly?: boolean; port?: number; extraArgs?: string[] };

export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  // A port from freePort() can be taken by a parallel test before redis-server binds it: then
  // our redis-server exits, and we must not mistake the other one for ours. Choose again.
  for (let attempt = 1; ; attempt++) {
    const server = await startRedisOnce(options);
    // The Redis that answers on the port must be the one we started.
    const info = await server.client.info('server');
    const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
    if (pid === server.process.pid) return server;
    await server.client.close().catch(() => {});
    await killAndWait(server.process);
    if (options.port !== undefined || attempt >= 4) {
      throw new Error(`redis-server could not bind port ${server.port}`);
    }
  }
}

async function startRedisOnce(options: StartRedisOptions): Promise<RedisServer> {
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-redis-'));
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    options.appendonly ? 'yes' : 'no',
    '--maxmemory-policy',
    'noeviction',
    ...(options.extraArgs ?? []),
  ];
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    process: spawnRedis(args),
    client: createClient({ url: `redis://127.0.0.1:${port}`, socket: { reconnectStrategy: 100 } }),
    async stop() {
      await server.client.close().catch(() => {});
      await killAndWait(server.process);
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await killAndWait(server.process);
      server.process = spawnRedis(args);
      await waitUntilUp(port);
    },
    pause() {
      server.process.kill('SIGSTOP');
    },
    resume() {
      server.process.kill('SIGCONT');
    },
  };
  server.client.on('error', () => {});
  await waitUntilUp(port);
  await server.client.connect();
  return server;
}

function spawnRedis(args: string[]): ChildProcess {
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  child.on('error', (err) => {
    throw new Error(
      `could not start redis-server (is it installed? apt-get install redis-server): ${err.message}`,
    );
  });
  return child;
}

async function waitUntilUp(port: number): Promise<void> {
  const probe = createClient({
    url: `redis://127.0.0.1:${port}`,
    socket: { reconnectStrategy: false, connectTimeout: 500 },
  });
  probe.on('error', () => {});
  await waitFor(
    async () => {
      try {
        await probe.connect();
        return (await probe.ping()) === 'PONG';
      } catch {
        return false;
      }
    },
    10_000,
    `redis-server on port ${port}`,
  );
  await probe.close();
}

export function killAndWait(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGKILL',
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGCONT');
    child.kill(signal);
  });
}
