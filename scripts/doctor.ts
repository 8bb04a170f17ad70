/**
 * `npm run doctor`: checks this machine for running Gatehouse and says what to fix.
 * Node version, Redis (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES reachable with the real
 * client, or redis-server on PATH for npm start), free ports, valid config, the identity sources
 * (each OpenID Connect provider's discovery, the LDAP service account's bind), the users file. Exit 0 when everything needed is in place, 1 otherwise.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { InvalidCredentialsError, ResultCodeError } from 'ldapts';
import { createSentinel } from 'redis';
import { ConfigError } from '../common/src/config.js';
import { sentinelOptions } from '../common/src/redis/node-options.js';
import type { SentinelOptions } from '../common/src/redis/options.js';
import { createOneShotRedis, pingRedis, withDeadline } from '../common/src/redis.js';
import { loadDemoAppConfig } from '../demo-app/src/config.js';
import { loadGatewayConfig } from '../gateway/src/config.js';
import { createLdapDirectory } from '../session-service/src/adapters/ldap-directory.js';
import { createOidcClient } from '../session-service/src/adapters/oidc-client.js';
import {
  loadRedisConnection,
  loadSessionServiceConfig,
  type RedisConnection,
} from '../session-service/src/config.js';
import {
  type IdentitySources,
  loadIdentitySources,
} from '../session-service/src/identity-sources.js';
import { portFree } from './ports.js';

type Result = { ok: boolean; warn?: boolean; label: string; fix?: string };
const results: Result[] = [];
const pass = (label: string) => results.push({ ok: true, label });
const fail = (label: string, fix: string) => results.push({ ok: false, label, fix });
const warn = (label: string, fix: string) => results.push({ ok: true, warn: true, label, fix });

const TOPOLOGY_VARIABLES = ['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'] as const;

const PROBE_TIMEOUT_MS = 1500;
/** Overall deadline of one probe step (connect, PING). */
const PROBE_DEADLINE_MS = 5000;

/**
 * Through the sentinels, once: node-redis's own Sentinel client with the service's options
 * (sentinelOptions: AUTH, TLS, timeouts), but `maxCommandRediscovers: 0`, so that a failed
 * discovery round rejects connect() at once. With the default (16 rounds a second apart, as the
 * service wants) node-redis console.logs each failed round, a stack trace, before giving up.
 */
async function sentinelProblem(connection: SentinelOptions): Promise<string | null> {
  const sentinel = createSentinel({
    ...sentinelOptions(connection, PROBE_TIMEOUT_MS),
    maxCommandRediscovers: 0,
  });
  sentinel.on('error', () => {}); // reported by the rejected connect() or PING below
  try {
    await withDeadline(sentinel.connect(), PROBE_DEADLINE_MS, 'connect');
    return (await withDeadline(sentinel.ping(), PROBE_DEADLINE_MS, 'PING')) === 'PONG'
      ? null
      : 'it does not answer PING';
  } catch (err) {
    return (err as Error).message;
  } finally {
    if (sentinel.isOpen) sentinel.destroy();
  }
}

/**
 * Connect once with the real client (same topology handling, AUTH and TLS as the session-service)
 * and PING; for a Cluster every master must answer. Null when it answers, else why not.
 */
async function redisProblem(connection: RedisConnection): Promise<string | null> {
  if ('sentinel' in connection) return sentinelProblem(connection);
  const redis = createOneShotRedis(connection, PROBE_TIMEOUT_MS);
  try {
    await withDeadline(redis.connect(), PROBE_DEADLINE_MS, 'connect');
    return (await pingRedis(redis, PROBE_TIMEOUT_MS)) ? null : 'it does not answer PING';
  } catch (err) {
    return (err as Error).message;
  } finally {
    try {
      await redis.destroy();
    } catch {
      // never connected
    }
  }
}

