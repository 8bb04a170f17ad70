/**
 * Dimension 4: open WebSockets through the gateway, 10 → 5,000, each on a session of its own.
 * One session-service and gateway per size (their own Redis), an echo upstream in this process.
 * Per round and size: n sessions made (bulk.ts), n sockets opened through the gateway; in steady
 * state the validate calls per second the session-service answers (its gatehouse_validate_total
 * over a few re-check intervals); then the close bound: a sample of the sessions logged out one
 * after the other, each timed from its logout to its socket's close at the client. All sockets are
 * then closed before the next size, so only one size's sockets are open at a time.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import type { ServiceProcess } from '../../test/helpers/processes.js';
import { median } from '../load.js';
import { type BulkSessions, bulkSessions, writeUsers } from './bulk.js';
import { logout } from './logout.js';
import type { ScaleOptions } from './options.js';
import { type DimensionResult, round, seriesFromRows } from './result.js';
import { orderOf, say } from './rounds.js';
import { counterSum, createStack, openFileLimit, percentile, sleep } from './stack.js';

const REVALIDATE_MS = 2000;
const CLOSE_SAMPLE = 20;

async function echoUpstream() {
  const server = http.createServer((_req, res) => res.writeHead(426).end());
  const wss = new WebSocketServer({ server });
  wss.on('connection', (socket) => socket.on('message', (m) => socket.send(m)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

interface Socket {
  ws: WebSocket;
  closed: Promise<number>;
}

function open(gateway: ServiceProcess, cookie: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${gateway.url.replace('http', 'ws')}/`, {
      headers: { cookie, origin: gateway.url },
    });
    const closed = new Promise<number>((r) => ws.once('close', () => r(performance.now())));
    ws.once('open', () => resolve({ ws, closed }));
    ws.once('error', reject);
  });
}

/** Open, retried a few times when the gateway says 503 (its validate timed out on a busy machine). */
async function openRetried(gateway: ServiceProcess, cookie: string): Promise<Socket> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await open(gateway, cookie);
    } catch (err) {
      if (attempt >= 5 || !String(err).includes('503')) throw err;
      await sleep(200 * attempt);
    }
  }
}

async function openAll(gateway: ServiceProcess, cookies: string[]): Promise<Socket[]> {
  const sockets: Socket[] = [];
  for (let i = 0; i < cookies.length; i += 50)
    sockets.push(
      ...(await Promise.all(cookies.slice(i, i + 50).map((c) => openRetried(gateway, c)))),
    );
  return sockets;
}

const validateCount = async (service: ServiceProcess) =>
  counterSum(await (await fetch(`${service.url}/metrics`)).text(), 'gatehouse_validate_total');

interface SizeStack {
  size: number;
  service: ServiceProcess;
  gateway: ServiceProcess;
  bulk: BulkSessions;
}

async function measureOnce(s: SizeStack, steadySeconds: number) {
  const cookies = await s.bulk.create(s.size);
  const sockets = await openAll(s.gateway, cookies);
  await sleep(REVALIDATE_MS + 500);
  const c0 = await validateCount(s.service);
  const t0 = performance.now();
  await sleep(steadySeconds * 1000);
  const perSecond = ((await validateCount(s.service)) - c0) / ((performance.now() - t0) / 1000);
  const sample = Math.min(CLOSE_SAMPLE, s.size);
  const step = Math.max(1, Math.floor(s.size / sample));
  const closes: number[] = [];
  await Promise.all(
    Array.from({ length: sample }, async (_, i) => {
      await sleep(i * 97);
      const k = i * step;
      const start = performance.now();
      await logout(s.service.url, cookies[k] as string);
      const closedAt = await Promise.race([
        (sockets[k] as Socket).closed,
        sleep(30_000).then(() => Number.NaN),
      ]);
      closes.push(closedAt - start);
    }),
  );
  for (const socket of sockets) socket.ws.terminate();
  await Promise.all(sockets.map((x) => x.closed));
  return { perSecond, closes };
}

