import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** One page: status, headers and HTML, built from the request (it may read identity headers). */
export type PageHandler = (req: IncomingMessage) => {
  status?: number;
  headers?: Record<string, string>;
  html: string;
};

export interface PageServer {
  port: number;
  /** Every request as `METHOD path`, in order. */
  requests: string[];
  close(): Promise<void>;
}

/**
 * A tiny HTML server on 127.0.0.1 for browser tests: a page per path, 404 elsewhere. No
 * Cache-Control, no CSP, unless a page sets them: it stands for a plain backend, or another
 * site.
 */
export async function startPages(pages: Record<string, PageHandler>): Promise<PageServer> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.push(`${req.method} ${path}`);
    req.resume();
    const page = pages[path];
    if (!page) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const { status = 200, headers = {}, html } = page(req);
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...headers }).end(html);
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** A minimal HTML document. */
export const htmlPage = (title: string, body: string, head = '') =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title>${head}</head><body>${body}</body></html>`;
