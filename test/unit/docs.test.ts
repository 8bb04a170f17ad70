/**
 * The docs cannot drift from the code: docs/configuration.md lists exactly the variables the
 * services' configuration schemas declare (plus the few read outside them) with their defaults,
 * and exactly the routes-file fields the gateway accepts (route-schema.ts); README.md links every docs page, and
 * every relative link of README.md and docs/*.md leads to a file (and heading) that exists. The
 * proxy recipes docs/protecting-your-app.md quotes are the files in examples/, line for line.
 *
 * Over 300 lines: each describe checks one document against the code it describes; the schema
 * and section tables they read are at the top.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { IDENTITY_HEADERS } from '../../common/src/identity.js';
import { demoAppSchema } from '../../demo-app/src/config.js';
import { gatewaySchema } from '../../gateway/src/config.js';
import { routeSchema } from '../../gateway/src/route-schema.js';
import { parseRoutes } from '../../gateway/src/routes-file.js';
import { sessionServiceSchema } from '../../session-service/src/config.js';
import { templatePath, templatePlaceholders } from '../helpers/nginx.js';
import { ROOT } from '../helpers/processes.js';

const CONFIGURATION = join(ROOT, 'docs', 'configuration.md');
const readExample = (path: string) => readFileSync(join(ROOT, 'examples', path), 'utf8');
/** A recipe file without its comment lines (`#`, or `--` in Lua). */
const exampleCode = (path: string) =>
  readExample(path)
    .split('\n')
    .filter((line) => !/^\s*(#|--)/.test(line))
    .join('\n');

type Target =
  | 'session-service'
  | 'gateway'
  | 'demo-app'
  | 'routes'
  | 'npm start'
  | 'nginx'
  | 'recipes'
  | 'tests';

/** Which settings the tables under each `##` heading of docs/configuration.md describe. */
const SECTIONS: Record<string, readonly Target[]> = {
  'Every service': ['session-service', 'gateway', 'demo-app'],
  'session-service': ['session-service'],
  gateway: ['gateway'],
  'Routes file (`GATEWAY_ROUTES`)': ['routes'],
  'demo-app': ['demo-app'],
  '`npm start`': ['npm start'],
  'nginx templates': ['nginx'],
  'Proxy recipes (`examples/`)': ['recipes'],
  'Test suite': ['tests'],
};

const SCHEMAS = {
  'session-service': sessionServiceSchema,
  gateway: gatewaySchema,
  'demo-app': demoAppSchema,
} as const;

/** Variables read outside the schemas, and the file that reads each. */
const OUTSIDE_SCHEMAS: Record<string, { target: Target; file: string }> = {
  DEV_SECRET_FILE: { target: 'session-service', file: 'session-service/src/main.ts' },
  DEV_ENCRYPTION_KEY_FILE: { target: 'session-service', file: 'session-service/src/main.ts' },
  REDIS_PORT: { target: 'npm start', file: 'scripts/start.ts' },
  CHROMIUM_BIN: { target: 'tests', file: 'test/browser/browser.ts' },
  NGINX_BIN: { target: 'tests', file: 'test/helpers/nginx.ts' },
  CADDY_BIN: { target: 'tests', file: 'test/helpers/proxies.ts' },
  HAPROXY_BIN: { target: 'tests', file: 'test/helpers/proxies.ts' },
};

/** Entry points and tools whose every `env.NAME` must be documented. */
const ENV_READERS = [
  'scripts/start.ts',
  'scripts/doctor.ts',
  'session-service/src/main.ts',
  'session-service/src/cli/users.ts',
  'gateway/src/main.ts',
  'demo-app/src/main.ts',
];
const NOT_OURS = new Set(['PATH', 'HOME']);

/** The variable names a config schema declares (an object's shape, through pipes). */
function schemaKeys(schema: z.ZodType): string[] {
  if (schema instanceof z.ZodObject) return Object.keys(schema.shape);
  if (schema instanceof z.ZodPipe) return schemaKeys(schema.in as z.ZodType);
  throw new Error(`cannot list the keys of a ${schema.constructor.name}`);
}

/** The fields of one route in a routes file (gateway/src/route-schema.ts). */
function routeSchemaKeys(): string[] {
  return schemaKeys(routeSchema);
}

interface Row {
  section: string;
  /** The names in the first cell (`NAME` or `field`). */
  names: string[];
  cells: string[];
}

/** Every table row of a markdown page (outside code blocks), with the `##` heading it is under. */
function tableRows(markdown: string): Row[] {
  const rows: Row[] = [];
  let section = '';
  let fenced = false;
  let inTable = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    if (fenced) continue;
    if (line.startsWith('## ')) section = line.slice(3).trim();
    if (!line.startsWith('|')) {
      inTable = false;
      continue;
    }
    const cells = line
      .slice(1, line.trimEnd().endsWith('|') ? line.trimEnd().length - 1 : undefined)
      .split('|')
      .map((c) => c.trim());
    if (!inTable) {
      inTable = true; // the header row
      continue;
    }
    if (cells.every((c) => /^:?-+:?$/.test(c))) continue;
    const names = [...(cells[0] ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1] ?? '');
    rows.push({ section, names, cells });
  }
  return rows;
}

const rows = tableRows(readFileSync(CONFIGURATION, 'utf8'));
const documented = (target: Target) =>
  rows.filter((r) => SECTIONS[r.section]?.includes(target)).flatMap((r) => r.names);
const sorted = (names: Iterable<string>) => [...new Set(names)].sort();

describe('docs/configuration.md', () => {
  it('has its tables only under the headings this test knows', () => {
    expect(rows.length).toBeGreaterThan(0);
    expect(sorted(rows.map((r) => r.section)).filter((s) => !(s in SECTIONS))).toEqual([]);
    for (const row of rows) expect(row.names.length, row.cells.join(' | ')).toBeGreaterThan(0);
  });

  for (const [target, schema] of Object.entries(SCHEMAS) as Array<
    [keyof typeof SCHEMAS, z.ZodType]
  >) {
    it(`lists exactly the variables of the ${target}`, () => {
      const outside = Object.entries(OUTSIDE_SCHEMAS)
        .filter(([, v]) => v.target === target)
        .map(([name]) => name);
      expect(sorted(documented(target))).toEqual(sorted([...schemaKeys(schema), ...outside]));
    });

    it(`gives the ${target}'s defaults as its schema does`, () => {
      const parsed = schema.safeParse({});
      expect(parsed.success).toBe(true);
      const defaults = (parsed.success ? parsed.data : {}) as Record<string, unknown>;
      const wrong: string[] = [];
      for (const row of rows.filter((r) => SECTIONS[r.section]?.includes(target))) {
        const [name] = row.names;
        const literal = /^`([^`]*)`/.exec(row.cells[1] ?? '')?.[1];
        const value = name === undefined ? undefined : defaults[name];
        if (literal === undefined || value === undefined) continue;
        const shown = Array.isArray(value) ? value.join(',') : String(value);
        if (shown !== literal) wrong.push(`${name}: documented \`${literal}\`, schema ${shown}`);
      }
      expect(wrong).toEqual([]);
    });
  }

  it('lists exactly the variables read outside the schemas, each where it is read', () => {
    for (const target of ['npm start', 'tests'] as const) {
      const expected = Object.entries(OUTSIDE_SCHEMAS)
        .filter(([, v]) => v.target === target)
        .map(([name]) => name);
      expect(sorted(documented(target)), target).toEqual(sorted(expected));
    }
    for (const [name, { file }] of Object.entries(OUTSIDE_SCHEMAS))
      expect(readFileSync(join(ROOT, file), 'utf8'), `${file} reads ${name}`).toContain(
        `env.${name}`,
      );
  });

  it('documents every variable the entry points and tools read', () => {
    const all = new Set(rows.flatMap((r) => r.names));
    const missing: string[] = [];
    for (const file of ENV_READERS) {
      const source = readFileSync(join(ROOT, file), 'utf8');
      for (const [, name = ''] of source.matchAll(/\benv\.([A-Z][A-Z0-9_]*)\b/g))
        if (!NOT_OURS.has(name) && !all.has(name)) missing.push(`${name} (${file})`);
    }
    expect(sorted(missing)).toEqual([]);
  });

  it('lists exactly the placeholders of the nginx templates, and which template has each', () => {
    const edge = templatePlaceholders(readFileSync(templatePath('edge'), 'utf8'));
    const authRequest = templatePlaceholders(readFileSync(templatePath('auth-request'), 'utf8'));
    expect(sorted(documented('nginx'))).toEqual(sorted([...edge, ...authRequest]));
    for (const row of rows.filter((r) => r.section === 'nginx templates')) {
      const name = row.names[0] ?? '';
      const where = [edge.includes(name) && 'edge', authRequest.includes(name) && 'auth-request']
        .filter(Boolean)
        .join(' ');
      expect(row.cells[1], name).toBe(where === 'edge auth-request' ? 'both' : where);
    }
  });

  it('lists exactly the variables of the Caddy and HAProxy recipes, and which recipe reads each', () => {
    const caddy = [...exampleCode('caddy/Caddyfile').matchAll(/\{\$([A-Z_]+)\}/g)].map((m) => m[1]);
    const haproxy = [
      ...[...exampleCode('haproxy/haproxy.cfg').matchAll(/\$\{([A-Z_]+)\}/g)].map((m) => m[1]),
      ...[
        ...exampleCode('haproxy/gatehouse.lua').matchAll(/(?:required|getenv)\("([A-Z_]+)"\)/g),
      ].map((m) => m[1]),
    ];
    expect(sorted(documented('recipes'))).toEqual(sorted([...caddy, ...haproxy] as string[]));
    for (const row of rows.filter((r) => r.section === 'Proxy recipes (`examples/`)')) {
      const name = row.names[0] ?? '';
      const where = [caddy.includes(name) && 'caddy', haproxy.includes(name) && 'haproxy']
        .filter(Boolean)
        .join(' ');
      expect(row.cells[1], name).toBe(where === 'caddy haproxy' ? 'both' : where);
    }
  });

  it('lists exactly the fields of a route in the routes file', () => {
    expect(sorted(documented('routes'))).toEqual(sorted(routeSchemaKeys()));
  });

  it('lists only route fields the gateway accepts, and the parser refuses any other', () => {
    const base = { id: 'probe', upstream: 'http://127.0.0.1:3000' };
    const samples: Record<string, unknown> = {
      ...base,
      host: 'wiki.example.com',
      path: '/wiki',
      stripPrefix: true,
      preserveHost: true,
      public: true,
      allow: { users: ['alice'], groups: ['staff'] },
      require: 'second-factor',
      maxAge: 900,
      timeoutMs: 1000,
      websocketOrigins: ['https://partner.example.com'],
      credentials: 'token',
      cache: 'upstream',
    };
    for (const field of documented('routes')) {
      expect(Object.keys(samples), `a sample value for ${field}`).toContain(field);
      const route = { ...base, [field]: samples[field] };
      expect(() => parseRoutes(JSON.stringify({ routes: [route] }), 1000), field).not.toThrow();
    }
    expect(() =>
      parseRoutes(
        JSON.stringify({ routes: [{ id: 'x', upstream: 'http://127.0.0.1:3000', nope: 1 }] }),
        1000,
      ),
    ).toThrow(/nope/);
  });
});

