import http2, { type IncomingHttpHeaders } from 'node:http2';

/** What one HTTP/2 exchange gave: the answer, and the protocol ALPN chose for the connection. */
export interface H2Answer {
  response: Response;
  /** `h2` when the server agreed to HTTP/2 (ALPN); anything else fails the request first. */
  alpn: string;
}

/**
 * fetch()-like over HTTP/2 with TLS (node:http2, ALPN offering only `h2`), trusting only `ca`.
 * One connection per call; redirects are not followed. Header names go out lowercase, as HTTP/2
 * requires; several values of one name go out as that many fields. Answers a standard Response.
 */
export function h2Fetch(
  url: string,
  init: {
    method?: string;
    headers?: Record<string, string | string[]> | Array<[string, string]>;
    body?: string | Buffer;
    ca: string;
  },
): Promise<H2Answer> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const session = http2.connect(target.origin, {
      ca: init.ca,
      ALPNProtocols: ['h2'],
      // the certificate is for localhost; the tests reach it as 127.0.0.1
      servername: 'localhost',
    });
    session.once('error', reject);
    const outgoing: http2.OutgoingHttpHeaders = {
      ':method': init.method ?? 'GET',
      ':path': `${target.pathname}${target.search}`,
      ':authority': target.host,
      ':scheme': 'https',
    };
    const entries = Array.isArray(init.headers)
      ? init.headers
      : Object.entries(init.headers ?? {}).flatMap(([name, value]) =>
          (Array.isArray(value) ? value : [value]).map((v) => [name, v] as [string, string]),
        );
    for (const [name, value] of entries) {
      const key = name.toLowerCase();
      const previous = outgoing[key];
      outgoing[key] =
        previous === undefined
          ? value
          : [...(Array.isArray(previous) ? previous : [String(previous)]), value];
    }
    if (init.body !== undefined) outgoing['content-length'] = Buffer.byteLength(init.body);
    const stream = session.request(outgoing, { endStream: init.body === undefined });
    let head: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.once('response', (headers) => {
      head = headers;
    });
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('error', (err) => {
      session.close();
      reject(err);
    });
    stream.once('end', () => {
      const alpn = session.alpnProtocol ?? '';
      session.close();
      const status = Number(head[':status'] ?? 0);
      if (!status) {
        reject(new Error(`${url}: the stream ended without an answer`));
        return;
      }
      const headers = new Headers();
      for (const [name, value] of Object.entries(head)) {
        if (name.startsWith(':') || value === undefined) continue;
        for (const v of Array.isArray(value) ? value : [String(value)]) headers.append(name, v);
      }
      const nullBody = [204, 205, 304].includes(status) || init.method === 'HEAD';
      resolve({
        alpn,
        response: new Response(nullBody ? null : Buffer.concat(chunks), { status, headers }),
      });
    });
    if (init.body !== undefined) stream.end(init.body);
  });
}