async function checkRedis(env: NodeJS.ProcessEnv) {
  const chosen = TOPOLOGY_VARIABLES.filter((name) => (env[name] ?? '').trim() !== '');
  if (chosen.length === 0) {
    const found = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
    if (!found.error && found.status === 0)
      pass(
        `redis-server on PATH (${found.stdout.trim().split(' ')[2] ?? ''}); npm start will run it`,
      );
    else
      fail(
        'no REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES, and no redis-server on PATH',
        'sudo apt-get install redis-server (macOS: brew install redis), or set REDIS_URL',
      );
    return;
  }
  let connection: RedisConnection;
  try {
    connection = loadRedisConnection(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    fail(
      `the Redis settings are invalid:\n      ${err.problems.join('\n      ')}`,
      'set exactly one of REDIS_URL, REDIS_SENTINELS (with REDIS_SENTINEL_NAME), REDIS_CLUSTER_NODES (docs/operations.md)',
    );
    return;
  }
  const problem = await redisProblem(connection);
  if ('sentinel' in connection) {
    const name = connection.sentinel.name;
    if (!problem) pass(`Redis answers through REDIS_SENTINELS (master "${name}")`);
    else
      fail(
        `Redis does not answer through REDIS_SENTINELS (master "${name}"): ${problem}`,
        `check that the sentinels run and monitor "${name}" (sentinel monitor ${name} …), and REDIS_PASSWORD`,
      );
  } else if ('cluster' in connection) {
    if (!problem) pass('Redis Cluster answers at REDIS_CLUSTER_NODES (every master)');
    else
      fail(
        `Redis Cluster does not answer at REDIS_CLUSTER_NODES: ${problem}`,
        'check the nodes (redis-cli --cluster check host:port): every slot needs a live master',
      );
  } else if (!problem) {
    pass('Redis answers at REDIS_URL');
  } else {
    fail('Redis does not answer at REDIS_URL', 'start it, or fix REDIS_URL (redis://host:6379/0)');
  }
}

/** An error and its causes, innermost last: "fetch failed: connect ECONNREFUSED 127.0.0.1:1". */
function causes(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    if (e instanceof ResultCodeError) parts.push(`LDAP result ${e.code} (${e.name})`);
    else if (e instanceof Error) {
      const code = (e as NodeJS.ErrnoException).code;
      parts.push(code && !e.message.includes(code) ? `${code}: ${e.message}` : e.message);
    } else if (typeof e === 'string') parts.push(e);
    else {
      // oauth4webapi's comparison failures: { attribute, expected, body } (a public document).
      const { attribute, body } = e as { attribute?: unknown; body?: Record<string, unknown> };
      if (typeof attribute === 'string' && body && typeof body === 'object')
        parts.push(`the document's ${attribute} is ${JSON.stringify(body[attribute])}`);
    }
    e = e instanceof Error ? e.cause : undefined;
  }
  // Our own wrappers ("The user directory is not reachable…") say less than what they wrap.
  const inner = parts.length > 1 ? parts.slice(1) : parts;
  return [...new Set(inner)].join(': ');
}

/**
 * Each identity source of IDENTITY_SOURCES_FILE, reached as the session-service would reach it:
 * every OpenID Connect provider's discovery document (openid-client checks its issuer is the
 * configured one), and the LDAP directory's service-account bind. Secrets are used, never printed.
 * An invalid file is the session-service configuration check's to report.
 */
