/**
 * Dimension 5: gateways (processes) against one session-service, 1 → 8. Eight gateways start
 * (a hello-world behind each); size k uses the first k. Per round and size: throughput with the
 * load split over the k gateways (the same connections in all), and a revocation: a session is
 * cached on every one of them, logged out at the session-service, and each gateway polled every
 * 5 ms until it refuses the cookie; the time until the last one refused.
 */
import type { ServiceProcess } from '../../test/helpers/processes.js';
import { clean, median, type Sample, summarize } from '../load.js';
import { bulkSessions, writeUsers } from './bulk.js';
import { logout } from './logout.js';
import type { ScaleOptions } from './options.js';
import { type DimensionResult, round, seriesFromRows, seriesOf } from './result.js';
import { figuresOf, load, orderOf, type Rounds, record, say } from './rounds.js';
import { createStack, sleep } from './stack.js';

/** Time from the logout until every gateway in `gateways` refuses `cookie`, in ms. */
async function revocationMs(gateways: ServiceProcess[], cookie: string, serviceUrl: string) {
  for (const g of gateways) {
    const res = await fetch(`${g.url}/`, { headers: { cookie } });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${g.name} refused a live session: ${res.status}`);
  }
  const t0 = performance.now();
  const loggedOut = logout(serviceUrl, cookie);
  const times = await Promise.all(
    gateways.map(async (g) => {
      for (;;) {
        const res = await fetch(`${g.url}/`, { headers: { cookie }, redirect: 'manual' });
        await res.arrayBuffer();
        if (res.status !== 200) return performance.now() - t0;
        if (performance.now() - t0 > 30_000) return Number.POSITIVE_INFINITY;
        await sleep(5);
      }
    }),
  );
  await loggedOut;
  return Math.max(...times);
}

export async function gatewaysDimension(opts: ScaleOptions): Promise<DimensionResult> {
  const t0 = Date.now();
  const sizes = opts.sizes.gateways;
  const most = Math.max(...sizes);
  const stack = createStack();
  try {
    const users = await writeUsers(10);
    const redis = await stack.redis();
    const hello = await stack.hello();
    const service = await stack.sessionService('session-service', {
      REDIS_URL: redis.url,
      USERS_FILE: users.path,
    });
    const gateways: ServiceProcess[] = [];
    for (let i = 0; i < most; i++)
      gateways.push(
        await stack.gateway(`gateway ${i + 1}`, {
          SESSION_SERVICE_URL: service.url,
          UPSTREAM_URL: hello.url,
        }),
      );
    const bulk = await bulkSessions({
      redisUrl: redis.url,
      serviceUrl: service.url,
      users: users.users,
    });
    stack.onStop(() => bulk.close());
    const cookies = await bulk.create(64);
    const rounds: Rounds = new Map();
    const revocations = new Map<number, number[]>(sizes.map((k) => [k, []]));
    for (const g of gateways) await load({ url: `${g.url}/`, cookies }, Math.min(1, opts.duration));
    for (let r = 1; r <= opts.rounds; r++) {
      say(`  round ${r}/${opts.rounds}`);
      for (const k of orderOf(sizes, r)) {
        const used = gateways.slice(0, k);
        const per = Math.max(2, Math.floor(opts.connections / k));
        const samples = await Promise.all(
          used.map((g) => load({ url: `${g.url}/`, cookies, connections: per }, opts.duration)),
        );
        const total: Sample = {
          ...summarize(samples),
          rps: samples.reduce((a, s) => a + s.rps, 0),
          p99: Math.max(...samples.map((s) => s.p99)),
        };
        if (!samples.every(clean)) total.errors += 1;
        record(rounds, k, 'load', total);
        const [fresh] = await bulk.create(1);
        revocations.get(k)?.push(await revocationMs(used, fresh as string, service.url));
      }
    }
    const f = figuresOf(rounds, sizes, 'load');
    const rows = sizes.map((k, i) => {
      const ms = revocations.get(k) ?? [];
      return {
        size: k,
        rps: round(f[i]?.rps, 0),
        rpsRatio: round(f[i]?.rpsRatio),
        p99Ratio: round(f[i]?.p99Ratio),
        revocationMs: round(median(ms), 1),
        revocationMaxMs: round(Math.max(...ms), 1),
        errors: f[i]?.errors ?? 0,
      };
    });
    return {
      dimension: 'gateways',
      title: 'Gateways against one session-service',
      unit: 'gateways',
      bound:
        'revocation reaches every gateway in one publish (tens of ms, independent of the number of gateways); throughput bounded by the machine (2 cores here: a flat total is the ceiling, not a loss)',
      columns: [
        { key: 'size', label: 'gateways' },
        { key: 'rps', label: 'total req/s' },
        { key: 'rpsRatio', label: 'req/s ×', digits: 2 },
        { key: 'p99Ratio', label: 'p99 ×', digits: 2 },
        { key: 'revocationMs', label: 'revoked on all, ms (median)', digits: 1 },
        { key: 'revocationMaxMs', label: 'max ms', digits: 1 },
        { key: 'errors', label: 'errors' },
      ],
      rows,
      panels: [
        {
          yLabel: 'ratio to one gateway',
          reference: 1,
          series: [
            seriesOf('total req/s', f, (x) => x.rpsRatio),
            seriesOf('p99 (worst gateway)', f, (x) => x.p99Ratio),
          ],
        },
        {
          yLabel: 'logout → refused by every gateway, ms',
          series: [
            seriesFromRows('median', rows, 'revocationMs'),
            seriesFromRows('max', rows, 'revocationMaxMs'),
          ],
        },
      ],
      notes: [
        `${opts.connections} connections split over the gateways in use; every gateway has the validation cache on, so a refusal in time can only come from the revocation feed`,
        'revocation: time from sending POST /auth/logout to the session-service until the last gateway answered something other than 200 (polled every 5 ms)',
      ],
      seconds: Math.round((Date.now() - t0) / 1000),
    };
  } finally {
    await stack.stop();
  }
}
