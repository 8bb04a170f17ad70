/**
 * Cross-site WebSocket hijacking, tried in a real browser. Chromium sends the SameSite=Lax session
 * cookie with a WebSocket handshake from any page of the same site (another port of the same
 * name, a sibling subdomain), and a handshake is not subject to CORS: without the gateway's
 * origin check (gateway/src/origin.ts) such a page would talk to Alice's backend as Alice. Every
 * page below really runs `new WebSocket(...)` in Chromium; a refused one must fail (403
 * ORIGIN_NOT_ALLOWED) before the session-service or the upstream hears of it.
 *
 * Over 300 lines: the pages, origins and log readers at the top serve every case, over one
 * browser and one system.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/ports.js';
import { type System, startSystem } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { writeTestUsers } from '../helpers/users.js';
import { startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.js';
import { launchBrowser, type Noted, settleAll, submitLogin, type TestBrowser } from './browser.js';
import { htmlPage, type PageServer, startPages } from './pages.js';

const PASSWORD = 'correct horse battery';
/** Made-up names, resolved by Chromium itself to 127.0.0.1 (no DNS). */
const HOSTS =
  '--host-resolver-rules=MAP intranet.test 127.0.0.1, MAP *.intranet.test 127.0.0.1, MAP evil.test 127.0.0.1';
/** No favicon request (its 404 would be one more console error). */
const NO_ICON = '<link rel="icon" href="data:,">';

/**
 * A page that opens a WebSocket to `?to=` (default: its own host's /live), sends `hello`, and
 * reports what happened as `window.wsResult` (and to its parent, when it is a frame).
 * A string, not a function, so that no transpiler helper ends up in the browser.
 */
const PROBE = `<p id="state">connecting</p>
<script>
(() => {
  const to = new URLSearchParams(location.search).get('to') || 'ws://' + location.host + '/live';
  const events = [];
  let echo = null;
  const report = (result) => {
    window.wsResult = result;
    document.getElementById('state').textContent = JSON.stringify(result);
    if (window.parent !== window) window.parent.postMessage(result, '*');
  };
  const ws = new WebSocket(to);
  ws.onopen = () => { events.push('open'); ws.send('hello'); };
  ws.onmessage = (e) => { echo = String(e.data); ws.close(1000, 'done'); };
  ws.onerror = () => events.push('error');
  ws.onclose = (e) => { events.push('close'); report({ to, events, code: e.code, echo }); };
})();
</script>`;

/** What a probe page reports. */
interface WsResult {
  to: string;
  events: string[];
  code: number;
  echo: string | null;
}

/** What a refused handshake looks like from inside the page: an error, then close 1006, never open. */
const REFUSED = { events: ['error', 'close'], code: 1006, echo: null };

let redis: RedisServer;
let system: System;
let upstream: WsUpstream;
/** The application behind the gateway (`/`): its pages are the gateway's own origin. */
let app: PageServer;
/** Other origins' pages (/probe), under whichever name Chromium reaches it by. */
let attacker: PageServer;
let alice: TestBrowser;
/** http://intranet.test:<gateway port> */
let lan: string;
/** ws://intranet.test:<gateway port> */
let wsBase: string;
/** The attacker server under `host`: http://<host>:<its port>. */
const at = (host: string) => `http://${host}:${attacker.port}`;

beforeAll(async () => {
  const users = await writeTestUsers([{ username: 'alice', password: PASSWORD }]);
  [redis, upstream, app, attacker] = await Promise.all([
    startRedis(),
    startWsUpstream(),
    startPages({
      '/': () => ({ html: htmlPage('Live', PROBE, NO_ICON) }),
      // The app's own page framing itself in a sandbox: the frame's origin is opaque (Origin: null).
      '/framed': () => ({
        html: htmlPage(
          'Framed',
          `<iframe sandbox="allow-scripts" src="/"></iframe>
<script>addEventListener('message', (e) => { window.wsResult = e.data; });</script>`,
          NO_ICON,
        ),
      }),
    }),
    startPages({ '/probe': () => ({ html: htmlPage('Win a prize', PROBE, NO_ICON) }) }),
  ]);
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-ws-origin-'));
  const routesFile = join(dir, 'routes.yaml');
  writeFileSync(
    routesFile,
    `routes:
  - id: app
    upstream: http://127.0.0.1:${app.port}
  - id: live
    path: /live
    upstream: ${upstream.url}
  - id: partner-live
    path: /partner-live
    upstream: ${upstream.url}
    websocketOrigins: ['${at('partner.intranet.test')}']
  # The attacker's own origins, listed: what their handshakes carry once the origin check lets
  # them through (the witness that the refusals on /live are the origin check, not a lost cookie).
  - id: witness
    path: /witness
    upstream: ${upstream.url}
    websocketOrigins: ['${at('intranet.test')}', '${at('evil.intranet.test')}', '${at('evil.test')}']
`,
  );
  await settleAll([
    startSystem({
      redisUrl: redis.url,
      usersFile: users.path,
      // Every validate reaches the session-service (no cache), which logs each request with the
      // gateway's request id (debug): so its log shows which handshakes it heard of.
      gatewayEnv: { GATEWAY_ROUTES: routesFile, VALIDATE_CACHE_TTL_MS: '0' },
      sessionEnv: { LOG_LEVEL: 'debug' },
    }).then((s) => {
      system = s;
    }),
    launchBrowser({ args: [HOSTS] }).then((b) => {
      alice = b;
    }),
  ]);
  lan = `http://intranet.test:${system.gateway.port}`;
  wsBase = `ws://intranet.test:${system.gateway.port}`;

  const { page } = alice;
  await page.goto(`${lan}/auth/login?rd=/`);
  expect((await submitLogin(page, 'alice', PASSWORD)).status()).toBe(303);
  await page.waitForURL(`${lan}/`);
  const cookies = await alice.context.cookies(lan);
  expect(cookies.find((c) => c.name === 'gatehouse')?.sameSite).toBe('Lax');
});