async function checkIdentitySources(env: NodeJS.ProcessEnv) {
  let sources: IdentitySources;
  try {
    sources = loadIdentitySources(env);
  } catch (err) {
    if (err instanceof ConfigError) return;
    throw err;
  }
  for (const provider of sources.oidc) {
    const discovery = `${provider.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    try {
      await withDeadline(
        createOidcClient({
          config: provider,
          publicUrl: env.PUBLIC_URL ?? '',
          timeoutMs: PROBE_DEADLINE_MS,
        }).ping(),
        PROBE_DEADLINE_MS + 1000,
        'discovery',
      );
      pass(`OpenID Connect provider "${provider.id}" answers discovery at ${discovery}`);
    } catch (err) {
      fail(
        `OpenID Connect provider "${provider.id}": discovery at ${discovery} failed: ${causes(err)}`,
        'check issuer (exactly as the provider names itself, its discovery document\'s "issuer") and that this machine reaches it',
      );
    }
  }
  const ldap = sources.ldap;
  if (!ldap) return;
  const where = `the LDAP directory at ${ldap.url}${ldap.startTls ? ' (StartTLS)' : ''}`;
  const directory = createLdapDirectory(ldap);
  try {
    await directory.ping();
    pass(`${where} accepts the service account's bind (${ldap.bindDn})`);
  } catch (err) {
    const cause = err instanceof Error ? err.cause : undefined;
    const secret = ldap.bindPasswordEnv
      ? `the environment variable ${ldap.bindPasswordEnv}`
      : `the file ${ldap.bindPasswordFile}`;
    if (cause instanceof InvalidCredentialsError)
      fail(
        `${where}: the service account's bind (${ldap.bindDn}) was refused: invalid credentials`,
        `check bindDn and the password in ${secret}`,
      );
    else if (cause instanceof ResultCodeError)
      fail(
        `${where}: the service account's bind (${ldap.bindDn}) was refused: ${causes(err)}`,
        `check bindDn, the password in ${secret}, and that the account may bind`,
      );
    else
      fail(
        `${where} does not answer: ${causes(err)}`,
        `check url, that the directory runs and this machine reaches it${
          ldap.url.startsWith('ldaps:') || ldap.startTls
            ? ', and that its certificate names the host and chains to caFile (or the system CAs)'
            : ''
        }`,
      );
  } finally {
    await directory.close();
  }
}

async function main() {
  const env = process.env;
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  if (major > 20 || (major === 20 && minor >= 19)) pass(`Node.js ${process.versions.node}`);
  else
    fail(
      `Node.js ${process.versions.node} is too old`,
      'install Node.js 20.19 or newer (22 or 24 LTS recommended)',
    );

  await checkRedis(env);

  const ports: Array<[string, number]> = [
    ['GATEWAY_PORT', Number(env.GATEWAY_PORT ?? 8080)],
    ['SESSION_SERVICE_PORT', Number(env.SESSION_SERVICE_PORT ?? 4000)],
    ['DEMO_APP_PORT', Number(env.DEMO_APP_PORT ?? 3000)],
  ];
  for (const [name, port] of ports) {
    if (await portFree(port)) pass(`port ${port} (${name}) is free`);
    else
      fail(
        `port ${port} (${name}) is in use`,
        `stop what uses it (ss -ltnp 'sport = :${port}') or set ${name}`,
      );
  }

  const checks: Array<[string, () => unknown]> = [
    [
      'session-service',
      () => loadSessionServiceConfig(env, env.SESSION_SECRET ? undefined : 'x'.repeat(32)),
    ],
    ['gateway', () => loadGatewayConfig(env)],
    ['demo-app', () => loadDemoAppConfig(env)],
  ];
  for (const [name, load] of checks) {
    try {
      load();
      pass(`${name} configuration is valid`);
    } catch (err) {
      if (err instanceof ConfigError)
        fail(
          `${name} configuration is invalid:\n      ${err.problems.join('\n      ')}`,
          'fix the variables listed (docs/configuration.md)',
        );
      else throw err;
    }
  }

  await checkIdentitySources(env);

  const usersFile = env.USERS_FILE ?? './data/users.json';
  if (!existsSync(usersFile))
    warn(`no users file at ${usersFile} yet`, 'npm run users -- add alice --groups admins');
  else {
    try {
      const count = (JSON.parse(readFileSync(usersFile, 'utf8')) as { users: unknown[] }).users
        .length;
      if (count > 0) pass(`${count} user(s) in ${usersFile}`);
      else warn(`no users in ${usersFile}`, 'npm run users -- add alice --groups admins');
    } catch {
      fail(
        `${usersFile} is not a valid users file`,
        'fix or remove it, then npm run users -- add <name>',
      );
    }
  }

  for (const r of results) {
    const mark = !r.ok ? 'FAIL' : r.warn ? 'WARN' : ' ok ';
    process.stdout.write(`[${mark}] ${r.label}\n`);
    if (r.fix && (!r.ok || r.warn)) process.stdout.write(`       fix: ${r.fix}\n`);
  }
  const failed = results.filter((r) => !r.ok).length;
  process.stdout.write(
    failed ? `\n${failed} problem(s) to fix before npm start.\n` : '\nReady: npm start\n',
  );
  process.exit(failed ? 1 : 0);
}

await main();
