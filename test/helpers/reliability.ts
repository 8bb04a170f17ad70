/**
 * Tools of the reliability tests (test/e2e/redis-faults, lifecycle, many-instances,
 * sentinel-failover): users sharing one password hash, JSON logins, a load loop that records every
 * answer, process memory, and the figures docs/operations.md quotes.
 */
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Algorithm, hash } from '@node-rs/argon2';
import { writeUsersFile } from '../../session-service/src/adapters/users-file.js';
import { ARGON2_PARAMS, hashPassword } from '../../session-service/src/domain/passwords.js';
import { newUser, type StoredUser } from '../../session-service/src/domain/users.js';
import { resolveNginx, runNginx } from './nginx.js';
import { freePort, waitFor } from './ports.js';

// The JSON login lives with the other login helpers; these tests import it from here too.
export { JSON_HEADERS, jsonLogin, sessionCookieOf } from './login.js';

/**
 * A users file of `usernames`, all with the same password and the same argon2id hash (hashing is
 * the slow part: one hash serves them all). `slow` users get a hash whose verification takes about
 * `slowMs` (a high time cost), for tests that act while a login is verifying the password.
 */
export async function writeSharedUsers(
  usernames: string[],
  password: string,
  options: {
    slow?: string[];
    slowTimeCost?: number;
    path?: string;
    /**
     * A cheap argon2id hash (1 MiB, t=1: about a millisecond to verify) instead of the production
     * cost, for tests about something else than password hashing that log in hundreds of users.
     */
    cheap?: boolean;
  } = {},
): Promise<{ path: string; users: StoredUser[] }> {
  const path = options.path ?? join(mkdtempSync(join(tmpdir(), 'gatehouse-users-')), 'users.json');
  const shared = options.cheap
    ? await hash(password, {
        ...ARGON2_PARAMS,
        algorithm: ARGON2_PARAMS.algorithm as Algorithm,
        memoryCost: 1024,
        timeCost: 1,
      })
    : await hashPassword(password);
  const slowHash =
    options.slow && options.slow.length > 0
      ? await hash(password, {
          ...ARGON2_PARAMS,
          algorithm: ARGON2_PARAMS.algorithm as Algorithm,
          timeCost: options.slowTimeCost ?? 200,
        })
      : '';
  const users = [
    ...usernames.map((username) =>
      newUser({ username, passwordHash: shared, email: `${username}@example.com` }),
    ),
    ...(options.slow ?? []).map((username) => newUser({ username, passwordHash: slowHash })),
  ];
  await writeUsersFile(path, users);
  return { path, users };
}

/** Does the answer clear (or set) the session cookie? */
export function touchesSessionCookie(res: Response, name = 'gatehouse'): boolean {
  return res.headers.getSetCookie().some((c) => c.startsWith(`${name}=`));
}

