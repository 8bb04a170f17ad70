/**
 * `session-service --check-config` with IDENTITY_SOURCES_FILE (issue 15): a broken file exits 1
 * naming every problem, the file's and the variables' together, without a stack trace; a good
 * one exits 0; providers without PUBLIC_URL are named (their callback is built from it).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, TEST_ENCRYPTION_KEY, TEST_INTERNAL_TOKEN } from '../helpers/processes.js';

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-sources-check-'));

/** The whole environment of the check (nothing inherited), secrets set so no dev file is made. */
const BASE_ENV = {
  SESSION_SECRET: 'test-secret-test-secret-test-secret-0123',
  INTERNAL_TOKEN: TEST_INTERNAL_TOKEN,
  SESSION_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY,
};

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function check(env: Record<string, string>) {
  return new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'session-service/src/main.ts', '--check-config'],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', ...BASE_ENV, ...env },
        encoding: 'utf8',
        // generous: a machine busy with other suites compiles slowly (a service that served would
        // never exit, and this would still fail it)
        timeout: 90_000,
      },
      (error, stdout, stderr) =>
        resolve({
          status: error ? (typeof error.code === 'number' ? error.code : null) : 0,
          stdout,
          stderr,
        }),
    );
  });
}

const GOOD = `oidc:
  - id: corp
    name: Corp
    issuer: https://id.example.com
    clientId: gatehouse
    clientSecretEnv: CORP_SECRET
`;

describe('session-service --check-config with IDENTITY_SOURCES_FILE', { timeout: 200_000 }, () => {
  it('a broken file: exit 1, every problem of the file and of the variables listed', async () => {
    const broken = file(
      'broken.yaml',
      `colour: blue
oidc:
  - id: corp
    name: Corp
    issuer: http://id.example.com
    clientId: gatehouse
    clientSecretEnv: CORP_SECRET
    refreshSeconds: 60
  - id: corp
    name: Corp again
    issuer: https://id2.example.com
    clientId: gatehouse
    clientSecretEnv: UNSET_SECRET
ldap:
  url: ldap://ldap.example.com
  bindDn: cn=svc,dc=example,dc=com
  bindPasswordEnv: LDAP_PASSWORD
  bindPasswordFile: /run/secrets/ldap
  userBase: ou=people,dc=example,dc=com
`,
    );
    const result = await check({
      IDENTITY_SOURCES_FILE: broken,
      CORP_SECRET: 'corp-secret',
      PUBLIC_URL: 'https://gatehouse.example.com',
      SESSION_IDLE_TIMEOUT: 'soon',
    });
    expect(result.status, result.stderr).toBe(1);
    expect(result.stderr).toContain('invalid configuration');
    const expected = [
      'SESSION_IDLE_TIMEOUT',
      `${broken}: Unrecognized key: "colour"`,
      `${broken}: oidc[0] (corp).issuer: must be an https:// URL`,
      `${broken}: oidc[0] (corp).refreshSeconds: needs a refresh token`,
      `${broken}: oidc[1] (corp).id: corp is used twice`,
      `${broken}: ldap.bindPasswordEnv: set exactly one of bindPasswordEnv or bindPasswordFile`,
      `${broken}: oidc[1] (corp).clientSecretEnv: UNSET_SECRET is not set`,
      `${broken}: ldap.bindPasswordEnv: LDAP_PASSWORD is not set`,
    ];
    for (const problem of expected) expect(result.stderr).toContain(problem);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(result.stdout).toBe('');
  });

  it('YAML that does not parse: exit 1 naming the line, with the variables too', async () => {
    const bad = file('unparsable.yaml', 'oidc:\n  - id: corp\n   name: x\n');
    const result = await check({ IDENTITY_SOURCES_FILE: bad, SESSION_IDLE_TIMEOUT: '-1' });
    expect(result.status, result.stderr).toBe(1);
    expect(result.stderr).toMatch(
      new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: `),
    );
    expect(result.stderr).toContain('SESSION_IDLE_TIMEOUT');
  });

  it('a file that cannot be read: exit 1 naming it', async () => {
    const result = await check({ IDENTITY_SOURCES_FILE: join(dir, 'missing.yaml') });
    expect(result.status, result.stderr).toBe(1);
    expect(result.stderr).toContain(
      `IDENTITY_SOURCES_FILE: cannot read ${join(dir, 'missing.yaml')}: ENOENT`,
    );
  });

  it('providers without PUBLIC_URL: exit 1 naming PUBLIC_URL', async () => {
    const good = file('no-public-url.yaml', GOOD);
    const result = await check({ IDENTITY_SOURCES_FILE: good, CORP_SECRET: 'corp-secret' });
    expect(result.status, result.stderr).toBe(1);
    expect(result.stderr).toContain('PUBLIC_URL: is required with OpenID Connect providers');
  });

  it('a good file with PUBLIC_URL: exit 0 without serving', async () => {
    const good = file('good.yaml', GOOD);
    const result = await check({
      IDENTITY_SOURCES_FILE: good,
      CORP_SECRET: 'corp-secret',
      PUBLIC_URL: 'https://gatehouse.example.com',
    });
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toBe('configuration is valid\n');
    // an LDAP-only file needs no PUBLIC_URL
    const ldap = file(
      'ldap-only.yaml',
      `ldap:
  url: ldaps://ldap.example.com
  bindDn: cn=svc,dc=example,dc=com
  bindPasswordEnv: LDAP_PASSWORD
  userBase: ou=people,dc=example,dc=com
`,
    );
    const ldapResult = await check({ IDENTITY_SOURCES_FILE: ldap, LDAP_PASSWORD: 'x' });
    expect(ldapResult.status, ldapResult.stderr).toBe(0);
  });
});
