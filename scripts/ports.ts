/** Ports on this machine, for npm start and npm run doctor. */
import { connect, createServer } from 'node:net';

/** Whether `port` of `host` can be listened on now (nothing else holds it). */
export function portFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.once('error', () => done(false));
    server.listen(port, host, () => server.close(() => done(true)));
  });
}

/** `preferred` when it is free, else a free port the system picks. */
export async function freePortFrom(preferred: number, host = '127.0.0.1'): Promise<number> {
  if (await portFree(preferred, host)) return preferred;
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => done(typeof address === 'object' && address ? address.port : preferred));
    });
  });
}

/** Whether something accepts TCP connections on `port` of `host`. */
export function accepting(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ port, host });
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}
