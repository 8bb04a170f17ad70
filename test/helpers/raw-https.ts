import { connect } from 'node:tls';

/**
 * One HTTP/1.1 request over TLS written byte for byte: header names go out in the casing, order
 * and number given (Node's http client folds names to one per lowercase spelling), so a test can
 * send `X-Auth-Request-User`, `x-auth-request-user` and `X_AUTH_REQUEST_USER` together. ALPN
 * offers only `http/1.1`; `Connection: close`, so the answer is read to the end of the stream.
 * Answers a standard Response and the protocol ALPN chose ('' when the server chose none).
 */
export function rawHttpsRequest(
  url: string,
  init: {
    method?: string;
    headers?: Array<[string, string]>;
    body?: string | Buffer;
    ca: string;
  },
): Promise<{ response: Response; alpn: string }> {
  const target = new URL(url);
  const body = init.body === undefined ? undefined : Buffer.from(init.body);
  const lines = [`${init.method ?? 'GET'} ${target.pathname}${target.search} HTTP/1.1`];
  lines.push(`Host: ${target.host}`);
  for (const [name, value] of init.headers ?? []) lines.push(`${name}: ${value}`);
  if (body !== undefined) lines.push(`Content-Length: ${body.length}`);
  lines.push('Connection: close', '', '');
  const head = Buffer.from(lines.join('\r\n'), 'latin1');

  return new Promise((resolve, reject) => {
    const socket = connect({
      host: target.hostname,
      port: Number(target.port || 443),
      ca: init.ca,
      servername: 'localhost',
      ALPNProtocols: ['http/1.1'],
    });
    const chunks: Buffer[] = [];
    socket.once('secureConnect', () => {
      socket.write(body ? Buffer.concat([head, body]) : head);
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('error', reject);
    socket.once('end', () => {
      try {
        const alpn = socket.alpnProtocol || '';
        resolve({ alpn, response: parseResponse(Buffer.concat(chunks), init.method ?? 'GET') });
      } catch (err) {
        reject(err);
      } finally {
        socket.destroy();
      }
    });
  });
}

function parseResponse(raw: Buffer, method: string): Response {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no complete answer: ${JSON.stringify(raw.toString('latin1'))}`);
  const [statusLine = '', ...fields] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1]);
  if (!status) throw new Error(`not an HTTP/1.x status line: ${JSON.stringify(statusLine)}`);
  const headers = new Headers();
  for (const field of fields) {
    const colon = field.indexOf(':');
    headers.append(field.slice(0, colon).trim(), field.slice(colon + 1).trim());
  }
  let body = raw.subarray(end + 4);
  if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) body = dechunk(body);
  else if (headers.has('content-length'))
    body = body.subarray(0, Number(headers.get('content-length')));
  const nullBody = [204, 205, 304].includes(status) || method === 'HEAD';
  return new Response(nullBody ? null : new Uint8Array(body), { status, headers });
}

function dechunk(data: Buffer): Buffer {
  const out: Buffer[] = [];
  let offset = 0;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', offset);
    if (lineEnd < 0) throw new Error('truncated chunked body');
    const size = Number.parseInt(data.subarray(offset, lineEnd).toString('latin1'), 16);
    if (!size) return Buffer.concat(out);
    out.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
    offset = lineEnd + 2 + size + 2;
  }
}