afterAll(async () => {
  await alice?.close();
  await system?.stop();
  await upstream?.close();
  await Promise.all([app?.close(), attacker?.close()]);
  await redis?.stop();
});

/** What Chromium prints about any plain-HTTP page of ours (COOP and the like ignored there). */
const insecureOriginNote = (n: Noted) =>
  n.kind === 'console' &&
  (n.text.startsWith('The Cross-Origin-Opener-Policy header has been ignored, because the URL') ||
    n.text.startsWith('The page requested an origin-keyed agent cluster'));
/** Chromium's console line for a handshake answered `status` instead of 101. */
const handshakeFailed = (to: string, status: number) => (n: Noted) =>
  n.kind === 'console' &&
  n.type === 'error' &&
  n.text ===
    `WebSocket connection to '${to}' failed: Error during WebSocket handshake: Unexpected response code: ${status}`;

/** Open `url` in Alice's browser and wait for its WebSocket to end. */
async function probe(url: string): Promise<WsResult> {
  const { page } = alice;
  await page.goto(url);
  const handle = await page.waitForFunction('window.wsResult', undefined, { timeout: 10_000 });
  return (await handle.jsonValue()) as WsResult;
}

/** The attacker page at `base` opening `path` on the gateway. */
const attack = (base: string, path: string) =>
  probe(`${base}/probe?to=${encodeURIComponent(`${wsBase}${path}`)}`);

interface LogLine {
  msg: string;
  requestId?: string;
  route?: string;
  origin?: string;
  reason?: string;
  path?: string;
  status?: number;
}
/** A process's JSON log lines so far (a line still being written is skipped). */
const logLines = (output: string): LogLine[] =>
  output.split('\n').flatMap((l) => {
    try {
      return l.startsWith('{') ? [JSON.parse(l) as LogLine] : [];
    } catch {
      return [];
    }
  });
const refusals = () =>
  logLines(system.gateway.output()).filter((l) => l.msg === 'websocket origin refused');
/** Upgrades the gateway answered with an error status (any check), in order. */
const refused = () =>
  logLines(system.gateway.output()).filter((l) => l.msg === 'websocket refused');
const opened = () => logLines(system.gateway.output()).filter((l) => l.msg === 'websocket opened');
/** Whether the session-service logged a request with this id (the gateway forwards its id). */
const sessionServiceHeard = (requestId: string | undefined) =>
  requestId !== undefined &&
  logLines(system.sessionService.output()).some((l) => l.requestId === requestId);

/**
 * Runs `open` (a page opening a socket) and expects it refused by the origin check: the page
 * saw an error and close 1006, Chromium logged a 403 answer, the gateway logged the refusal with
 * the page's Origin, and neither the upstream nor the session-service heard of it.
 */
async function expectRefused(
  open: () => Promise<WsResult>,
  expected: { to: string; origin: string; route: string },
) {
  const attempts = upstream.attempts;
  const before = refusals().length;
  const result = await open();
  expect(result, expected.origin).toEqual({ to: expected.to, ...REFUSED });
  // 403 (ORIGIN_NOT_ALLOWED), not 401: it never got as far as the session.
  expect(
    await alice.takeWhenNoted(handshakeFailed(expected.to, 403)),
    `${expected.origin}: Chromium saw 403`,
  ).toHaveLength(1);
  await waitFor(() => refusals().length > before, 5_000, 'the gateway to log the refusal');
  const logged = refusals().slice(before);
  expect(logged).toHaveLength(1);
  expect(logged[0]).toMatchObject({ route: expected.route, origin: expected.origin });
  const id = logged[0]?.requestId;
  await waitFor(() => refused().some((l) => l.requestId === id), 5_000, 'the 403 to be logged');
  expect(refused().find((l) => l.requestId === id)?.status).toBe(403);
  expect(sessionServiceHeard(id), 'the session-service heard of it').toBe(false);
  expect(upstream.attempts, 'the upstream saw an upgrade').toBe(attempts);
}

