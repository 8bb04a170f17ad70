/**
 * `npm run doctor` checks the identity sources of IDENTITY_SOURCES_FILE as the session-service
 * would reach them: the LDAP service account's bind against a real OpenLDAP (up, down, a refused
 * password, a refused certificate) and each OpenID Connect provider's discovery document against
 * the real test provider (up, down, an issuer that is not the provider's). The doctor runs as a
 * real process, asynchronously (the provider answers from this process); secrets never printed.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OidcProviderHandle, startOidcProvider } from '../helpers/oidc-provider.js';
import { freePort, reservedDeadPort } from '../helpers/ports.js';
import { ROOT } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { type ProcessResult, runToExit } from '../helpers/run-process.js';
import { PEOPLE_DN, SERVICE_DN, type Slapd, startSlapd } from '../helpers/slapd.js';

const CLIENT_SECRET = 'doctor-client-secret-do-not-print';
const WRONG_BIND_PASSWORD = 'wrong-bind-password-do-not-print';

let redis: RedisServer;
let slapd: Slapd;
let op: OidcProviderHandle;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-doctor-sources-'));
  [redis, slapd, op] = await Promise.all([
    startRedis(),
    startSlapd(),
    startOidcProvider({
      clients: [
        {
          client_id: 'gatehouse',
          client_secret: CLIENT_SECRET,
          redirect_uris: ['http://localhost:8080/auth/oidc/corp/callback'],
        },
      ],
      accounts: {},
    }),
  ]);
  writeFileSync(join(dir, 'ca.pem'), slapd.caPem);
  writeFileSync(join(dir, 'other-ca.pem'), slapd.otherCaPem);
});

afterAll(async () => {
  await Promise.all([slapd?.close(), op?.close(), redis?.stop()]);
});

let fileCounter = 0;
/** An identity sources file (JSON is YAML) with these parts; its path. */
function sourcesFile(sources: { ldap?: Record<string, unknown>; oidc?: unknown[] }): string {
  const file = join(dir, `sources-${++fileCounter}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      ...(sources.oidc ? { oidc: sources.oidc } : {}),
      ...(sources.ldap
        ? {
            ldap: {
              url: slapd.ldapUrl,
              startTls: true,
              caFile: join(dir, 'ca.pem'),
              bindDn: SERVICE_DN,
              bindPasswordEnv: 'LDAP_BIND_PASSWORD',
              userBase: PEOPLE_DN,
              timeoutMs: 2000,
              ...sources.ldap,
            },
          }
        : {}),
    }),
  );
  return file;
}

const provider = (issuer: string) => ({
  id: 'corp',
  name: 'Corp',
  issuer,
  clientId: 'gatehouse',
  clientSecretEnv: 'OIDC_CLIENT_SECRET',
});

/** `npm run doctor` as a real process (bare environment, free ports, Redis up), not blocking us. */
async function doctor(env: Record<string, string>): Promise<ProcessResult> {
  const run = await runToExit(process.execPath, ['--import', 'tsx', 'scripts/doctor.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      USERS_FILE: '/nonexistent/users.json',
      REDIS_URL: redis.url,
      PUBLIC_URL: 'http://localhost:8080',
      GATEWAY_PORT: String(await freePort()),
      SESSION_SERVICE_PORT: String(await freePort()),
      DEMO_APP_PORT: String(await freePort()),
      LDAP_BIND_PASSWORD: slapd.servicePassword,
      OIDC_CLIENT_SECRET: CLIENT_SECRET,
      ...env,
    },
    timeoutMs: 30_000,
  });
  // Whatever it says, it never prints a secret.
  for (const secret of [slapd.servicePassword, CLIENT_SECRET, WRONG_BIND_PASSWORD])
    expect(run.output).not.toContain(secret);
  return run;
}

const lineWith = (run: ProcessResult, text: string) =>
  run.stdout.split('\n').find((line) => line.includes(text)) ?? '';

describe('npm run doctor: the LDAP directory', { timeout: 60_000 }, () => {
  it('slapd up (StartTLS, the test CA): an ok line for the service account’s bind, exit 0', async () => {
    const run = await doctor({ IDENTITY_SOURCES_FILE: sourcesFile({ ldap: {} }) });
    expect(lineWith(run, 'LDAP directory')).toBe(
      `[ ok ] the LDAP directory at ${slapd.ldapUrl} (StartTLS) accepts the service account's bind (${SERVICE_DN})`,
    );
    expect(run.stdout).toContain('Ready: npm start');
    expect(run.code, run.stdout).toBe(0);
  });

  it('ldaps:// with the test CA: ok', async () => {
    const file = sourcesFile({ ldap: { url: slapd.ldapsUrl, startTls: false } });
    const run = await doctor({ IDENTITY_SOURCES_FILE: file });
    expect(lineWith(run, 'LDAP directory')).toMatch(/^\[ ok \] the LDAP directory at ldaps:\/\//);
    expect(run.code, run.stdout).toBe(0);
  });

  it('a wrong bind password: a failing line saying the bind was refused, no password printed, exit 1', async () => {
    const run = await doctor({
      IDENTITY_SOURCES_FILE: sourcesFile({ ldap: {} }),
      LDAP_BIND_PASSWORD: WRONG_BIND_PASSWORD,
    });
    expect(lineWith(run, 'LDAP directory')).toBe(
      `[FAIL] the LDAP directory at ${slapd.ldapUrl} (StartTLS): the service account's bind (${SERVICE_DN}) was refused: invalid credentials`,
    );
    expect(run.stdout).toContain(
      'fix: check bindDn and the password in the environment variable LDAP_BIND_PASSWORD',
    );
    expect(run.code, run.stdout).toBe(1);
  });

  it('a certificate that does not chain to caFile: a failing line naming the URL, exit 1', async () => {
    const file = sourcesFile({
      ldap: { url: slapd.ldapsUrl, startTls: false, caFile: join(dir, 'other-ca.pem') },
    });
    const run = await doctor({ IDENTITY_SOURCES_FILE: file });
    const line = lineWith(run, 'LDAP directory');
    expect(line).toMatch(/^\[FAIL\] /);
    expect(line).toContain(`the LDAP directory at ${slapd.ldapsUrl} does not answer: `);
    expect(line).not.toContain('invalid credentials');
    expect(run.stdout).toContain('chains to caFile');
    expect(run.code, run.stdout).toBe(1);
  });

  it('nothing listening at the URL: a failing line naming the URL, exit 1', async () => {
    const url = `ldap://127.0.0.1:${await reservedDeadPort()}`;
    const run = await doctor({ IDENTITY_SOURCES_FILE: sourcesFile({ ldap: { url } }) });
    const line = lineWith(run, 'LDAP directory');
    expect(line).toMatch(
      new RegExp(
        `^\\[FAIL\\] the LDAP directory at ${url} \\(StartTLS\\) does not answer: .*ECONNREFUSED`,
      ),
    );
    expect(run.stdout).toContain('problem(s) to fix before npm start');
    expect(run.code, run.stdout).toBe(1);
  });

  // Last of these: it stops the server.
  it('slapd stopped: a failing line naming the URL, exit 1; started again: ok', async () => {
    const file = sourcesFile({ ldap: {} });
    await slapd.stop();
    try {
      const run = await doctor({ IDENTITY_SOURCES_FILE: file });
      expect(lineWith(run, 'LDAP directory')).toMatch(
        /^\[FAIL\] the LDAP directory at ldap:\/\/127\.0\.0\.1:\d+ \(StartTLS\) does not answer: /,
      );
      expect(lineWith(run, 'LDAP directory')).toContain(slapd.ldapUrl);
      expect(run.code, run.stdout).toBe(1);
    } finally {
      await slapd.start();
    }
    const again = await doctor({ IDENTITY_SOURCES_FILE: file });
    expect(again.code, again.stdout).toBe(0);
  });
});

