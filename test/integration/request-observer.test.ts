import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics, createRequestObserver } from '../../common/src/observability.js';
import { waitFor } from '../helpers/ports.js';

/** One log line per request, from a real HTTP server, with a real pino logger writing JSON. */
const lines: Array<Record<string, unknown>> = [];
const sink = new Writable({
  write(chunk: Buffer, _encoding, done) {
    for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
    done();
  },
});
const logger = pino({ level: 'debug' }, sink);
const metrics = createMetrics('observer-test', { defaultMetrics: false });
const observe = createRequestObserver(logger, metrics, (req) => req.url?.split('?')[0] ?? 'other');
let server: Server;
let port: number;

beforeAll(async () => {
  server = createServer((req, res) =>
    observe(req, res, () => {
      if (req.url === '/slow') {
        res.write('partial'); // never ends: the client gives up
        return;
      }
      res.statusCode = req.url === '/missing' ? 404 : req.url === '/down' ? 503 : 200;
      res.end('ok');
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => server?.close());

function get(path: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; id: string | undefined }>((resolve, reject) => {
    request({ port, path, headers }, (res) => {
      res.resume();
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, id: res.headers['x-request-id'] as string }),
      );
    })
      .on('error', reject)
      .end();
  });
}
async function lineOf(id: string | undefined) {
  await waitFor(() => lines.some((l) => l.requestId === id), 2000, `the line of ${id}`);
  return lines.find((l) => l.requestId === id);
}

describe('the request observer', () => {
  it('logs one line per request at the level its status calls for, with the request id', async () => {
    const kept = await get('/page?secret=1', { 'x-request-id': 'trace-1' });
    expect(kept.id).toBe('trace-1');
    expect(await lineOf('trace-1')).toMatchObject({
      level: 20, // debug
      msg: 'request completed',
      req: { method: 'GET', url: '/page' }, // never the query string
      res: { statusCode: 200 },
      responseTime: expect.any(Number),
    });
    const made = await get('/missing', { 'x-request-id': 'bad id with spaces' });
    expect(made.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(await lineOf(made.id)).toMatchObject({ level: 30, res: { statusCode: 404 } });
    const down = await get('/down');
    expect(await lineOf(down.id)).toMatchObject({ level: 40, res: { statusCode: 503 } });
    expect(lines.filter((l) => l.requestId === 'trace-1')).toHaveLength(1);
  });

  it('logs a request the client abandoned as 499 "request aborted", once', async () => {
    const id = `abandon-${Date.now()}`;
    await new Promise<void>((resolve) => {
      const req = request({ port, path: '/slow', headers: { 'x-request-id': id } }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.end();
    });
    expect(await lineOf(id)).toMatchObject({
      level: 30,
      msg: 'request aborted',
      res: { statusCode: 499 },
    });
    expect(lines.filter((l) => l.requestId === id)).toHaveLength(1);
  });

  it('observes every request in the histogram, by route and status', async () => {
    const text = await metrics.registry.metrics();
    expect(text).toMatch(
      /gatehouse_http_request_duration_seconds_count\{[^}]*route="\/page"[^}]*status="200"[^}]*\} 1/,
    );
    expect(text).toMatch(
      /gatehouse_http_request_duration_seconds_count\{[^}]*route="\/slow"[^}]*status="499"[^}]*\} 1/,
    );
  });
});