/** Runs `open` and expects it to echo through the upstream, as Alice, with `origin`. */
async function expectOpened(open: () => Promise<WsResult>, origin: string, path: string) {
  const count = upstream.connections.length;
  const before = opened().length;
  const result = await open();
  expect(result.events, origin).toEqual(['open', 'close']);
  expect(result.echo).toBe('echo:hello');
  expect(result.code).toBe(1000);
  const connection = await upstream.waitForConnections(count + 1);
  expect(connection.url).toBe(path);
  expect(connection.header('origin')).toEqual([origin]);
  expect(connection.header('x-auth-request-user')).toEqual(['alice']);
  await expect.poll(() => connection.messages).toEqual(['hello']);
  // The control for sessionServiceHeard(): an admitted handshake's id is in its log.
  await waitFor(() => opened().length > before, 5_000, 'the gateway to log the socket');
  const id = opened()[before]?.requestId;
  await waitFor(() => sessionServiceHeard(id), 5_000, `the session-service to log ${id}`);
}

describe('Alice, signed in on a plain-HTTP intranet name (http://intranet.test:<port>)', () => {
  it("opens a socket from the gateway's own page: it echoes, and the upstream hears Alice", async () => {
    await expectOpened(() => probe(`${lan}/`), lan, '/live');
  });

  describe('a page of another origin opening ws://intranet.test:<gateway port>/live', () => {
    const cases = [
      ['another port of the same name (same site: the cookie goes along)', 'intranet.test'],
      ['a sibling subdomain (same site: the cookie goes along)', 'evil.intranet.test'],
      ['another site', 'evil.test'],
    ] as const;

    for (const [what, host] of cases)
      it(`is refused with 403 before the session-service and the upstream hear of it: ${what}`, async () => {
        await expectRefused(() => attack(at(host), '/live'), {
          to: `${wsBase}/live`,
          origin: at(host),
          route: 'live',
        });
      });
  });

  it("is refused from a sandboxed frame of the app's own page (Origin: null)", async () => {
    await expectRefused(() => probe(`${lan}/framed`), {
      to: `${wsBase}/live`,
      origin: 'null',
      route: 'live',
    });
  });

  it("the same-site pages do send Alice's cookie: where their origin is listed, they open as Alice (another site gets 401)", async () => {
    // The same browser, pages and cookie as the refusals above, on a route that lists these
    // origins: the handshake then reaches the session check, and same-site pages pass it.
    await expectOpened(
      () => attack(at('intranet.test'), '/witness'),
      at('intranet.test'),
      '/witness',
    );
    await expectOpened(
      () => attack(at('evil.intranet.test'), '/witness'),
      at('evil.intranet.test'),
      '/witness',
    );
    // Another site's handshake carries no Lax cookie: 401, so the same-site ones above were Alice.
    const attempts = upstream.attempts;
    const before = refused().length;
    const result = await attack(at('evil.test'), '/witness');
    expect(result).toEqual({ to: `${wsBase}/witness`, ...REFUSED });
    // Chromium words a 401 to a handshake as an authentication failure.
    const failed = `WebSocket connection to '${wsBase}/witness' failed: `;
    expect(
      await alice.takeWhenNoted((n) => n.type === 'error' && n.text.startsWith(failed)),
    ).toHaveLength(1);
    await waitFor(() => refused().length > before, 5_000, 'the gateway to log the 401');
    expect(refused().slice(before)).toMatchObject([{ path: '/witness', status: 401 }]);
    expect(upstream.attempts).toBe(attempts);
  });

  describe('a partner origin listed on /partner-live (http://partner.intranet.test:<port>)', () => {
    it('opens /partner-live, as Alice', async () => {
      const partner = at('partner.intranet.test');
      await expectOpened(() => attack(partner, '/partner-live'), partner, '/partner-live');
    });

    it('is refused on /live, which does not list it', async () => {
      await expectRefused(() => attack(at('partner.intranet.test'), '/live'), {
        to: `${wsBase}/live`,
        origin: at('partner.intranet.test'),
        route: 'live',
      });
    });
  });

  it('printed nothing else in the console', () => {
    expect(alice.take(() => true).filter((n) => !insecureOriginNote(n))).toEqual([]);
  });
});
