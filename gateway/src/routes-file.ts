/**
 * The routes file (GATEWAY_ROUTES, YAML or JSON): read and parsed against route-schema.ts, every
 * problem listed at once, the default route without a file, and the store that reloads it.
 */
import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { ConfigError } from '../../common/src/config.js';
import type { Logger } from '../../common/src/logger.js';
import { parseYamlConfig, problemPath } from '../../common/src/yaml-config.js';
import { normaliseOrigin } from './origin.js';
import { prefixSegments } from './request-target.js';
import { crossRouteProblems, fileSchema, type Problem, type routeSchema } from './route-schema.js';
import { buildRouteTable, type Route, type RouteTable } from './route-table.js';

export type { RouteSpec } from './route-schema.js';

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
    credentials: spec.credentials,
    timeoutMs: spec.timeoutMs ?? defaultTimeoutMs,
    websocketOrigins: new Set(
      (spec.websocketOrigins ?? []).map((o) => normaliseOrigin(o) as string),
    ),
    cache: spec.cache,
    segments: prefixSegments(spec.path),
  });
}

/**
 * Parse a routes file (YAML or JSON: JSON is YAML) into a table. Throws ConfigError listing every
 * problem at once, each with its route index, id and field.
 */
export function parseRoutes(text: string, defaultTimeoutMs: number, source = 'routes'): RouteTable {
  const data = parseYamlConfig(text, source);
  const result = fileSchema.safeParse(data);
  const routeIndex = (p: Problem) => (typeof p.path[1] === 'number' ? p.path[1] : -1);
  const problems: Problem[] = [
    ...(result.success ? [] : result.error.issues),
    ...crossRouteProblems(data),
  ].sort((a, b) => routeIndex(a) - routeIndex(b));
  if (!result.success || problems.length > 0) {
    throw new ConfigError(
      problems.map((problem) => {
        const where = problemPath(problem.path, data, 'routes');
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
        credentials: 'any',
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
