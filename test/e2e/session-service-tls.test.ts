/**
 * SESSION_SERVICE_URL=https://… (security issue 11, class 11a): the gateway validates, asks for
 * the signed identity and follows the revocation feed over TLS, verifying the session-service's
 * certificate (here a development certificate trusted through NODE_EXTRA_CA_CERTS, as an
 * operator adds a private CA). A gateway that cannot verify it fails closed: 503, nothing
 * reaches the upstream.
 *
 * The session-service is the real app (real Redis) served by a real node:https server; the
 * gateways are real processes.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type EchoUpstream,
  expectFailsClosed,
  startEchoUpstream,
} from '../helpers/echo-upstream.js';
import { waitFor } from '../helpers/ports.js';
import { ROOT, type ServiceProcess, startService } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import {
  buildSessionService,
  NO_THROTTLE,
  type SessionServiceApp,
} from '../helpers/session-service.js';
import { writeTestUsers } from '../helpers/users.js';

const PASSWORD = 'correct horse battery';
let redis: RedisServer;
let service: SessionServiceApp;
let server: https.Server;
let echo: EchoUpstream;
let dir: string;
let sessionServiceUrl: string;
/** Paths the session-service received over TLS, in order. */
const received: string[] = [];
const gateways: ServiceProcess[] = [];
/** The gateway that trusts the session-service's certificate (NODE_EXTRA_CA_CERTS). */
let trusting: ServiceProcess;

function startGateway(name: string, env: Record<string, string>) {
  return startService({
    name,
    entry: 'gateway/src/main.ts',
    portVariable: 'GATEWAY_PORT',
    healthPath: '/_gatehouse/healthz',
    env: {
      SESSION_SERVICE_URL: sessionServiceUrl,
      UPSTREAM_URL: echo.url,
      GATEWAY_METRICS_PORT: 'off',
      LOG_LEVEL: 'warn',
      ...env,
    },
  }).then((gateway) => {
    gateways.push(gateway);
    return gateway;
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-ss-tls-'));
  execFileSync('sh', [join(ROOT, 'scripts', 'dev-cert.sh'), dir], { stdio: 'pipe' });
  [redis, echo] = await Promise.all([startRedis(), startEchoUpstream()]);
  const users = await writeTestUsers([{ username: 'alice', password: PASSWORD, groups: ['dev'] }]);
  service = await buildSessionService({
    redisUrl: redis.url,
    usersFile: users.path,
    throttleLimits: NO_THROTTLE,
  });
  server = https.createServer(
    { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) },
    (req, res) => {
      received.push(req.url ?? '');
      service.app(req, res);
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  // The certificate names localhost and 127.0.0.1.
  sessionServiceUrl = `https://localhost:${(server.address() as AddressInfo).port}`;
  trusting = await startGateway('gateway (trusts the CA)', {
    NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem'),
  });
}, 60_000);

afterAll(async () => {
  await Promise.all(gateways.map((g) => g.stop()));
  server?.closeAllConnections();
  server?.close();
  await service?.close();
  await echo?.close();
  await redis?.stop();
});

async function login(gatewayUrl: string): Promise<string> {
  const res = await fetch(`${gatewayUrl}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ username: 'alice', password: PASSWORD }),
  });
  expect(res.status).toBe(200);
  return res.headers.getSetCookie()[0]?.split(';')[0] ?? '';
}

describe('a session-service served over HTTPS', () => {
  it('is used by a gateway that trusts its certificate: validate, signed identity, revocation feed', async () => {
    const gateway = trusting;
    // The revocation feed connects over TLS (with the internal token).
    await waitFor(
      async () => received.includes('/internal/revocations'),
      10_000,
      'the revocation stream over TLS',
    );
    const cookie = await login(gateway.url);
    const res = await fetch(`${gateway.url}/page`, {
      headers: { cookie, accept: 'application/json' },
    });
    expect(res.status).toBe(200);
    const seen = echo.last();
    expect(seen.url).toBe('/page');
    expect(seen.header('x-auth-request-user')).toEqual(['alice']);
    const [jwt] = seen.header('x-auth-request-jwt');
    expect(decodeJwt(jwt ?? '')).toMatchObject({ aud: 'default', name: 'alice' });
    expect(received).toContain('/internal/validate?aud=default');

    // A logout through the gateway ends the session: the next request is refused.
    const out = await fetch(`${gateway.url}/auth/logout`, {
      method: 'POST',
      headers: { cookie, accept: 'application/json', 'content-type': 'application/json' },
      body: '{}',
    });
    expect(out.status).toBe(204);
    await waitFor(
      async () =>
        (await fetch(`${gateway.url}/page`, { headers: { cookie, accept: 'application/json' } }))
          .status === 401,
      1000,
      'the ended session to be refused',
    );
  });

  it('fails closed with 503 at a gateway that cannot verify its certificate: nothing reaches the upstream', async () => {
    const cookie = await login(trusting.url);
    const gateway = await startGateway('gateway (no CA)', {});
    await expectFailsClosed(`${gateway.url}/page`, cookie, echo);
    expect(gateway.output()).toMatch(/self[- ]signed|certificate|CERT_/i);
  });
});
