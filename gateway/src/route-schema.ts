import { z } from 'zod';
import { REQUIREMENTS } from '../../common/src/authentication.js';
import { normaliseOrigin } from './origin.js';
import { prefixSegments, underPrefix } from './request-target.js';
import { RESERVED_PREFIXES } from './route-table.js';

/**
 * What a route in the routes file may say: the schema of one route and of the file, and the
 * checks across routes (duplicate ids and places, allow lists, public routes). routes-file.ts
 * reads, reports and reloads the file.
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

/** What a route's `credentials` may say (route-table.ts `Route.credentials`). */
export const CREDENTIALS = ['any', 'session', 'token'] as const;

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
  /**
   * Which credentials the route takes: `any` (default) a session cookie or an access token
   * (`Authorization: Bearer gatehouse_…`); `session` browsers only (a token is refused);
   * `token` access tokens only (a session cookie never stands in, no login redirect).
   */
  credentials: z
    .enum(CREDENTIALS, { error: `must be one of ${CREDENTIALS.join(', ')}` })
    .default('any'),
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

export const fileSchema = z.strictObject({
  routes: z.array(routeSchema).min(1, 'must list at least one route'),
});

export type Problem = { path: PropertyKey[]; message: string };

/**
 * Checks across routes, run on the raw data even when some routes are malformed (zod skips
 * refinements once a field fails), so every problem is listed in one go.
 */
export function crossRouteProblems(data: unknown): Problem[] {
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
    if (route.public === true && route.credentials !== undefined)
      problems.push({
        path: ['routes', i, 'credentials'],
        message: 'a public route asks for no credential, so it cannot choose which kind',
      });
    // A token proves no sign-in: it can never meet `require` beyond a password, nor `maxAge`.
    if (route.credentials === 'token')
      for (const field of ['require', 'maxAge'] as const)
        if (route[field] !== undefined && !(field === 'require' && route[field] === 'password'))
          problems.push({
            path: ['routes', i, field],
            message:
              'an access token proves no sign-in, so a route for tokens only cannot require how one signed in',
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
