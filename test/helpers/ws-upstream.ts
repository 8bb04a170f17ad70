import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';

export interface WsConnection {
  socket: WebSocket;
  /** The upgrade request as the upstream received it. */
  url: string;
  rawHeaders: string[];
  header(name: string): string[];
  messages: string[];
  /** Resolves with the close code and reason this side saw. */
  closed: Promise<{ code: number; reason: string }>;
}

export interface WsUpstream {
  url: string;
  port: number;
  connections: WsConnection[];
  /** Upgrade attempts seen (accepted or not). */
  attempts: number;
  waitForConnections(count: number): Promise<WsConnection>;
  close(): Promise<void>;
}

/**
 * A WebSocket upstream (the `ws` package) that echoes every message as `echo:<text>`, records each
 * upgrade request (url, raw headers) and how each connection closed.
 */
export async function startWsUpstream(): Promise<WsUpstream> {
  const server = http.createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' });
    res.end('upgrade required');
  });
  const wss = new WebSocketServer({ server });
  const connections: WsConnection[] = [];
  const waiters: Array<{ count: number; resolve: (c: WsConnection) => void }> = [];
  const upstream: WsUpstream = {
    url: '',
    port: 0,
    connections,
    attempts: 0,
    waitForConnections(count) {
      const existing = connections[count - 1];
      if (existing) return Promise.resolve(existing);
      return new Promise((resolve) => waiters.push({ count, resolve }));
    },
    async close() {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  server.on('upgrade', () => {
    upstream.attempts += 1;
  });
  wss.on('connection', (socket: WebSocket, req: IncomingMessage) => {
    const rawHeaders = [...req.rawHeaders];
    const messages: string[] = [];
    const connection: WsConnection = {
      socket,
      url: req.url ?? '',
      rawHeaders,
      header(name) {
        const out: string[] = [];
        for (let i = 0; i < rawHeaders.length; i += 2)
          if (rawHeaders[i]?.toLowerCase() === name.toLowerCase())
            out.push(rawHeaders[i + 1] ?? '');
        return out;
      },
      messages,
      closed: new Promise((resolve) =>
        socket.on('close', (code: number, reason: Buffer) =>
          resolve({ code, reason: reason.toString() }),
        ),
      ),
    };
    socket.on('error', () => {});
    socket.on('message', (data: Buffer) => {
      const text = data.toString();
      messages.push(text);
      socket.send(`echo:${text}`);
    });
    connections.push(connection);
    for (const w of [...waiters]) {
      if (connections.length >= w.count) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(connections[w.count - 1] as WsConnection);
      }
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  upstream.port = (server.address() as AddressInfo).port;
  upstream.url = `http://127.0.0.1:${upstream.port}`;
  return upstream;
}