export async function websocketsDimension(opts: ScaleOptions): Promise<DimensionResult> {
  const t0 = Date.now();
  const sizes = opts.sizes.ws;
  const stack = createStack();
  try {
    const users = await writeUsers(100);
    const upstream = await echoUpstream();
    stack.onStop(() => upstream.close());
    const stacks: SizeStack[] = [];
    for (const size of sizes) {
      const redis = await stack.redis();
      const service = await stack.sessionService(`session-service (${size} sockets)`, {
        REDIS_URL: redis.url,
        USERS_FILE: users.path,
      });
      const gateway = await stack.gateway(`gateway (${size} sockets)`, {
        SESSION_SERVICE_URL: service.url,
        UPSTREAM_URL: upstream.url,
        WS_REVALIDATE_MS: String(REVALIDATE_MS),
      });
      const bulk = await bulkSessions({
        redisUrl: redis.url,
        serviceUrl: service.url,
        users: users.users,
      });
      stack.onStop(() => bulk.close());
      stacks.push({ size, service, gateway, bulk });
    }
    const gatewayFiles = openFileLimit(stacks[0]?.gateway.process.pid);
    const perSecond = new Map<number, number[]>(sizes.map((n) => [n, []]));
    const closes = new Map<number, number[]>(sizes.map((n) => [n, []]));
    const steady = opts.smoke ? 2 : 3 * (REVALIDATE_MS / 1000);
    for (let r = 1; r <= opts.rounds; r++) {
      say(`  round ${r}/${opts.rounds}`);
      for (const size of orderOf(sizes, r)) {
        const s = stacks.find((x) => x.size === size) as SizeStack;
        const m = await measureOnce(s, steady);
        perSecond.get(size)?.push(m.perSecond);
        closes.get(size)?.push(...m.closes);
        say(
          `    ${size} sockets: ${m.perSecond.toFixed(0)} validate/s, close p50 ${percentile(m.closes, 0.5).toFixed(0)} ms`,
        );
      }
    }
    const rows = sizes.map((size) => {
      const c = closes.get(size) ?? [];
      const finite = c.filter(Number.isFinite);
      const rate = median(perSecond.get(size) ?? []);
      return {
        size,
        validatePerSecond: round(rate, 0),
        perSocket: round(rate / size, 3),
        perInterval: round((rate * REVALIDATE_MS) / 1000 / size, 2),
        closeP50Ms: round(percentile(finite, 0.5), 0),
        closeMaxMs: finite.length === c.length ? round(Math.max(...finite), 0) : null,
        closed: `${finite.length}/${c.length}`,
      };
    });
    return {
      dimension: 'ws',
      title: 'Open WebSockets (one session each)',
      unit: 'WebSocket sessions',
      bound: `close after logout from the revocation feed, in milliseconds independent of n; re-checks at most one validate per session per WS_REVALIDATE_MS (${REVALIDATE_MS} ms), spread out, so the close bound stays under WS_REVALIDATE_MS plus one validate at any n`,
      columns: [
        { key: 'size', label: 'sockets' },
        { key: 'validatePerSecond', label: 'validate/s' },
        { key: 'perInterval', label: 'per socket per interval', digits: 2 },
        { key: 'closeP50Ms', label: 'close p50 ms' },
        { key: 'closeMaxMs', label: 'close max ms' },
        { key: 'closed', label: 'closed' },
      ],
      rows,
      panels: [
        {
          yLabel: 'logout → socket closed, ms',
          reference: REVALIDATE_MS,
          series: [
            seriesFromRows('p50', rows, 'closeP50Ms'),
            seriesFromRows('max', rows, 'closeMaxMs'),
          ],
        },
        {
          yLabel: 'validate calls per socket per re-check interval',
          reference: 1,
          series: [seriesFromRows('steady state', rows, 'perInterval')],
        },
      ],
      notes: [
        `open-file limit of the gateway: ${gatewayFiles}`,
        `steady state read over ${steady} s, ${REVALIDATE_MS / 1000} s after the last socket opened; close bound over up to ${CLOSE_SAMPLE} sessions per size and round, logged out 97 ms apart at the session-service (dashed line: WS_REVALIDATE_MS)`,
      ],
      seconds: Math.round((Date.now() - t0) / 1000),
    };
  } finally {
    await stack.stop();
  }
}
