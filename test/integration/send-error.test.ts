/**
 * sendError, the one writer of error answers, on a real node:http server: the catalogue's status,
 * JSON `{error, message}` for API clients, a short page for browsers, JSON whatever Accept says
 * when asked, Content-Length (HEAD included), no-store, extra headers, and a destroyed socket when
 * the answer has already started.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERRORS } from '../../common/src/errors.js';
import { type SendErrorOptions, sendError } from '../../common/src/http.js';

type Case = (req: IncomingMessage, res: ServerResponse) => void;
const cases: Record<string, Case> = {
  '/busy': (req, res) => sendError(req, res, 'BUSY', { headers: { 'Retry-After': '1' } }),
  '/machine': (req, res) =>
    sendError(req, res, 'UNAUTHENTICATED', { json: true, message: 'No valid session.' }),
  '/relayed': (req, res) => sendError(req, res, 'BAD_REQUEST', { status: 405 }),
  '/escaped': (req, res) =>
    sendError(req, res, 'NOT_FOUND', { message: '<script>x</script>' } satisfies SendErrorOptions),
  '/started': (req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.write('partial');
    sendError(req, res, 'INTERNAL_ERROR');
  },
};

let server: http.Server;
let base: string;
beforeAll(async () => {
  server = http.createServer((req, res) => cases[req.url ?? '']?.(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

describe('sendError', () => {
  it('answers an API client with the catalogue status and {error, message} JSON', async () => {
    const res = await fetch(`${base}/busy`);
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('retry-after')).toBe('1');
    const text = await res.text();
    expect(res.headers.get('content-length')).toBe(String(Buffer.byteLength(text)));
    expect(JSON.parse(text)).toEqual({ error: 'BUSY', message: ERRORS.BUSY.message });
  });

  it('answers a browser with a short page naming the message and the code', async () => {
    const res = await fetch(`${base}/escaped`, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const page = await res.text();
    expect(page).toContain('<h1>&lt;script&gt;x&lt;/script&gt;</h1>');
    expect(page).toContain('Error code: NOT_FOUND');
    expect(page).not.toContain('<script>');
  });

  it('answers JSON whatever Accept says when the caller is a machine', async () => {
    const res = await fetch(`${base}/machine`, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: 'UNAUTHENTICATED', message: 'No valid session.' });
  });

  it('relays a library 4xx under BAD_REQUEST', async () => {
    const relayed = await fetch(`${base}/relayed`);
    expect(relayed.status).toBe(405);
    expect(await relayed.json()).toEqual({
      error: 'BAD_REQUEST',
      message: ERRORS.BAD_REQUEST.message,
    });
  });

  it('gives HEAD the Content-Length of the answer GET would get, and no body', async () => {
    const head = await new Promise<http.IncomingMessage>((resolve, reject) =>
      http.request(`${base}/busy`, { method: 'HEAD' }, resolve).on('error', reject).end(),
    );
    const body = JSON.stringify({ error: 'BUSY', message: ERRORS.BUSY.message });
    expect(head.statusCode).toBe(503);
    expect(head.headers['content-length']).toBe(String(Buffer.byteLength(body)));
    head.resume();
  });

  it('cuts the connection when the answer had already started', async () => {
    await expect(fetch(`${base}/started`).then((res) => res.text())).rejects.toThrow();
  });
});