/** GitHub's anchor for a heading. */
const slug = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');

function anchorsOf(file: string): Set<string> {
  const headings = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => /^#{1,6} /.test(l))
    .map((l) => slug(l.replace(/^#+ /, '')));
  return new Set(headings);
}

/** Relative links of a markdown file (links and images), outside code blocks. */
function relativeLinks(file: string): string[] {
  const text = readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '');
  return [...text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)]
    .map((m) => m[1] ?? '')
    .filter((href) => !/^[a-z]+:/i.test(href));
}

describe('README.md and docs/', () => {
  const readme = join(ROOT, 'README.md');

  it('README.md links every docs page, the API description and a screenshot', () => {
    const targets = relativeLinks(readme).map((href) => href.split('#')[0]);
    for (const page of [
      'docs/getting-started.md',
      'docs/configuration.md',
      'docs/openapi.yaml',
      'docs/protecting-your-app.md',
      'docs/security.md',
      'docs/operations.md',
      'docs/performance.md',
    ])
      expect(targets, page).toContain(page);
    expect(targets.some((t) => t?.startsWith('docs/screenshots/'))).toBe(true);
  });

  it('every relative link of README.md and docs/*.md leads to a file, and to a heading there', () => {
    const docs = readdirSync(join(ROOT, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => join(ROOT, 'docs', f));
    const broken: string[] = [];
    for (const file of [readme, ...docs]) {
      for (const href of relativeLinks(file)) {
        const [path = '', anchor] = href.split('#');
        const target = path ? resolve(dirname(file), decodeURI(path)) : file;
        const where = `${relative(ROOT, file)} -> ${href}`;
        if (!existsSync(target)) broken.push(`${where}: no such file`);
        else if (anchor && target.endsWith('.md') && !anchorsOf(target).has(anchor))
          broken.push(`${where}: no such heading`);
      }
    }
    expect(broken).toEqual([]);
  });
});

describe('docs/protecting-your-app.md: the proxy recipes', () => {
  const page = readFileSync(join(ROOT, 'docs', 'protecting-your-app.md'), 'utf8');
  /** Code blocks preceded by `<!-- quoted from examples/… -->`, with the file they quote. */
  const quotes = [
    ...page.matchAll(/<!-- quoted from (examples\/[^\s]+) -->\n```[a-z]*\n([\s\S]*?)\n```/g),
  ].map((m) => ({ file: m[1] ?? '', lines: (m[2] ?? '').split('\n') }));

  it('quotes the Caddy, HAProxy, Traefik and Envoy files line for line', () => {
    expect(sorted(quotes.map((q) => q.file))).toEqual([
      'examples/caddy/Caddyfile',
      'examples/envoy/envoy.yaml',
      'examples/haproxy/gatehouse.lua',
      'examples/haproxy/haproxy.cfg',
      'examples/traefik/gatehouse.yml',
    ]);
    const missing: string[] = [];
    for (const { file, lines } of quotes) {
      const source = new Set(
        readFileSync(join(ROOT, file), 'utf8')
          .split('\n')
          .map((l) => l.trim()),
      );
      for (const line of lines.map((l) => l.trim()).filter(Boolean))
        if (!source.has(line)) missing.push(`${file}: ${line}`);
    }
    expect(missing).toEqual([]);
  });

  it('names every recipe file, and the test that runs it or why none does', () => {
    for (const file of [
      'nginx/templates/auth-request.conf.template',
      'examples/caddy/Caddyfile',
      'examples/haproxy/haproxy.cfg',
      'examples/haproxy/gatehouse.lua',
      'examples/traefik/gatehouse.yml',
      'examples/envoy/envoy.yaml',
    ]) {
      expect(page, file).toContain(`\`${file}\``);
      expect(existsSync(join(ROOT, file)), file).toBe(true);
    }
    for (const test of [
      'nginx-auth-request.test.ts',
      'caddy-forward-auth.test.ts',
      'haproxy-forward-auth.test.ts',
    ]) {
      expect(page, test).toContain(`test/e2e/${test}`);
      expect(existsSync(join(ROOT, 'test', 'e2e', test)), test).toBe(true);
    }
    expect(page).toMatch(/Traefik and Envoy are not packaged in Debian/);
  });

  // Traefik and Envoy do not run here: what can be checked of their files without them is.
  it('the Traefik recipe removes every identity name, dash and underscore spellings, and trusts no client X-Forwarded-*', () => {
    const config = parseYaml(readExample('traefik/gatehouse.yml')) as {
      http: {
        middlewares: Record<
          string,
          {
            headers?: { customRequestHeaders?: Record<string, string> };
            forwardAuth?: { trustForwardHeader?: boolean; address?: string };
          }
        >;
      };
    };
    const removed = Object.entries(
      config.http.middlewares['gatehouse-no-client-identity']?.headers?.customRequestHeaders ?? {},
    )
      .filter(([, value]) => value === '')
      .map(([name]) => name.toLowerCase());
    for (const name of IDENTITY_HEADERS) {
      expect(removed, name).toContain(name);
      expect(removed, name).toContain(name.replaceAll('-', '_'));
    }
    const auth = config.http.middlewares.gatehouse?.forwardAuth;
    expect(auth?.trustForwardHeader).toBe(false);
    expect(auth?.address).toMatch(/\/auth\/validate$/);
  });

  it('the Envoy recipe sends X-Forwarded-Uri and Accept to validate, replaces or removes every identity name, drops underscores, fails closed', () => {
    const text = readExample('envoy/envoy.yaml');
    parseYaml(text);
    const removed = [
      ...text.matchAll(/^\s+- (x-[a-z-]+|remote-[a-z-]+)$/gm),
      ...text.matchAll(/\{ exact: (x-auth-request-[a-z-]+) \}/g),
    ].map((m) => m[1]);
    for (const name of IDENTITY_HEADERS) expect(removed, name).toContain(name);
    for (const line of [
      'headers_with_underscores_action: DROP_HEADER',
      '- { key: x-forwarded-uri, value: "%REQ(:PATH)%" }',
      '- { exact: cookie }',
      '- { exact: accept }',
      'failure_mode_allow: false',
      'status_on_error: { code: ServiceUnavailable }',
    ])
      expect(text, line).toContain(line);
  });
});
