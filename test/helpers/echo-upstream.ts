import { createHash } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { expect } from 'vitest';

/** One request exactly as the upstream received it. */
export interface Received {
  method: string;
  url: string;
  httpVersion: string;
  /** Names and values as on the wire: original casing, order and duplicates. */
  rawHeaders: string[];
  body: Buffer;
  /** The remote port of the connection it came on (same port: same kept-alive connection). */
  remotePort: number;
  /** Every value of a header, any casing (raw, not joined). */
  header(name: string): string[];
}

export interface EchoUpstream {
  url: string;
  port: number;
  server: http.Server;
  received: Received[];
  last(): Received;
  /** Resolves when the upstream has received `count` requests in all. */
  waitFor(count: number): Promise<void>;
  /** For `?sse=N`: lets the next event go (the first is sent at once). */
  nextEvent(): void;
  close(): Promise<void>;
}

/** The bytes of `?download=N`: a deterministic pattern, so a test can hash what it got. */
export function downloadBytes(size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + (i >> 8)) & 0xff;
  return out;
}

export const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/**
 * An upstream that records what it received (method, url, raw headers, body bytes) and answers
 * by query parameter on any path:
 * - default: 200 JSON `{ method, url, rawHeaders, bodyLength, bodySha256 }`
 * - `?sse=N`: server-sent events, the first at once, each next one only after nextEvent()
 * - `?download=BYTES`: that many bytes of downloadBytes(), streamed in 64 KiB chunks
 * - `?status=CODE`: an empty answer with that status
 * - `?hopByHop=1`: an answer carrying hop-by-hop headers (Keep-Alive, Connection: x-secret …)
 */
export async function startEchoUpstream(): Promise<EchoUpstream> {
  const received: Received[] = [];
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  const eventGates: Array<() => void> = [];
  let pendingReleases = 0;

  const record = (req: IncomingMessage, body: Buffer) => {
    const rawHeaders = [...req.rawHeaders];
    received.push({
      method: req.method ?? '',
      url: req.url ?? '',
      httpVersion: req.httpVersion,
      rawHeaders,
      body,
      remotePort: req.socket.remotePort ?? 0,
      header(name: string) {
        const out: string[] = [];
        for (let i = 0; i < rawHeaders.length; i += 2)
          if (rawHeaders[i]?.toLowerCase() === name.toLowerCase())
            out.push(rawHeaders[i + 1] ?? '');
        return out;
      },
    });
    for (const w of [...waiters]) {
      if (received.length >= w.count) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };

  const respond = async (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const query = new URL(req.url ?? '/', 'http://x').searchParams;
    const sse = query.get('sse');
    if (sse) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      for (let i = 1; i <= Number(sse); i++) {
        if (i > 1)
          await new Promise<void>((resolve) => {
            if (pendingReleases > 0) {
              pendingReleases -= 1;
              resolve();
            } else eventGates.push(resolve);
          });
        res.write(`id: ${i}\ndata: event ${i}\n\n`);
      }
      res.end();
      return;
    }
    const download = query.get('download');
    if (download) {
      const data = downloadBytes(Number(download));
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      let offset = 0;
      const pump = () => {
        while (offset < data.length) {
          const chunk = data.subarray(offset, offset + 65536);
          offset += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    const status = query.get('status');
    if (status) {
      res.writeHead(Number(status));
      res.end();
      return;
    }
    if (query.get('hopByHop')) {
      res.writeHead(200, [
        'Content-Type',
        'text/plain',
        'Keep-Alive',
        'timeout=5',
        'Connection',
        'keep-alive, X-Secret-Hop',
        'X-Secret-Hop',
        'do not forward',
        'Proxy-Connection',
        'keep-alive',
        'X-End-To-End',
        'kept',
      ]);
      res.end('ok');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        method: req.method,
        url: req.url,
        rawHeaders: req.rawHeaders,
        bodyLength: body.length,
        bodySha256: sha256(body),
      }),
    );
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      record(req, body);
      void respond(req, res, body);
    });
  });
  server.keepAliveTimeout = 30_000;
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    received,
    last() {
      const r = received.at(-1);
      if (!r) throw new Error('the upstream received nothing');
      return r;
    },
    waitFor(count) {
      if (received.length >= count) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ count, resolve }));
    },
    nextEvent() {
      const gate = eventGates.shift();
      if (gate) gate();
      else pendingReleases += 1;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A gateway that must fail closed: `page` (a protected URL on it) asked for with the valid session
 * `cookie`, as JSON and as HTML, is answered 503 without the user's name, and `echo` (its
 * upstream) receives nothing meanwhile.
 */
export async function expectFailsClosed(page: string, cookie: string, echo: EchoUpstream) {
  const before = echo.received.length;
  for (const accept of ['application/json', 'text/html']) {
    const res = await fetch(page, { headers: { cookie, accept }, redirect: 'manual' });
    expect(res.status, accept).toBe(503);
    expect(await res.text(), accept).not.toContain('alice');
  }
  expect(echo.received.length, 'requests that reached the upstream').toBe(before);
}
