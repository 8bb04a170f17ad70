/**
 * An upstream served over HTTPS: the gateway verifies its certificate (here a development
 * certificate trusted through NODE_EXTRA_CA_CERTS, as an operator would add a private CA) and
 * refuses one it cannot verify with 502, never proxying to it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLogin } from '../helpers/login.js';
import {
  ROOT,
  SERVICES,
  type ServiceProcess,
  startService,
  startSessionServiceProcess,
} from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { writeTestUsers } from '../helpers/users.js';

const PASSWORD = 'correct horse battery';
let redis: RedisServer;
let sessionService: ServiceProcess;
let gateway: ServiceProcess;
let trusted: https.Server;
let untrusted: https.Server;
let cookie: string;

function startHttps(dir: string): Promise<https.Server> {
  execFileSync('sh', [join(ROOT, 'scripts', 'dev-cert.sh'), dir], { stdio: 'pipe' });
  const server = https.createServer(
    { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) },
    (req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ path: req.url, user: req.headers['x-auth-request-user'] ?? null }));
    },
  );
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-tls-up-'));
  redis = await startRedis();
  const users = await writeTestUsers([{ username: 'alice', password: PASSWORD }]);
  [sessionService, trusted, untrusted] = await Promise.all([
    startSessionServiceProcess({ redisUrl: redis.url, usersFile: users.path }),
    startHttps(join(dir, 'trusted')),
    startHttps(join(dir, 'untrusted')),
  ]);
  const port = (s: https.Server) => (s.address() as AddressInfo).port;
  const routes = join(dir, 'routes.yaml');
  writeFileSync(
    routes,
    `routes:
  - id: secure
    path: /secure
    upstream: https://localhost:${port(trusted)}
  - id: unknown-ca
    path: /unknown-ca
    upstream: https://localhost:${port(untrusted)}
`,
  );
  gateway = await startService({
    name: 'gateway',
    ...SERVICES.gateway,
    env: {
      REDIS_URL: redis.url,
      SESSION_SERVICE_URL: sessionService.url,
      GATEWAY_ROUTES: routes,
      LOG_LEVEL: 'warn',
      NODE_EXTRA_CA_CERTS: join(dir, 'trusted', 'cert.pem'),
    },
  });
  cookie = await jsonLogin(gateway.url, 'alice', PASSWORD);
});

afterAll(async () => {
  await gateway?.stop();
  await sessionService?.stop();
  trusted?.close();
  untrusted?.close();
  await redis?.stop();
});

describe('an HTTPS upstream', () => {
  it('is proxied over TLS with the identity attached, once its certificate verifies', async () => {
    const res = await fetch(`${gateway.url}/secure/page?x=1`, { headers: { cookie } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ path: '/secure/page?x=1', user: 'alice' });
  });

  it('answers 502 when the certificate does not verify, and logs why', async () => {
    const res = await fetch(`${gateway.url}/unknown-ca/page`, { headers: { cookie } });
    expect(res.status).toBe(502);
    expect((await res.json()).error).toBe('UPSTREAM_UNAVAILABLE');
    expect(gateway.output()).toMatch(
      /upstream error.*(SELF_SIGNED|UNABLE_TO_VERIFY|CERT)|(SELF_SIGNED|UNABLE_TO_VERIFY|CERT).*upstream error/,
    );
  });
});
