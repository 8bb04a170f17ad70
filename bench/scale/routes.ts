/**
 * Dimension 3: routes in the gateway's routes file, 1 → 1,000. One gateway per size, its routes
 * `/r0` … `/r<n-1>` to a hello-world (prefix stripped), one session-service behind them all.
 * Per round and size: throughput to the first route and to the last (the last is where a linear
 * scan ends), alternated; the last/first ratio per size, and both as ratios to the smallest size.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ServiceProcess } from '../../test/helpers/processes.js';
import { login, writeUsers } from './bulk.js';
import type { ScaleOptions } from './options.js';
import { type DimensionResult, round, seriesFromRows, seriesOf } from './result.js';
import { figuresOf, load, orderOf, pairedAt, type Rounds, record, say } from './rounds.js';
import { createStack, rssOf } from './stack.js';

export async function routesDimension(opts: ScaleOptions): Promise<DimensionResult> {
  const t0 = Date.now();
  const sizes = opts.sizes.routes;
  const stack = createStack();
  try {
    const users = await writeUsers(10);
    const redis = await stack.redis();
    const hello = await stack.hello();
    const service = await stack.sessionService('session-service', {
      REDIS_URL: redis.url,
      USERS_FILE: users.path,
    });
    const gateways = new Map<number, ServiceProcess>();
    for (const size of sizes) {
      const file = join(users.path, '..', `routes-${size}.json`);
      const routes = Array.from({ length: size }, (_, i) => ({
        id: `r${i}`,
        path: `/r${i}`,
        upstream: hello.url,
        stripPrefix: true,
      }));
      writeFileSync(file, JSON.stringify({ routes }));
      gateways.set(
        size,
        await stack.gateway(`gateway (${size} routes)`, {
          SESSION_SERVICE_URL: service.url,
          GATEWAY_ROUTES: file,
        }),
      );
    }
    const cookies = [await login(service.url, 'user0'), await login(service.url, 'user1')];
    const target = (size: number, which: 'first' | 'last') =>
      `${gateways.get(size)?.url}/r${which === 'first' ? 0 : size - 1}`;
    for (const size of sizes)
      for (const which of ['first', 'last'] as const) {
        const res = await fetch(target(size, which), { headers: { cookie: cookies[0] as string } });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`${target(size, which)} answered ${res.status}`);
        await load({ url: target(size, which), cookies }, Math.min(1, opts.duration));
      }
    const rounds: Rounds = new Map();
    for (let r = 1; r <= opts.rounds; r++) {
      say(`  round ${r}/${opts.rounds}`);
      for (const size of orderOf(sizes, r)) {
        const order = r % 2 ? (['first', 'last'] as const) : (['last', 'first'] as const);
        for (const which of order)
          record(
            rounds,
            size,
            which,
            await load(
              { url: target(size, which), cookies, connections: opts.connections },
              opts.duration,
            ),
          );
      }
    }
    const first = figuresOf(rounds, sizes, 'first');
    const last = figuresOf(rounds, sizes, 'last');
    const rows = sizes.map((size, i) => ({
      size,
      firstRps: round(first[i]?.rps, 0),
      lastRps: round(last[i]?.rps, 0),
      lastVsFirst: round(pairedAt(rounds, size, 'last', 'first')),
      firstRatio: round(first[i]?.rpsRatio),
      lastRatio: round(last[i]?.rpsRatio),
      lastP99Ratio: round(last[i]?.p99Ratio),
      gatewayRssMiB: round(rssOf(gateways.get(size)?.process.pid) / 1048576, 1),
      errors: (first[i]?.errors ?? 0) + (last[i]?.errors ?? 0),
    }));
    return {
      dimension: 'routes',
      title: 'Routes in the gateway',
      unit: 'routes',
      bound:
        'route matching O(path segments), independent of the number of routes (index by host and path segment): last/first ≈ 1 at every size',
      columns: [
        { key: 'size', label: 'routes' },
        { key: 'firstRps', label: 'first req/s' },
        { key: 'lastRps', label: 'last req/s' },
        { key: 'lastVsFirst', label: 'last/first', digits: 2 },
        { key: 'firstRatio', label: 'first ×', digits: 2 },
        { key: 'lastRatio', label: 'last ×', digits: 2 },
        { key: 'lastP99Ratio', label: 'last p99 ×', digits: 2 },
        { key: 'gatewayRssMiB', label: 'gateway RSS MiB', digits: 1 },
        { key: 'errors', label: 'errors' },
      ],
      rows,
      panels: [
        {
          yLabel: 'ratio (last route / first route; and to the smallest size)',
          reference: 1,
          series: [
            seriesFromRows('last / first route', rows, 'lastVsFirst'),
            seriesOf('first route req/s ×', first, (f) => f.rpsRatio),
            seriesOf('last route req/s ×', last, (f) => f.rpsRatio),
            seriesOf('last route p99 ×', last, (f) => f.p99Ratio),
          ],
        },
      ],
      notes: [
        'routes /r0 … /r<n-1> (one segment each) to an Express hello-world, validation cache on; the first and the last in the file, which a linear scan reaches first and last',
      ],
      seconds: Math.round((Date.now() - t0) / 1000),
    };
  } finally {
    await stack.stop();
  }
}
