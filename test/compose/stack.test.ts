/**
 * `npm run test:compose`: the docker-compose stack, run as a user runs it (README "docker-compose",
 * docs/getting-started.md "With docker-compose"), from a clean state to `down -v`. Opt-in (not part
 * of `npm test`): it builds the image and needs a Docker engine. With none answering it skips and
 * says why, unless GATEHOUSE_COMPOSE_REQUIRED=1 (CI), where that is a failure.
 *
 * One scenario in order, each step depending on the one before, as a user's afternoon would.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, submitLogin, type TestBrowser } from '../browser/browser.js';
import { httpsClient } from '../helpers/nginx.js';
import {
  type ComposeProject,
  containerAddress,
  copyProject,
  dockerUnavailable,
  nodeIn,
  until,
} from './compose.js';

const URL = 'https://localhost:8443';
const PASSWORD = 'compose correct horse battery';
const COOKIE = '__Host-gatehouse';
const JSON_ACCEPT = { accept: 'application/json' };

const unavailable = dockerUnavailable();
if (unavailable) {
  if (process.env.GATEHOUSE_COMPOSE_REQUIRED === '1') {
    throw new Error(`test:compose: no Docker engine answers (${unavailable})`);
  }
  process.stderr.write(
    `\ntest:compose SKIPPED: no Docker engine answers (${unavailable}).\n` +
      'Install Docker and start it (Debian: apt-get install docker.io; dockerd &), then run again.\n\n',
  );
}

/** Seconds since `start`, one decimal. */
const since = (start: number) => Math.round((Date.now() - start) / 100) / 10;

