import { GatehouseError } from '../../../common/src/errors.js';
import { TOKEN_NAME_MAX, type TokenScope } from './access-tokens.js';
import { isAudience } from './assertions.js';

/**
 * What a request for a new access token may ask, checked the same way wherever it comes from
 * (the "Your tokens" form, JSON, the admin API, the users CLI): a name, an expiry in days within
 * TOKEN_MAX_DAYS (required: no token lives for ever), and an optional narrower scope (route ids,
 * groups that must be the owner's, read-only). Anything wrong is BAD_REQUEST saying what.
 */
export interface TokenRequest {
  name: string;
  expiresAt: number;
  scope: TokenScope;
}

/** Route ids a token may name at most. */
const ROUTES_MAX = 50;
const DAY_MS = 86_400_000;

const refuse = (message: string): never => {
  throw new GatehouseError('BAD_REQUEST', { message });
};

/** A list from JSON (an array of strings) or a form / command line (comma-separated). */
function listOf(value: unknown, what: string): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') {
    const entries = value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    // An empty form field: no narrowing asked.
    return entries.length > 0 ? entries : undefined;
  }
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  return refuse(`${what} must be a list of names.`);
}

function flagOf(value: unknown): boolean {
  if (value === undefined || value === null || value === false || value === '') return false;
  if (value === true || value === '1' || value === 'on' || value === 'true') return true;
  return refuse('readOnly must be true or false.');
}

/** The token's name: 1 to TOKEN_NAME_MAX printable characters (what the list shows). */
export function tokenNameOf(value: unknown): string {
  const name = typeof value === 'string' ? value.trim() : '';
  if (name.length === 0 || name.length > TOKEN_NAME_MAX)
    return refuse(`name must be 1 to ${TOKEN_NAME_MAX} characters.`);
  if (/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u.test(name))
    return refuse('name must hold printable characters only.');
  return name;
}

/** Whole days, 1 to maxDays (a number in JSON, a string in a form or on the command line). */
export function expiryDaysOf(value: unknown, maxDays: number): number {
  const days =
    typeof value === 'number'
      ? value
      : typeof value === 'string' && /^\s*\d{1,6}\s*$/.test(value)
        ? Number(value)
        : Number.NaN;
  if (!Number.isInteger(days) || days < 1 || days > maxDays)
    return refuse(`expiresInDays must be a whole number of days from 1 to ${maxDays}.`);
  return days;
}

/**
 * `input`: the JSON body ({ name, expiresInDays, scope: { routes, groups, readOnly } }) or the
 * form's flat fields (name, expiresInDays, routes, groups, readOnly). `ownerGroups`: the groups
 * the token's owner has now; a token never carries one they lack.
 */
export function parseTokenRequest(
  input: Record<string, unknown>,
  limits: { maxDays: number; ownerGroups: readonly string[]; now: number },
): TokenRequest {
  const name = tokenNameOf(input.name);
  const days = expiryDaysOf(input.expiresInDays, limits.maxDays);
  const nested = input.scope;
  if (
    nested !== undefined &&
    (typeof nested !== 'object' || nested === null || Array.isArray(nested))
  )
    refuse('scope must be an object.');
  const fields = (nested ?? input) as Record<string, unknown>;
  const scope: TokenScope = {};
  const routes = listOf(fields.routes, 'routes');
  if (routes) {
    if (routes.length > ROUTES_MAX) refuse(`routes may name at most ${ROUTES_MAX} routes.`);
    const bad = routes.find((r) => !isAudience(r));
    if (bad !== undefined) refuse(`routes: ${JSON.stringify(bad)} is not a route id.`);
    scope.routes = [...new Set(routes)];
  }
  const groups = listOf(fields.groups, 'groups');
  if (groups) {
    const foreign = groups.filter((g) => !limits.ownerGroups.includes(g));
    if (foreign.length > 0)
      refuse(
        `groups must be groups the owner has; not: ${foreign.map((g) => JSON.stringify(g)).join(', ')}.`,
      );
    scope.groups = [...new Set(groups)];
  }
  if (flagOf(fields.readOnly)) scope.readOnly = true;
  return { name, expiresAt: limits.now + days * DAY_MS, scope };
}
