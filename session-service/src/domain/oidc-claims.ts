import { AMR_VALUES, type Amr } from '../../../common/src/authentication.js';
import type { OidcProviderConfig } from '../identity-sources.js';
import { emailSchema, fieldProblem, groupNameSchema } from './users.js';

/**
 * A provider's ID token claims → the identity Gatehouse gives backends, and whether that
 * identity may sign in here at all. Pure: the relying party (routes/oidc.ts) checked the token.
 */
export interface MappedIdentity {
  username: string;
  email: string;
  name: string;
  groups: string[];
  /** How the provider says the user proved who they are (RFC 8176 values we know), at least pwd. */
  methods: Amr[];
  /** Why some of it was dropped (a group name backends could misread), for one log line. */
  dropped: string[];
}

export type Mapping = { ok: true; identity: MappedIdentity } | { ok: false; reason: string };

/** `realm_access.roles` walks into objects; a claim named with a dot is found as it is first. */
export function claimAt(claims: Record<string, unknown>, path: string): unknown {
  if (Object.hasOwn(claims, path)) return claims[path];
  let value: unknown = claims;
  for (const part of path.split('.')) {
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, part))
      return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

const text = (value: unknown) => (typeof value === 'string' ? value : '');

/**
 * The provider's amr (and its acr, when mfaAcrValues says that value means a second factor) as
 * RFC 8176 methods Gatehouse counts. Gatehouse derives `mfa` from the factors (authentication.ts),
 * so a provider that asserts `mfa` (or such an acr) without naming its second method is taken as
 * pwd + otp: a second factor of possession, which is what every provider's MFA is at least.
 */
export function methodsOf(claims: Record<string, unknown>, mfaAcrValues: readonly string[]): Amr[] {
  const asserted = Array.isArray(claims.amr) ? claims.amr.filter((v) => typeof v === 'string') : [];
  const known = new Set<Amr>(
    asserted.filter((v): v is Amr => (AMR_VALUES as readonly string[]).includes(v)),
  );
  const acr = text(claims.acr);
  const mfa = known.has('mfa') || (acr !== '' && mfaAcrValues.includes(acr));
  known.delete('mfa');
  // The provider vouched for the user: a first factor at least, whatever it names it.
  known.add('pwd');
  if (mfa && !known.has('otp') && !known.has('hwk')) known.add('otp');
  return AMR_VALUES.filter((m) => known.has(m));
}

export function mapClaims(config: OidcProviderConfig, claims: Record<string, unknown>): Mapping {
  const username = text(claimAt(claims, config.claims.username));
  if (!username) return { ok: false, reason: `no ${config.claims.username} claim` };
  const dropped: string[] = [];
  let email = text(claimAt(claims, config.claims.email));
  if (email && fieldProblem(emailSchema, email)) {
    dropped.push(`email ${JSON.stringify(email)}`);
    email = '';
  }
  const raw = config.claims.groups ? claimAt(claims, config.claims.groups) : undefined;
  const listed = Array.isArray(raw) ? raw : typeof raw === 'string' ? [raw] : [];
  const groups: string[] = [];
  for (const entry of listed) {
    if (typeof entry !== 'string') continue;
    const group = config.groupNames[entry] ?? entry;
    if (fieldProblem(groupNameSchema, group)) dropped.push(`group ${JSON.stringify(group)}`);
    else if (!groups.includes(group)) groups.push(group);
  }
  if (config.allowedDomains.length > 0) {
    const domain = email.split('@')[1]?.toLowerCase() ?? '';
    const verified = claims.email_verified === true || claims.email_verified === 'true';
    if (!verified || !config.allowedDomains.some((d) => d.toLowerCase() === domain))
      return { ok: false, reason: 'email domain not allowed (or email not verified)' };
  }
  if (config.allowedGroups.length > 0 && !config.allowedGroups.some((g) => groups.includes(g)))
    return { ok: false, reason: 'in none of the allowed groups' };
  return {
    ok: true,
    identity: {
      username,
      email,
      name: text(claimAt(claims, config.claims.name)).slice(0, 256),
      groups,
      methods: methodsOf(claims, config.mfaAcrValues),
      dropped,
    },
  };
}