describe.skipIf(unavailable !== undefined)('docker-compose stack', () => {
  let project: ComposeProject;
  let ca: string;
  let browser: TestBrowser;
  const timings: Record<string, number> = {};

  /** Every service healthy (check-config and certs completed), within `timeoutMs`. */
  async function untilHealthy(timeoutMs = 180_000) {
    await until(
      () => {
        const running = Object.entries(project.health()).filter(
          ([service]) => service !== 'check-config' && service !== 'certs',
        );
        return (
          running.length === 5 &&
          running.every(([, states]) => states.every((s) => s === 'healthy'))
        );
      },
      timeoutMs,
      () => `every service healthy, got ${JSON.stringify(project.health())}`,
    );
  }

  /** `sh scripts/compose-env.sh`, the documented way to make .env. */
  function writeEnv() {
    const secrets = spawnSync('sh', ['scripts/compose-env.sh'], {
      cwd: project.dir,
      encoding: 'utf8',
    });
    expect(secrets.status, secrets.stderr).toBe(0);
    expect(secrets.stdout).toContain('wrote .env');
  }

  /** A request from the test (trusting only the stack's own development certificate). */
  const client = () => httpsClient(ca);

  beforeAll(async () => {
    project = copyProject(`ghcompose${process.pid}`);
    const version = project.run(['version']);
    expect(version.status, version.stderr).toBe(0);
    // Every compose command reads .env (docker-compose.yml takes the secrets from it): the build
    // too. The scenario below removes it and starts again from the documented steps.
    writeEnv();
    timings.build = project.ok(['build']).seconds;
    rmSync(join(project.dir, '.env'));
  }, 30 * 60_000);

  it('a mistake in .env stops up before the session-service starts, and check-config names it', () => {
    // .env.example as it is: compose refuses at once, naming the empty secret and the fix.
    writeFileSync(join(project.dir, '.env'), readFileSync(join(project.dir, '.env.example')));
    const empty = project.run(['up', '-d']);
    expect(empty.status).not.toBe(0);
    expect(empty.stderr).toMatch(/SESSION_SECRET|INTERNAL_TOKEN|SESSION_ENCRYPTION_KEY/);
    expect(empty.stderr).toContain('sh scripts/compose-env.sh');
    expect(project.leftovers(), 'nothing was created').toEqual([]);

    // A secret typed by hand, too short: up fails, and the check's log lists the problem.
    const secret = () => randomBytes(40).toString('base64url');
    writeFileSync(
      join(project.dir, '.env'),
      `SESSION_SECRET=short\nINTERNAL_TOKEN=${secret()}\nSESSION_ENCRYPTION_KEY=${secret()}\n`,
    );
    const bad = project.run(['up', '-d']);
    expect(bad.status).not.toBe(0);
    expect(project.containers('session-service')).toEqual([]);
    const logs = project.ok(['logs', '--no-color', 'check-config']).stdout;
    expect(logs).toContain('invalid configuration');
    expect(logs).toContain('SESSION_SECRET: must be at least 32 characters');
    project.ok(['down', '-v', '--timeout', '5']);
    rmSync(join(project.dir, '.env'));
  });

  it('starts from the documented steps and prints how long it took to become healthy', async () => {
    writeEnv();
    const started = Date.now();
    project.ok(['up', '-d']);
    await untilHealthy();
    timings.healthy = since(started);
    process.stderr.write(
      `\ncompose stack: image built in ${timings.build} s, healthy ${timings.healthy} s after up\n`,
    );
    ca = execFileSync(
      'docker',
      ['exec', project.containers('nginx')[0] ?? '', 'cat', '/etc/nginx/certs/cert.pem'],
      { encoding: 'utf8' },
    );
    // The first user, the documented way (the password on stdin, as a script would give it).
    project.ok(
      ['run', '--rm', '-T', 'session-service', 'users', 'add', 'alice', '--groups', 'staff'],
      { input: `${PASSWORD}\n` },
    );
    browser = await launchBrowser({ args: ['--ignore-certificate-errors'] });
  });

  afterAll(async () => {
    await browser?.close();
    if (project) {
      const logs = project.run(['logs', '--no-color', '--tail', '40']);
      if (process.env.GATEHOUSE_COMPOSE_LOGS === '1') process.stderr.write(logs.stdout);
      project.destroy();
    }
    process.stderr.write(`\ntest:compose timings (s): ${JSON.stringify(timings)}\n`);
  }, 5 * 60_000);

  it('an anonymous browser request ends at the login page', async () => {
    const anonymous = await browser.context.browser()?.newContext({ ignoreHTTPSErrors: true });
    const page = anonymous ? await anonymous.newPage() : browser.page;
    const response = await page.goto(`${URL}/reports?year=2026`);
    expect(response?.status()).toBe(200);
    const landed = new globalThis.URL(page.url());
    expect(landed.pathname).toBe('/auth/login');
    expect(landed.searchParams.get('rd')).toBe('/reports?year=2026');
    await expect(page.getByLabel('Password').count()).resolves.toBe(1);
    await anonymous?.close();
  });

  it('Chromium signs in at https://localhost:8443/ and sees the home page', async () => {
    const { page } = browser;
    await page.goto(`${URL}/`);
    expect(new globalThis.URL(page.url()).pathname).toBe('/auth/login');
    const answer = await submitLogin(page, 'alice', PASSWORD);
    expect(answer.status()).toBe(303);
    expect(new globalThis.URL(page.url()).pathname).toBe('/');
    await expect(page.locator('h1').textContent()).resolves.toContain('Welcome, alice');
    const cookies = await browser.context.cookies(URL);
    const session = cookies.find((c) => c.name === COOKIE);
    expect(session?.secure).toBe(true);
    expect(session?.httpOnly).toBe(true);
  });

  /** The browser's session cookie, for requests made outside it. */
  async function sessionCookie(): Promise<string> {
    const cookies = await browser.context.cookies(URL);
    const session = cookies.find((c) => c.name === COOKIE);
    if (!session) throw new Error('the browser holds no session cookie');
    return `${COOKIE}=${session.value}`;
  }

  it('Redis restarted: still signed in (the session is in Redis, persisted)', async () => {
    const before = await sessionCookie();
    project.ok(['restart', 'redis']);
    await untilHealthy();
    // Asked of the session-service itself (/auth/validate is never cached by the gateway).
    await until(
      async () =>
        (
          await client().fetch(`${URL}/auth/validate`, {
            headers: { cookie: before, ...JSON_ACCEPT },
          })
        ).status === 200,
      30_000,
      () => 'validate after the Redis restart',
    );
    await browser.page.reload();
    await expect(browser.page.locator('h1').textContent()).resolves.toContain('Welcome, alice');
  });

  it('session-service stopped: 503 with its stable code, /auth/login included; started again: the same session', async () => {
    const cookie = await sessionCookie();
    project.ok(['stop', 'session-service']);
    const api = client();
    await until(
      async () =>
        (await api.fetch(`${URL}/`, { headers: { cookie, ...JSON_ACCEPT } })).status === 503,
      20_000,
      () => 'the gateway answering 503 with the session-service stopped',
    );
    const requests: [string, string, Record<string, string>][] = [
      ['GET', '/', { cookie, ...JSON_ACCEPT }],
      ['GET', '/anything/else', JSON_ACCEPT],
      ['GET', '/auth/login', JSON_ACCEPT],
      ['POST', '/auth/login', { ...JSON_ACCEPT, 'content-type': 'application/json' }],
      ['GET', '/auth/validate', { cookie, ...JSON_ACCEPT }],
    ];
    for (const [method, path, headers] of requests) {
      const res = await api.fetch(`${URL}${path}`, {
        method,
        headers,
        ...(method === 'POST'
          ? { body: JSON.stringify({ username: 'alice', password: PASSWORD }) }
          : {}),
      });
      expect(res.status, `${method} ${path}`).toBe(503);
      expect(await res.json(), `${method} ${path}`).toMatchObject({
        error: 'SESSION_SERVICE_UNAVAILABLE',
      });
    }
    // The browser too: an error page, not the app and not a login form that cannot work.
    const shown = await browser.page.goto(`${URL}/auth/login`);
    expect(shown?.status()).toBe(503);

    project.ok(['start', 'session-service']);
    await untilHealthy();
    await until(
      async () =>
        (await api.fetch(`${URL}/`, { headers: { cookie, ...JSON_ACCEPT } })).status === 200,
      30_000,
      () => 'the same session accepted again',
    );
    await browser.page.goto(`${URL}/`);
    await expect(browser.page.locator('h1').textContent()).resolves.toContain('Welcome, alice');
  });

  it('gateway scaled to two replicas behind nginx: sessions and revocations hold on both', async () => {
    project.ok(['up', '-d', '--scale', 'gateway=2', '--no-recreate']);
    await until(
      () => project.containers('gateway').length === 2,
      60_000,
      () => 'two gateway containers',
    );
    await untilHealthy();
    // nginx resolves the gateway's name when it loads its configuration (docs: reload after scaling).
    project.ok(['exec', '-T', 'nginx', 'nginx', '-s', 'reload']);

    const cookie = await sessionCookie();
    const gateways = project.containers('gateway');
    const from = gateways[0] as string;
    const ask = (address: string) =>
      nodeIn(
        from,
        `fetch('http://${address}:8080/api/whoami', { headers: { cookie: ${JSON.stringify(cookie)}, accept: 'application/json' } })` +
          '.then(async (r) => console.log(r.status, (await r.text()).slice(0, 300)))',
      );
    const addresses = gateways.map(containerAddress);
    for (const address of addresses) {
      const answer = ask(address);
      // The demo-app's /api/whoami: what the backend received through this replica.
      expect(answer, address).toMatch(/^200 \{/);
      expect(answer, address).toContain('"alice"');
      expect(answer, address).toContain('"signed":true');
    }
    // Through nginx: every request is served, whichever replica takes it.
    for (let i = 0; i < 10; i++) {
      const res = await client().fetch(`${URL}/`, { headers: { cookie, ...JSON_ACCEPT } });
      expect(res.status).toBe(200);
    }

    // Sign out in the browser: both replicas refuse the old cookie at once.
    const signedOut = Date.now();
    await Promise.all([
      browser.page.waitForURL((url) => url.pathname === '/auth/login'),
      browser.page.getByRole('button', { name: 'Sign out' }).click(),
    ]);
    for (const address of addresses) {
      await until(
        () => /^401 /.test(ask(address)),
        5_000,
        () => `gateway ${address} refusing the signed-out session`,
        50,
      );
    }
    timings.revokedOnBoth = since(signedOut);
  });

  it('down -v leaves nothing behind', () => {
    project.ok(['down', '-v', '--timeout', '5']);
    expect(project.leftovers()).toEqual([]);
  });
});
