import net from 'node:net';

export interface RawAnswer {
  status: number;
  /** The status line and header fields, as received. */
  head: string;
  body: string;
}

/**
 * Writes `request` to 127.0.0.1:`port` byte for byte (no client normalises the request-target,
 * the header names, their casing or their order) and reads the answer until the server closes
 * the connection. An array is the request's lines: joined with CRLF and ended by the empty line.
 */
export function rawHttp(port: number | string, request: string | string[]): Promise<RawAnswer> {
  const text = typeof request === 'string' ? request : [...request, '', ''].join('\r\n');
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1', () => socket.write(text));
    let data = '';
    socket.on('data', (d: Buffer) => {
      data += d.toString('latin1');
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const [head = '', ...rest] = data.split('\r\n\r\n');
      resolve({ status: Number(head.split(' ')[1]), head, body: rest.join('\r\n\r\n') });
    });
  });
}
