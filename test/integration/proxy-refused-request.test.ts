import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createAgentPool, createProxy } from '../../gateway/src/proxy.js';
import { silentLogger } from '../helpers/logger.js';
import { reservedDeadPort } from '../helpers/ports.js';

describe('the proxy, when undici refuses to make a request', () => {
  it('answers 502 and counts the error, never a 500 or a crash', async () => {
    const codes: string[] = [];
    const agents = createAgentPool();
    const proxy = createProxy({
      logger: silentLogger,
      agents,
      onUpstreamError: (code) => codes.push(code),
    });
    const upstream = new URL(`http://127.0.0.1:${await reservedDeadPort()}`);
    const server = createServer((req, res) =>
      // A path undici will not send (outside \u0021-\u00ff): refused before any connection.
      proxy.web(req, res, { upstream, path: '/\u0100', headers: ['Host', 'x'], timeoutMs: 2000 }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      expect(res.status).toBe(502);
      expect((await res.json()).error).toBe('UPSTREAM_UNAVAILABLE');
      expect(codes).toEqual(['UND_ERR_INVALID_ARG']);
    } finally {
      server.close();
      agents.close();
    }
  });
});