/** Resident memory of a process, in MiB (Linux /proc). */
export function rssMiB(pid: number | undefined): number {
  if (!pid) return 0;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

/**
 * A service's memory, from /proc and its own /metrics (prom-client's default metrics): resident
 * memory; what is kept (the old generation's and large objects' used bytes, and memory outside
 * the heap such as Buffers: where anything kept alive ends up); and the young generation's
 * capacity. V8 fills the young generation with short-lived garbage before each scavenge, so
 * resident memory may rise by up to that capacity with nothing leaking: 16-32 MiB on Node 20,
 * 128 MiB on Node 24 on a large machine (V8 sizes it from the machine's memory).
 */
export interface MemoryFigures {
  rssMiB: number;
  keptMiB: number;
  youngCapacityMiB: number;
}

export async function memoryFigures(
  pid: number | undefined,
  metricsUrl: string,
): Promise<MemoryFigures> {
  const lines = (
    await (await fetch(metricsUrl, { signal: AbortSignal.timeout(5000) })).text()
  ).split('\n');
  const value = (prefix: string, label = '') => {
    const line = lines.find((l) => l.startsWith(prefix) && l.includes(label));
    if (!line) throw new Error(`${metricsUrl} has no ${prefix}${label}`);
    return Number(line.slice(line.lastIndexOf(' ') + 1)) / 1024 / 1024;
  };
  const used = (space: string) =>
    value('gatehouse_nodejs_heap_space_size_used_bytes{', `space="${space}"`);
  return {
    rssMiB: rssMiB(pid),
    keptMiB: used('old') + used('large_object') + value('gatehouse_nodejs_external_memory_bytes{'),
    youngCapacityMiB: value('gatehouse_nodejs_heap_space_size_total_bytes{', 'space="new"'),
  };
}

/** One answer seen by the load loop. */
export interface Sample {
  /** ms since the loop started, when the request was sent and when it was answered. */
  start: number;
  end: number;
  /** HTTP status; 0 when the request failed or hit the client's own timeout. */
  status: number;
  user: string;
  /** The username the backend saw (whoami), when answered 200. */
  seen?: string;
}

export interface Load {
  /** Date.now() when the loop started (sample times count from it). */
  readonly t0: number;
  readonly samples: Sample[];
  /** Samples sent at or after `from` (ms since the epoch), and before `to`. */
  between(from: number, to?: number): Sample[];
  stop(): Promise<void>;
}

/**
 * `concurrency` workers, each sending GET `path` with a random user's cookie as fast as answers
 * come, until stop(). Every answer is recorded; a request not answered within `clientTimeoutMs`
 * is recorded with status 0 (a hang).
 */
export function startLoad(options: {
  url: string;
  users: Array<{ name: string; cookie: string }>;
  concurrency?: number;
  path?: string;
  clientTimeoutMs?: number;
}): Load {
  const t0 = Date.now();
  const samples: Sample[] = [];
  let running = true;
  const worker = async (index: number) => {
    let i = index;
    while (running) {
      const user = options.users[i++ % options.users.length];
      if (!user) return;
      const start = Date.now() - t0;
      let status = 0;
      let seen: string | undefined;
      try {
        const res = await fetch(`${options.url}${options.path ?? '/api/whoami'}`, {
          headers: { accept: 'application/json', cookie: user.cookie },
          signal: AbortSignal.timeout(options.clientTimeoutMs ?? 5000),
        });
        status = res.status;
        const text = await res.text();
        if (status === 200) {
          try {
            seen = (JSON.parse(text) as { user?: { username?: string } }).user?.username;
          } catch {
            seen = undefined;
          }
        }
      } catch {
        status = 0;
      }
      samples.push({ start, end: Date.now() - t0, status, user: user.name, seen });
      // Never a busy loop when everything fails at once (other suites share the machine).
      if (status !== 200) await new Promise((r) => setTimeout(r, 20));
    }
  };
  const workers = Array.from({ length: options.concurrency ?? 8 }, (_, i) => worker(i));
  return {
    t0,
    samples,
    between(from, to = Number.POSITIVE_INFINITY) {
      return samples.filter((s) => s.start + t0 >= from && s.start + t0 < to);
    },
    async stop() {
      running = false;
      await Promise.all(workers);
    },
  };
}

/** Poll until `check` holds; answers how long it took (ms since `since`, default now). */
export async function timeUntil(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
  since = Date.now(),
): Promise<number> {
  await waitFor(check, timeoutMs, what);
  return Date.now() - since;
}

/**
 * A measured figure, printed so the run's output carries it (docs/operations.md quotes them):
 * `[figure] <name>: <value> <unit>`.
 */
export function figure(name: string, value: number, unit = 'ms'): void {
  process.stdout.write(`[figure] ${name}: ${Math.round(value * 10) / 10} ${unit}\n`);
}

/** The status codes in `samples`, counted. */
export function statusCounts(samples: Sample[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const s of samples) counts[s.status] = (counts[s.status] ?? 0) + 1;
  return counts;
}

export interface PlainNginx {
  url: string;
  port: number;
  output(): string;
  stop(): Promise<void>;
}

/**
 * nginx on a free 127.0.0.1 port, plain HTTP, with the `http { }` content `httpBlock` makes from
 * the port and a temp directory (upstreams, a server listening on that port).
 */
export async function startPlainNginx(
  httpBlock: (port: number, dir: string) => string,
): Promise<PlainNginx> {
  const bin = resolveNginx();
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-nginx-'));
  chmodSync(dir, 0o755);
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path ${join(dir, 'client_body_temp')};
    proxy_temp_path ${join(dir, 'proxy_temp')};
    fastcgi_temp_path ${join(dir, 'fastcgi_temp')};
    uwsgi_temp_path ${join(dir, 'uwsgi_temp')};
    scgi_temp_path ${join(dir, 'scgi_temp')};
${httpBlock(port, dir)}
}
`,
  );
  const { child, output, stop } = runNginx(bin, dir, conf);
  const listening = () =>
    new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`nginx exited: ${output()}`);
        return listening();
      },
      10_000,
      'nginx to listen',
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `http://127.0.0.1:${port}`, port, output, stop };
}

/** The value of one sample of a Prometheus text exposition (0 when absent). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}) {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const set = match[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`)))
      total += Number(match[3]);
  }
  return total;
}