describe('npm run doctor: OpenID Connect providers', { timeout: 60_000 }, () => {
  it('the provider’s discovery answers with its issuer: an ok line, exit 0', async () => {
    const run = await doctor({
      IDENTITY_SOURCES_FILE: sourcesFile({ oidc: [provider(op.issuer)] }),
    });
    expect(lineWith(run, 'OpenID Connect')).toBe(
      `[ ok ] OpenID Connect provider "corp" answers discovery at ${op.issuer}/.well-known/openid-configuration`,
    );
    expect(run.code, run.stdout).toBe(0);
    expect(op.requests.some((r) => r.path === '/.well-known/openid-configuration')).toBe(true);
  });

  it('an issuer that is not what the document says (127.0.0.1 for localhost): fail', async () => {
    const issuer = op.issuer.replace('//localhost:', '//127.0.0.1:');
    const run = await doctor({ IDENTITY_SOURCES_FILE: sourcesFile({ oidc: [provider(issuer)] }) });
    expect(lineWith(run, 'OpenID Connect')).toMatch(
      /^\[FAIL\] OpenID Connect provider "corp": discovery at http:\/\/127\.0\.0\.1:\d+\/\.well-known\/openid-configuration failed: /,
    );
    expect(lineWith(run, 'OpenID Connect')).toContain(`the document's issuer is "${op.issuer}"`);
    expect(run.code, run.stdout).toBe(1);
  });

  it('nothing listening at the issuer: a failing line naming the discovery URL, exit 1', async () => {
    const issuer = `http://localhost:${await reservedDeadPort()}`;
    const file = sourcesFile({ oidc: [provider(issuer)], ldap: {} });
    const run = await doctor({ IDENTITY_SOURCES_FILE: file });
    expect(lineWith(run, 'OpenID Connect')).toContain(
      `[FAIL] OpenID Connect provider "corp": discovery at ${issuer}/.well-known/openid-configuration failed: `,
    );
    // The other source is still checked.
    expect(lineWith(run, 'LDAP directory')).toMatch(/^\[ ok \]/);
    expect(run.code, run.stdout).toBe(1);
  });

  it('the provider stopped: fail; started again: ok', async () => {
    const file = sourcesFile({ oidc: [provider(op.issuer)] });
    await op.stop();
    try {
      const run = await doctor({ IDENTITY_SOURCES_FILE: file });
      expect(lineWith(run, 'OpenID Connect')).toMatch(/^\[FAIL\] .*: discovery at .* failed: /);
      expect(run.code, run.stdout).toBe(1);
    } finally {
      await op.start();
    }
    const again = await doctor({ IDENTITY_SOURCES_FILE: file });
    expect(again.code, again.stdout).toBe(0);
  });
});
