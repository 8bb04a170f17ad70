/**
 * Over 300 lines on purpose: the compose file is read once and checked against every service's schema, ports, secrets and health.
 */
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { demoAppSchema } from '../../demo-app/src/config.js';
import { gatewaySchema, loadGatewayConfig } from '../../gateway/src/config.js';
import { healthUrl } from '../../scripts/healthcheck.js';
import {
  loadSessionServiceConfig,
  sessionServiceSchema,
} from '../../session-service/src/config.js';
import { templatePath, templatePlaceholders } from '../helpers/nginx.js';
import { ROOT } from '../helpers/processes.js';

/** The parts of a compose service this test reads (anything else is allowed and ignored). */
const serviceSchema = z.looseObject({
  image: z.string().optional(),
  build: z.union([z.string(), z.looseObject({ context: z.string() })]).optional(),
  command: z.array(z.string()).optional(),
  environment: z
    .record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()]))
    .optional(),
  env_file: z.union([z.string(), z.array(z.string())]).optional(),
  ports: z.array(z.union([z.string(), z.number()])).optional(),
  volumes: z.array(z.string()).optional(),
  networks: z.array(z.string()).optional(),
  read_only: z.boolean().optional(),
  restart: z.string().optional(),
  healthcheck: z
    .looseObject({
      test: z.union([z.string(), z.array(z.string())]).optional(),
      disable: z.boolean().optional(),
    })
    .optional(),
  depends_on: z.record(z.string(), z.looseObject({ condition: z.string() })).optional(),
});
type Service = z.infer<typeof serviceSchema>;

const composeSchema = z.looseObject({
  services: z.record(z.string(), serviceSchema),
  networks: z.record(z.string(), z.unknown()).optional(),
  volumes: z.record(z.string(), z.unknown()).optional(),
});

const COMPOSE_FILE = join(ROOT, 'docker-compose.yml');
const rawCompose: unknown = parse(readFileSync(COMPOSE_FILE, 'utf8'), { merge: true });
const compose = composeSchema.parse(rawCompose);

/** The image's services: the entrypoint command -> the zod schema of its environment. */
const SCHEMAS: Record<string, z.ZodType> = {
  'session-service': sessionServiceSchema,
  gateway: gatewaySchema,
  'demo-app': demoAppSchema,
};

/** The variable names a config schema declares (an object's shape, through pipes/effects). */
function schemaKeys(schema: z.ZodType): string[] {
  if (schema instanceof z.ZodObject) return Object.keys(schema.shape);
  if (schema instanceof z.ZodPipe) return schemaKeys(schema.in as z.ZodType);
  throw new Error(`cannot list the keys of a ${schema.constructor.name}`);
}

function service(name: string): Service {
  const found = compose.services[name];
  if (!found) throw new Error(`docker-compose.yml has no service "${name}"`);
  return found;
}

/** A service's environment as written (a secret as its `${NAME:?message}` substitution). */
function rawEnvOf(svc: Service): Record<string, string> {
  return Object.fromEntries(
    Object.entries(svc.environment ?? {}).map(([k, v]) => [k, v === null ? '' : String(v)]),
  );
}

/** `${NAME:?message}`: compose takes NAME from .env and refuses to start when it is empty. */
const REQUIRED_FROM_ENV = /^\$\{([A-Z][A-Z0-9_]*):\?[^}]+\}$/;

/** A service's environment, each value compose takes from .env given a test value. */
function envOf(svc: Service): Record<string, string> {
  return Object.fromEntries(
    Object.entries(rawEnvOf(svc)).map(([k, v]) => [
      k,
      REQUIRED_FROM_ENV.test(v) ? `${k.toLowerCase()}-${SECRET}` : v,
    ]),
  );
}

/** One-shot jobs (restart "no"): they run to completion before what depends on them. */
const oneShot = (svc: Service) => svc.restart === 'no';

/** Services built from our Dockerfile that stay up, by the command they run. */
const ourServices = Object.entries(compose.services).filter(
  ([, svc]) => svc.build !== undefined && !oneShot(svc),
);
const byCommand = (command: string): [string, Service] => {
  const found = ourServices.find(([, svc]) => svc.command?.[0] === command);
  if (!found) throw new Error(`no service runs "${command}"`);
  return found;
};

const SECRET = 'x'.repeat(16) + Math.random().toString(36).repeat(4);

/** Names set (or shown commented out) in .env.example. */
function envExampleNames(): string[] {
  const text = readFileSync(join(ROOT, '.env.example'), 'utf8');
  return [...text.matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1] ?? '');
}

