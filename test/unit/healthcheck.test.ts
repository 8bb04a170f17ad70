import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { healthUrl, runningService } from '../../scripts/healthcheck.js';

// The image's HEALTHCHECK finds the service from the container's processes (/proc/<pid>/cmdline,
// NUL-separated argv) and asks it on the address and port its environment sets.
let proc: string;
afterEach(() => rmSync(proc, { recursive: true, force: true }));

function processes(table: Record<string, string[]>): string {
  proc = mkdtempSync(join(tmpdir(), 'gatehouse-proc-'));
  for (const [pid, argv] of Object.entries(table)) {
    mkdirSync(join(proc, pid));
    writeFileSync(join(proc, pid, 'cmdline'), `${argv.join('\0')}\0`);
  }
  mkdirSync(join(proc, 'self')); // not a pid: skipped
  return proc;
}

describe('runningService', () => {
  it.each([
    [['node', 'dist/gateway/src/main.js'], 'gateway'],
    [['node', 'dist/session-service/src/main.js'], 'session-service'],
    [['node', '/app/dist/demo-app/src/main.js'], 'demo-app'],
    [['/sbin/tini', '--', 'node', 'dist/gateway/src/main.js'], 'gateway'],
    [['node', 'dist/session-service/src/cli/users.js', 'list'], undefined],
    [['node', 'dist/scripts/dev-cert.js', '/certs'], undefined],
    [['node', 'dist/evil/src/main.js'], undefined],
    [['sh'], undefined],
  ])('%j -> %s', (argv, service) => {
    expect(runningService(processes({ '1': argv, '27': ['sh', '-c', 'sleep 1'] }))).toBe(service);
  });
});

describe('healthUrl', () => {
  it.each([
    ['gateway', {}, 'http://127.0.0.1:8080/_gatehouse/healthz'],
    [
      'gateway',
      { GATEWAY_HOST: '0.0.0.0', GATEWAY_PORT: '9000' },
      'http://127.0.0.1:9000/_gatehouse/healthz',
    ],
    ['session-service', { SESSION_SERVICE_HOST: '::' }, 'http://127.0.0.1:4000/readyz'],
    [
      'session-service',
      { SESSION_SERVICE_HOST: '10.0.0.5', SESSION_SERVICE_PORT: '4100' },
      'http://10.0.0.5:4100/readyz',
    ],
    ['demo-app', { DEMO_APP_HOST: 'fd00::5' }, 'http://[fd00::5]:3000/healthz'],
  ] as const)('%s %j -> %s', (service, env, url) => {
    expect(healthUrl(service, env)).toBe(url);
  });
});
