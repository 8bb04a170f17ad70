import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { REQUIREMENTS } from '../../common/src/authentication.js';
import { ConfigError } from '../../common/src/config.js';
import type { Logger } from '../../common/src/logger.js';
import { normaliseOrigin } from './origin.js';
import { prefixSegments, underPrefix } from './request-target.js';
import { buildRouteTable, RESERVED_PREFIXES, type Route, type RouteTable } from './route-table.js';

/**
 * The routes file (GATEWAY_ROUTES, YAML or JSON): its schema, every problem listed at once, the
 * default route without a file, and the store that reloads it.
 */
const ID = /^[A-Za-z0-9._-]{1,64}$/;
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const HOST = new RegExp(`^(?:\\*\\.)?${LABEL}(?:\\.${LABEL})*$`);
/** A path segment as written in the routes file: printable, no separators, query or fragment. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const SEGMENT = /^[^/\\?#%\s\u0000-\u001f\u007f]+$/;

const pathSchema = z
  .string()
  .default('/')
  .superRefine((path, ctx) => {
    const problem = pathProblem(path);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

function pathProblem(path: string): string | null {
  if (!path.startsWith('/')) return 'must start with /';
  if (path === '/') return null;
  if (path.endsWith('/')) return 'must not end with / (prefixes match whole segments already)';
  for (const segment of prefixSegments(path)) {
    if (segment === '') return 'must not contain //';
    if (segment === '.' || segment === '..') return 'must not contain . or .. segments';
    if (!SEGMENT.test(segment))
      return 'segments may not hold spaces, %, \\, ?, # or control characters (write them decoded)';
  }
  const segments = prefixSegments(path);
  for (const reserved of RESERVED_PREFIXES) {
    if (underPrefix(segments, prefixSegments(reserved)))
      return `${reserved}/ is reserved for the gateway and cannot be routed`;
  }
  return null;
}

const upstreamSchema = z.string().superRefine((value, ctx) => {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'is not a URL' });
    return;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    ctx.addIssue({ code: 'custom', message: 'must be an http:// or https:// URL' });
  if (parsed.search || parsed.hash)
    ctx.addIssue({ code: 'custom', message: 'must not have a query or fragment' });
  if (parsed.username || parsed.password)
    ctx.addIssue({ code: 'custom', message: 'must not hold credentials' });
});

const names = z.array(z.string().min(1, 'must not be empty')).optional();

export const routeSchema = z.strictObject({
  id: z.string().regex(ID, 'must be 1 to 64 of A-Z a-z 0-9 . _ -'),
  host: z
    .string()
    .transform((h) => h.toLowerCase())
    .refine((h) => HOST.test(h), 'must be a hostname (exact) or *.example.com')
    .optional(),
  path: pathSchema,
  upstream: upstreamSchema,
  stripPrefix: z.boolean().default(false),
  preserveHost: z.boolean().default(false),
  public: z.boolean().default(false),
  allow: z.strictObject({ users: names, groups: names }).optional(),
  /**
   * How the session must have signed in (common/src/authentication.ts): `password` (any session),
   * `second-factor` (aal2), `webauthn` (a security key or passkey was used).
   */
  require: z
    .enum(REQUIREMENTS, { error: `must be one of ${REQUIREMENTS.join(', ')}` })
    .default('password'),
  /** Seconds, as OpenID Connect's max_age: the user proved who they are at most this long ago. */
  maxAge: z
    .number({ error: 'must be a number of seconds (900 for 15 minutes)' })
    .int('must be a whole number of seconds')
    .positive('must be at least 1 second')
    .optional(),
  timeoutMs: z.number().int().positive().optional(),
  /** Other origins whose pages may open WebSockets on this route (origin.ts); its own always may. */
  websocketOrigins: z
    .array(
      z.string().refine((o) => normaliseOrigin(o) !== null, {
        message: 'must be an origin: http(s)://host[:port], no path',
      }),
    )
    .optional(),
  /** `gateway` (default): protected HTML without Cache-Control gets no-store; `upstream`: as sent. */
  cache: z.enum(['gateway', 'upstream']).default('gateway'),
});

const fileSchema = z.strictObject({
  routes: z.array(routeSchema).min(1, 'must list at least one route'),
});

type Problem = { path: PropertyKey[]; message: string };

/**
 * Checks across routes, run on the raw data even when some routes are malformed (zod skips
 * refinements once a field fails), so every problem is listed in one go.
 */
function crossRouteProblems(data: unknown): Problem[] {
  const routes = (data as { routes?: unknown })?.routes;
  if (!Array.isArray(routes)) return [];
  const problems: Problem[] = [];
  const ids = new Map<string, number>();
  const places = new Map<string, number>();
  routes.forEach((value: unknown, i) => {
    if (!value || typeof value !== 'object') return;
    const route = value as Record<string, unknown>;
    if (typeof route.id === 'string') {
      const first = ids.get(route.id);
      if (first === undefined) ids.set(route.id, i);
      else
        problems.push({
          path: ['routes', i, 'id'],
          message: `duplicate id (also routes[${first}])`,
        });
    }
    const host = typeof route.host === 'string' ? route.host.toLowerCase() : '';
    const path = typeof route.path === 'string' ? route.path : '/';
    const place = `${host} ${path}`;
    const first = places.get(place);
    if (first === undefined) places.set(place, i);
    else
      problems.push({
        path: ['routes', i, 'path'],
        message: `same host and path as routes[${first}]`,
      });
    const allow = route.allow as { users?: unknown; groups?: unknown } | undefined;
    if (route.public === true && allow !== undefined)
      problems.push({
        path: ['routes', i, 'allow'],
        message: 'a public route cannot have an allow list',
      });
    for (const field of ['require', 'maxAge'] as const)
      if (route.public === true && route[field] !== undefined)
        problems.push({
          path: ['routes', i, field],
          message: 'a public route asks for no session, so it cannot require how one signed in',
        });
    if (
      allow &&
      typeof allow === 'object' &&
      !(Array.isArray(allow.users) && allow.users.length) &&
      !(Array.isArray(allow.groups) && allow.groups.length)
    )
      problems.push({
        path: ['routes', i, 'allow'],
        message: 'must list at least one user or group (omit allow to admit every signed-in user)',
      });
  });
  return problems;
}