describe('docker-compose.yml', () => {
  it('uses the compose spec (no version key) and runs each of our services once', () => {
    expect(rawCompose).not.toHaveProperty('version');
    expect(ourServices.map(([, svc]) => svc.command?.[0]).sort()).toEqual([
      'demo-app',
      'gateway',
      'session-service',
    ]);
    for (const [name, svc] of ourServices) {
      expect(svc.build, name).toBe('.');
      expect(svc.read_only, name).toBe(true);
    }
  });

  it('passes each service only variables its config schema declares, and they parse', () => {
    for (const [name, svc] of ourServices) {
      const command = svc.command?.[0] ?? '';
      const schema = SCHEMAS[command];
      if (!schema) throw new Error(`${name}: unknown command ${command}`);
      const keys = schemaKeys(schema);
      const env = envOf(svc);
      for (const variable of Object.keys(env)) {
        expect(keys, `${name} sets ${variable}`).toContain(variable);
      }
      const files = svc.env_file === undefined ? [] : [svc.env_file].flat();
      for (const file of files) {
        expect(file, `${name}: env_file`).toBe('.env');
        for (const variable of envExampleNames()) {
          expect(keys, `${name} gets ${variable} from .env`).toContain(variable);
        }
      }
      const parsed = schema.safeParse({ ...env, SESSION_SECRET: SECRET });
      expect(parsed.success, `${name}: ${JSON.stringify(parsed.error?.issues)}`).toBe(true);
    }
  });

  it('keeps the secrets in .env (example committed, .env ignored)', () => {
    expect(envExampleNames()).toEqual(
      expect.arrayContaining([
        'SESSION_SECRET',
        'ADMIN_TOKEN',
        'INTERNAL_TOKEN',
        'SESSION_ENCRYPTION_KEY',
      ]),
    );
    const [, session] = byCommand('session-service');
    expect(session.env_file).toEqual(['.env']);
    // The example holds no secret at all: each is empty until scripts/compose-env.sh (or the
    // user) fills it, and compose refuses to start while one is empty.
    const example = readFileSync(join(ROOT, '.env.example'), 'utf8');
    for (const name of ['SESSION_SECRET', 'INTERNAL_TOKEN', 'SESSION_ENCRYPTION_KEY']) {
      expect(example, name).toMatch(new RegExp(`^${name}=$`, 'm'));
      expect(rawEnvOf(session)[name], name).toMatch(new RegExp(`^\\$\\{${name}:\\?[^}]+\\}$`));
    }
    for (const [name, svc] of Object.entries(compose.services)) {
      for (const [variable, value] of Object.entries(rawEnvOf(svc))) {
        if (/SECRET|TOKEN|ENCRYPTION_KEY/.test(variable)) {
          expect(value, `${name}: ${variable} is written into docker-compose.yml`).toMatch(
            REQUIRED_FROM_ENV,
          );
        }
      }
      expect(rawEnvOf(svc).ADMIN_TOKEN, name).toBeUndefined();
    }
    expect(readFileSync(join(ROOT, '.gitignore'), 'utf8')).toMatch(/^\.env$/m);
  });

  it('gives the gateway the INTERNAL_TOKEN of .env, and no other secret', () => {
    const [, gateway] = byCommand('gateway');
    expect(gateway.env_file).toBeUndefined();
    // docker compose substitutes it from .env, and refuses to start when it is missing.
    expect(rawEnvOf(gateway).INTERNAL_TOKEN).toMatch(/^\$\{INTERNAL_TOKEN:\?[^}]+\}$/);
    // Both run with NODE_ENV=production, where a missing token is a configuration error.
    const [, session] = byCommand('session-service');
    for (const svc of [session, gateway]) expect(envOf(svc).NODE_ENV).toBe('production');
    expect(() => loadSessionServiceConfig({ ...envOf(session), INTERNAL_TOKEN: '' })).toThrow(
      /INTERNAL_TOKEN: is required when NODE_ENV=production/,
    );
    expect(() => loadGatewayConfig({ ...envOf(gateway), INTERNAL_TOKEN: '' })).toThrow(
      /INTERNAL_TOKEN: is required when NODE_ENV=production/,
    );
    expect(() =>
      loadSessionServiceConfig({
        ...envOf(session),
        SESSION_SECRET: SECRET,
        INTERNAL_TOKEN: 'change-me-to-another-long-random-string-of-32-characters-or-more',
      }),
    ).toThrow(/INTERNAL_TOKEN: is a published example value/);
  });

  it('wires the services on the ports of the contract', () => {
    const [sessionName, session] = byCommand('session-service');
    const [gatewayName, gateway] = byCommand('gateway');
    const [demoName, demo] = byCommand('demo-app');
    const s = sessionServiceSchema.parse({ ...envOf(session), SESSION_SECRET: SECRET });
    const g = gatewaySchema.parse(envOf(gateway));
    const d = demoAppSchema.parse(envOf(demo));

    // The contract's defaults, unchanged inside the network.
    expect(s.SESSION_SERVICE_PORT).toBe(4000);
    expect(g.GATEWAY_PORT).toBe(8080);
    expect(d.DEMO_APP_PORT).toBe(3000);
    expect([s.SESSION_SERVICE_HOST, g.GATEWAY_HOST, d.DEMO_APP_HOST]).toEqual([
      '0.0.0.0',
      '0.0.0.0',
      '0.0.0.0',
    ]);

    // Each service is reached by name on the port it listens on.
    expect(g.SESSION_SERVICE_URL).toBe(`http://${sessionName}:${s.SESSION_SERVICE_PORT}`);
    expect(g.UPSTREAM_URL).toBe(`http://${demoName}:${d.DEMO_APP_PORT}`);
    expect(new URL(d.JWKS_URL).host).toBe(`${sessionName}:${s.SESSION_SERVICE_PORT}`);
    expect(envOf(service('nginx')).GATEWAY_UPSTREAM).toBe(`${gatewayName}:${g.GATEWAY_PORT}`);
    expect(s.REDIS_URL).toBe('redis://redis:6379');

    // Health checks (the image's own, scripts/healthcheck.ts) probe the port each listens on.
    const probes: ['session-service' | 'gateway' | 'demo-app', Service, number][] = [
      ['session-service', session, s.SESSION_SERVICE_PORT],
      ['gateway', gateway, g.GATEWAY_PORT],
      ['demo-app', demo, d.DEMO_APP_PORT],
    ];
    for (const [command, svc, port] of probes) {
      expect(svc.healthcheck, `${command} has a health check of its own`).toBeUndefined();
      expect(healthUrl(command, envOf(svc))).toMatch(
        new RegExp(`^http://127\\.0\\.0\\.1:${port}/`),
      );
    }
    expect(readFileSync(join(ROOT, 'Dockerfile'), 'utf8')).toMatch(
      /^HEALTHCHECK .*\\\n\s+CMD \["gatehouse-entrypoint", "healthcheck"\]$/m,
    );

    // The gateway strips the cookie the session-service really sets; the app checks its issuer.
    const config = loadSessionServiceConfig({
      ...envOf(session),
      SESSION_SECRET: SECRET,
      INTERNAL_TOKEN: SECRET,
      SESSION_ENCRYPTION_KEY: `key-${SECRET}`,
    });
    expect(g.COOKIE_NAME).toBe(config.cookieName);
    expect(d.IDENTITY_ISSUER).toBe(s.PUBLIC_URL ?? 'gatehouse');
  });

  it('publishes ports from nginx only: 8443 (HTTPS) and 8080 (HTTP)', () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      if (name !== 'nginx') expect(svc.ports, `${name} publishes ports`).toBeUndefined();
    }
    const nginx = service('nginx');
    expect(nginx.ports).toEqual(['8443:443', '8080:80']);
    const env = envOf(nginx);
    expect(env.NGINX_HTTPS_PORT).toBe('443');
    expect(env.NGINX_HTTP_PORT).toBe('80');
    expect(env.PUBLIC_HTTPS_PORT).toBe('8443');
    const [, session] = byCommand('session-service');
    expect(new URL(envOf(session).PUBLIC_URL ?? '').port).toBe(env.PUBLIC_HTTPS_PORT);
  });

  it('gives nginx the edge template, every placeholder it needs, and a certificate first', () => {
    const nginx = service('nginx');
    const template = nginx.volumes?.find((v) => v.includes('/etc/nginx/templates/'));
    expect(template).toBe(
      './nginx/templates/edge.conf.template:/etc/nginx/templates/edge.conf.template:ro',
    );
    const env = envOf(nginx);
    for (const name of templatePlaceholders(readFileSync(templatePath('edge'), 'utf8'))) {
      expect(env[name], `nginx environment: ${name}`).toBeTruthy();
    }
    expect(nginx.depends_on?.certs?.condition).toBe('service_completed_successfully');
    // Made by the Gatehouse image itself: nothing to install (or download) at the first start.
    const certs = service('certs');
    expect(certs.build).toBe('.');
    expect(certs.command).toEqual(['dev-cert', '/certs']);
    expect(certs.volumes).toEqual(['certs:/certs']);
    expect(nginx.volumes).toContain('certs:/etc/nginx/certs:ro');
    expect(existsSync(join(ROOT, 'scripts', 'dev-cert.ts'))).toBe(true);
  });

  it('starts a service only after what it depends on is healthy', () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      for (const [dependency, { condition }] of Object.entries(svc.depends_on ?? {})) {
        const target = service(dependency);
        const expected = oneShot(target) ? 'service_completed_successfully' : 'service_healthy';
        expect(condition, `${name} -> ${dependency}`).toBe(expected);
      }
    }
    // Health: redis and nginx from the compose file, ours from the image's HEALTHCHECK.
    for (const name of ['redis', 'nginx']) {
      expect(service(name).healthcheck?.test, name).toBeDefined();
    }
    // The session-service starts only once its configuration has been checked.
    const [, session] = byCommand('session-service');
    const check = service('check-config');
    expect(session.depends_on?.['check-config']?.condition).toBe('service_completed_successfully');
    expect(check.command).toEqual(['session-service', '--check-config']);
    expect(check.environment).toEqual(session.environment);
    expect(check.env_file).toEqual(session.env_file);
  });

  it('runs only commands the image entrypoint knows', () => {
    const entrypoint = readFileSync(join(ROOT, 'scripts', 'docker-entrypoint.sh'), 'utf8');
    const known = [...entrypoint.matchAll(/^\s*([a-z][a-z| -]*)\)\s*$/gm)].flatMap((m) =>
      (m[1] ?? '').split('|').map((s) => s.trim()),
    );
    expect(known).toEqual(
      expect.arrayContaining([
        'session-service',
        'gateway',
        'demo-app',
        'users',
        'dev-cert',
        'healthcheck',
      ]),
    );
    for (const [name, svc] of Object.entries(compose.services)) {
      if (svc.build === undefined) continue;
      expect(known, `${name}: ${svc.command?.[0]}`).toContain(svc.command?.[0]);
    }
    // What the entrypoint runs is built from sources that exist.
    for (const command of ['session-service', 'gateway', 'demo-app']) {
      expect(existsSync(join(ROOT, command, 'src', 'main.ts')), command).toBe(true);
    }
    expect(entrypoint).toContain('dist/session-service/src/cli/users.js');
    expect(existsSync(join(ROOT, 'session-service', 'src', 'cli', 'users.ts'))).toBe(true);
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toContain('scripts/docker-entrypoint.sh');
    expect(dockerfile).toMatch(/^USER node$/m);
  });

  const composeBin = spawnSync('docker-compose', ['version'], { stdio: 'ignore' });
  /** `docker-compose config` with this env file; the answer and what it printed. */
  function composeConfig(envText: string) {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-compose-env-'));
    try {
      // A copy of the compose file next to the .env, as in a checkout (env_file: .env is read
      // from the compose file's directory).
      writeFileSync(join(dir, '.env'), envText);
      copyFileSync(COMPOSE_FILE, join(dir, 'docker-compose.yml'));
      const result = spawnSync('docker-compose', ['config', '-q'], { cwd: dir, encoding: 'utf8' });
      return { status: result.status, output: `${result.stdout}${result.stderr}` };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const example = () => readFileSync(join(ROOT, '.env.example'), 'utf8');

  it.skipIf(composeBin.error !== undefined || composeBin.status !== 0)(
    'is valid for docker-compose config once .env has its secrets',
    () => {
      const filled = example().replace(/^([A-Z_]+)=$/gm, (_, name) => `${name}=${name}-${SECRET}`);
      const result = composeConfig(filled);
      expect(result.status, result.output).toBe(0);
    },
  );

  it.skipIf(composeBin.error !== undefined || composeBin.status !== 0)(
    'refuses to start with .env.example copied as it is, naming the empty secret and the fix',
    () => {
      const result = composeConfig(example());
      expect(result.status).not.toBe(0);
      expect(result.output).toMatch(/SESSION_SECRET|INTERNAL_TOKEN|SESSION_ENCRYPTION_KEY/);
      expect(result.output).toContain('is empty or missing in .env');
      expect(result.output).toContain('sh scripts/compose-env.sh');
    },
  );
});
