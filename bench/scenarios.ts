/** What the benchmark loads: the scenarios (a) to (g), each a URL on the running bench system. */
import type { Scenario } from './load.js';
import { BENCH_PASSWORD, BENCH_USER, type BenchSystem } from './system.js';

/** The scenarios measured in rounds; `compare` adds the same-run comparisons (c0). */
export function scenariosOf(system: BenchSystem, compare: boolean): Scenario[] {
  const html = { accept: 'text/html' };
  const session = { ...html, cookie: system.sessionCookie };
  const scenarios: Scenario[] = [
    {
      key: 'a',
      title: '(a) demo-app direct, no auth',
      url: `${system.demoPlain.url}/`,
      headers: { ...html, 'x-auth-request-user': BENCH_USER, 'x-auth-request-groups': 'bench' },
    },
    {
      key: 'b',
      title: '(b) gateway, authenticated page',
      url: `${system.gateway.url}/`,
      headers: session,
    },
    {
      key: 'e',
      title: '(e) origin-article app (baseline)',
      url: `${system.baseline.url}/`,
      headers: { ...html, cookie: system.baselineCookie },
    },
  ];
  const uncached = system.variants.get('no cache');
  if (uncached)
    scenarios.push({
      key: 'b0',
      title: '(b) without the validation cache',
      url: `${uncached.url}/`,
      headers: session,
    });
  // nginx as deployed: TLS (autocannon keeps connections alive, so only the record cost remains).
  if (system.nginx)
    scenarios.push({
      key: 'd',
      title: '(d) nginx auth_request + demo-app',
      url: `${system.nginx.httpsUrl}/`,
      headers: session,
    });
  // Caddy's forward_auth as examples/caddy/Caddyfile has it (TLS too): the other alternative.
  if (system.caddy)
    scenarios.push({
      key: 'd2',
      title: '(d2) Caddy forward_auth + demo-app',
      url: `${system.caddy.url}/`,
      headers: session,
    });
  scenarios.push(
    {
      key: 'c',
      title: '(c) validate API alone',
      url: `${system.sessionService.url}/auth/validate`,
      headers: { cookie: system.sessionCookie },
    },
    { key: 'f', title: '(f) Express hello-world', url: `${system.hello.url}/` },
  );
  // The same validate through the Express router (`/auth/validate/` takes the Express route):
  // the effect of serving `/auth/validate` before the router, in the same run.
  if (compare)
    scenarios.push({
      key: 'c0',
      title: '(c) through the Express router',
      url: `${system.sessionService.url}/auth/validate/`,
      headers: { cookie: system.sessionCookie },
    });
  return scenarios;
}

/** (g): logins flat out (argon2id), measured alongside validate rather than in the rounds. */
export function loginScenario(system: BenchSystem): Scenario {
  return {
    key: 'g',
    title: '(g) JSON login (argon2id)',
    url: `${system.sessionService.url}/auth/login`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: BENCH_USER, password: BENCH_PASSWORD }),
    connections: 8,
  };
}