export type RouteSpec = z.input<typeof routeSchema>;

function toRoute(spec: z.output<typeof routeSchema>, defaultTimeoutMs: number): Route {
  return Object.freeze({
    id: spec.id,
    ...(spec.host ? { host: spec.host } : {}),
    path: spec.path,
    upstream: new URL(spec.upstream),
    stripPrefix: spec.stripPrefix,
    preserveHost: spec.preserveHost,
    public: spec.public,
    ...(spec.allow
      ? {
          allow: {
            users: new Set(spec.allow.users ?? []),
            groups: new Set(spec.allow.groups ?? []),
          },
        }
      : {}),
    require: spec.require,
    ...(spec.maxAge !== undefined ? { maxAge: spec.maxAge } : {}),
    timeoutMs: spec.timeoutMs ?? defaultTimeoutMs,
    websocketOrigins: new Set(
      (spec.websocketOrigins ?? []).map((o) => normaliseOrigin(o) as string),
    ),
    cache: spec.cache,
    segments: prefixSegments(spec.path),
  });
}

function issuePath(path: readonly PropertyKey[], data: unknown): string {
  let out = '';
  path.forEach((key, i) => {
    if (typeof key === 'number') {
      out += `[${key}]`;
      // name the route by its id too: "routes[2] (admin).path"
      if (i === 1 && path[0] === 'routes') {
        const id = (data as { routes?: Array<{ id?: unknown }> })?.routes?.[key]?.id;
        if (typeof id === 'string' && id) out += ` (${id})`;
      }
    } else out += out ? `.${String(key)}` : String(key);
  });
  return out;
}

/**
 * Parse a routes file (YAML or JSON: JSON is YAML) into a table. Throws ConfigError listing every
 * problem at once, each with its route index, id and field.
 */
export function parseRoutes(text: string, defaultTimeoutMs: number, source = 'routes'): RouteTable {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0)
    throw new ConfigError(
      doc.errors.map((e) => {
        const at = e.linePos?.[0];
        const message = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
        return `${source}${at ? `:${at.line}:${at.col}` : ''}: ${message}`;
      }),
    );
  const data: unknown = doc.toJS();
  const result = fileSchema.safeParse(data);
  const routeIndex = (p: Problem) => (typeof p.path[1] === 'number' ? p.path[1] : -1);
  const problems: Problem[] = [
    ...(result.success ? [] : result.error.issues),
    ...crossRouteProblems(data),
  ].sort((a, b) => routeIndex(a) - routeIndex(b));
  if (!result.success || problems.length > 0) {
    throw new ConfigError(
      problems.map((problem) => {
        const where = issuePath(problem.path, data);
        return `${source}: ${where ? `${where}: ` : ''}${problem.message}`;
      }),
    );
  }
  return buildRouteTable(result.data.routes.map((r) => toRoute(r, defaultTimeoutMs)));
}

/** Without a routes file: one route `/` (id `default`) to `upstream`. */
export function defaultRouteTable(upstream: string, timeoutMs: number): RouteTable {
  return buildRouteTable([
    toRoute(
      {
        id: 'default',
        path: '/',
        upstream,
        stripPrefix: false,
        preserveHost: false,
        public: false,
        require: 'password',
        cache: 'gateway',
      },
      timeoutMs,
    ),
  ]);
}

export type ReloadResult = { ok: true; routes: number } | { ok: false; problems: string[] };

/** The current route table, swapped whole on reload (a request keeps the table it started with). */
export interface RouteStore {
  current(): RouteTable;
  /** Re-read the file; on any problem keep the current table and return the problems. */
  reload(): ReloadResult;
  readonly file?: string;
}

/** Reads `file` now (throws ConfigError when it is unusable) or serves the default route. */
export function createRouteStore(options: {
  file?: string;
  defaultUpstream: string;
  defaultTimeoutMs: number;
  logger?: Logger;
}): RouteStore {
  const { file, defaultTimeoutMs, logger } = options;
  const read = (path: string): RouteTable => {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError([
        `GATEWAY_ROUTES: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      ]);
    }
    return parseRoutes(text, defaultTimeoutMs, path);
  };
  let table = file ? read(file) : defaultRouteTable(options.defaultUpstream, defaultTimeoutMs);
  return {
    ...(file ? { file } : {}),
    current: () => table,
    reload() {
      if (!file) return { ok: true, routes: table.routes.length };
      try {
        table = read(file);
        logger?.info({ file, routes: table.routes.map((r) => r.id) }, 'routes reloaded');
        return { ok: true, routes: table.routes.length };
      } catch (err) {
        const problems = err instanceof ConfigError ? err.problems : [String(err)];
        logger?.error({ file, problems }, 'routes file invalid; keeping the previous routes');
        return { ok: false, problems };
      }
    },
  };
}
