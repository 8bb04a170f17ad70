/**
 * Where users come from besides the users file: OpenID Connect providers and an LDAP directory,
 * declared in one file (IDENTITY_SOURCES_FILE, YAML or JSON) and validated at start, every problem
 * listed at once (as the routes file is). Secrets are never written in the file: each names an
 * environment variable (`…Env`) or a file (`…File`) that holds it.
 *
 * This module owns the configuration's shape and its checks; what each source does with it is
 * adapters/oidc-provider.ts and adapters/ldap-directory.ts.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../../common/src/config.js';
import { parseYamlConfig, problemPath } from '../../common/src/yaml-config.js';
import { groupNameSchema } from './domain/users.js';

/** A provider's id: in URLs (/auth/oidc/<id>/…) and in user ids (`oidc:<id>:…`). */
const sourceId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'must be 1–32 lowercase letters, digits or -');

/** A claim or attribute path: `groups`, `realm_access.roles` (dots walk into objects). */
const claimPath = z
  .string()
  .regex(/^[A-Za-z0-9_:$-]+(\.[A-Za-z0-9_:$-]+)*$/, 'must be a claim name or a dotted path');

const envName = z
  .string()
  .regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name')
  .optional();
const filePath = z.string().min(1).optional();

const httpsOrLocal = z.string().refine((value) => {
  try {
    const u = new URL(value);
    if (u.protocol === 'https:') return true;
    // Plain http only to this machine (development, tests): a provider's answers are trusted.
    return u.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(u.hostname);
  } catch {
    return false;
  }
}, 'must be an https:// URL (http:// only for localhost)');

export const oidcProviderSchema = z
  .strictObject({
    id: sourceId,
    /** Shown on the button: "Sign in with <name>". */
    name: z.string().min(1).max(64),
    /** The issuer; its discovery document is <issuer>/.well-known/openid-configuration. */
    issuer: httpsOrLocal,
    clientId: z.string().min(1),
    /** The client secret by reference: an environment variable's name, or a file. */
    clientSecretEnv: envName,
    clientSecretFile: filePath,
    /** private_key_jwt instead of a secret: a PEM (PKCS#8) or JWK file with the client's key. */
    privateKeyFile: z.string().min(1).optional(),
    scopes: z
      .array(z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/))
      .default(['openid', 'profile', 'email']),
    claims: z
      .strictObject({
        /** The claim that becomes the Gatehouse username. */
        username: claimPath.default('preferred_username'),
        email: claimPath.default('email'),
        name: claimPath.default('name'),
        /** A list (or one string) of group names or ids; absent: no groups from the provider. */
        groups: claimPath.optional(),
      })
      .prefault({}),
    /** Group ids (Entra object ids) → the names routes use; unmapped ids are kept as they are. */
    groupNames: z.record(z.string().min(1), groupNameSchema).default({}),
    /** Only these email domains may sign in (the email must be verified). */
    allowedDomains: z.array(z.string().min(1)).default([]),
    /** Only members of one of these groups (after groupNames) may sign in. */
    allowedGroups: z.array(groupNameSchema).default([]),
    /** `acr` values that mean the provider checked a second factor (Keycloak "2", "…aal2"…). */
    mfaAcrValues: z.array(z.string().min(1)).default([]),
    /** Sign out at the provider too (RP-initiated logout) when it offers end_session_endpoint. */
    providerLogout: z.boolean().default(true),
    /** Re-check the user with the refresh token this often (seconds); 0: never. */
    refreshSeconds: z.number().int().min(0).max(86_400).default(0),
  })
  .superRefine((p, ctx) => {
    const ways = [p.clientSecretEnv, p.clientSecretFile, p.privateKeyFile].filter(Boolean);
    if (ways.length !== 1)
      ctx.addIssue({
        code: 'custom',
        path: ['clientSecretEnv'],
        message:
          'set exactly one of clientSecretEnv, clientSecretFile (client_secret_basic) or privateKeyFile (private_key_jwt)',
      });
    if (!p.scopes.includes('openid'))
      ctx.addIssue({ code: 'custom', path: ['scopes'], message: 'must include openid' });
    if (p.refreshSeconds > 0 && !p.scopes.includes('offline_access'))
      ctx.addIssue({
        code: 'custom',
        path: ['refreshSeconds'],
        message: 'needs a refresh token: add offline_access to scopes',
      });
  });

export const ldapSchema = z
  .strictObject({
    /** ldap://host:389 (with startTls) or ldaps://host:636. */
    url: z
      .string()
      .regex(/^ldaps?:\/\/[^/\s]+\/?$/, 'must be ldap://host[:port] or ldaps://host[:port]'),
    startTls: z.boolean().default(false),
    /** A private CA (PEM) the server's certificate must chain to; else the system's CAs. */
    caFile: z.string().min(1).optional(),
    /** The service account that searches for users (the user then binds with their password). */
    bindDn: z.string().min(1),
    bindPasswordEnv: envName,
    bindPasswordFile: filePath,
    userBase: z.string().min(1),
    /** {username} is replaced by the escaped username (RFC 4515). */
    userFilter: z
      .string()
      .includes('{username}', { message: 'must contain {username}' })
      .default('(&(objectClass=inetOrgPerson)(uid={username}))'),
    attributes: z
      .strictObject({
        username: z.string().min(1).default('uid'),
        email: z.string().min(1).default('mail'),
        name: z.string().min(1).default('cn'),
        /** A stable id that survives renames: entryUUID (OpenLDAP), objectGUID (AD). */
        id: z.string().min(1).default('entryUUID'),
        /** When the password last changed: pwdChangedTime (OpenLDAP ppolicy), pwdLastSet (AD). */
        passwordChanged: z.string().min(1).default('pwdChangedTime'),
      })
      .prefault({}),
    groups: z
      .strictObject({
        /** memberOf: read the user's memberOf; search: run filter under base. */
        from: z.enum(['memberOf', 'search']).default('memberOf'),
        base: z.string().min(1).optional(),
        /** {dn} is the escaped user DN, {username} the escaped username. */
        filter: z.string().default('(member={dn})'),
        /** The attribute that names a group (its CN by default). */
        nameAttribute: z.string().min(1).default('cn'),
        /** Active Directory: follow nested groups (LDAP_MATCHING_RULE_IN_CHAIN). */
        nested: z.boolean().default(false),
      })
      .prefault({}),
    timeoutMs: z.number().int().min(100).max(60_000).default(5000),
    poolSize: z.number().int().min(1).max(64).default(4),
    /** Re-check a signed-in user's account (exists, enabled, same password) this often (seconds). */
    recheckSeconds: z.number().int().min(10).max(86_400).default(300),
  })
  .superRefine((l, ctx) => {
    if (Boolean(l.bindPasswordEnv) === Boolean(l.bindPasswordFile))
      ctx.addIssue({
        code: 'custom',
        path: ['bindPasswordEnv'],
        message: 'set exactly one of bindPasswordEnv or bindPasswordFile',
      });
    if (l.startTls && l.url.startsWith('ldaps:'))
      ctx.addIssue({ code: 'custom', path: ['startTls'], message: 'ldaps:// is TLS already' });
    if (l.groups.from === 'search' && !l.groups.base)
      ctx.addIssue({
        code: 'custom',
        path: ['groups', 'base'],
        message: 'is required with from: search',
      });
  });

export const identitySourcesSchema = z
  .strictObject({
    /** Show the username and password form (local users, LDAP). false: providers only. */
    passwordForm: z.boolean().default(true),
    oidc: z.array(oidcProviderSchema).default([]),
    ldap: ldapSchema.optional(),
  })
  .superRefine((s, ctx) => {
    const seen = new Set<string>();
    s.oidc.forEach((p, i) => {
      if (seen.has(p.id))
        ctx.addIssue({ code: 'custom', path: ['oidc', i, 'id'], message: `${p.id} is used twice` });
      seen.add(p.id);
    });
    if (!s.passwordForm && s.oidc.length === 0)
      ctx.addIssue({
        code: 'custom',
        path: ['passwordForm'],
        message: 'false leaves no way to sign in: add an oidc provider',
      });
  });

export type OidcProviderConfig = z.output<typeof oidcProviderSchema>;
export type LdapConfig = z.output<typeof ldapSchema>;

/** A source's configuration with its secrets read (clientSecret, bindPassword, privateKey). */
export interface IdentitySources {
  passwordForm: boolean;
  oidc: Array<OidcProviderConfig & { clientSecret?: string; privateKey?: string }>;
  ldap?: LdapConfig & { bindPassword: string; ca?: string };
  /** Where it was read from (for messages), or undefined when no file is set. */
  file?: string;
}

export const NO_IDENTITY_SOURCES: IdentitySources = Object.freeze({
  passwordForm: true,
  oidc: [],
});

/**
 * Parse the file's text and read the secrets it names from `env` and the file system. Throws
 * ConfigError listing every problem (the file's, then each unreadable secret).
 */
export function parseIdentitySources(
  text: string,
  source: string,
  env: NodeJS.ProcessEnv,
  readFile: (path: string) => string = (path) => readFileSync(path, 'utf8'),
): IdentitySources {
  const data: unknown = parseYamlConfig(text, source) ?? {};
  const result = identitySourcesSchema.safeParse(data);
  const problems: string[] = result.success
    ? []
    : result.error.issues.map((issue) => {
        const where = problemPath(issue.path, data, 'oidc');
        return `${source}: ${where ? `${where}: ` : ''}${issue.message}`;
      });
  const secret = (where: string, byEnv?: string, byFile?: string): string | undefined => {
    if (byEnv) {
      const value = env[byEnv];
      if (!value) problems.push(`${source}: ${where}Env: ${byEnv} is not set`);
      return value || undefined;
    }
    if (byFile) {
      try {
        const value = readFile(byFile).trim();
        if (!value) problems.push(`${source}: ${where}File: ${byFile} is empty`);
        return value || undefined;
      } catch (err) {
        problems.push(
          `${source}: ${where}File: cannot read ${byFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
        );
      }
    }
    return undefined;
  };
  if (!result.success) {
    // The secrets the file names are read too, so that they are listed with its other problems.
    const named = (v: unknown) =>
      typeof v === 'string' && /^[A-Z_][A-Z0-9_]*$/.test(v) ? v : undefined;
    const path = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
    const raw = (data ?? {}) as { oidc?: unknown; ldap?: Record<string, unknown> };
    (Array.isArray(raw.oidc) ? (raw.oidc as Array<Record<string, unknown> | null>) : []).forEach(
      (p, i) => {
        if (typeof p !== 'object' || p === null) return;
        const at = `oidc[${i}]${typeof p.id === 'string' && p.id ? ` (${p.id})` : ''}.`;
        secret(`${at}clientSecret`, named(p.clientSecretEnv), path(p.clientSecretFile));
        if (path(p.privateKeyFile)) secret(`${at}privateKey`, undefined, path(p.privateKeyFile));
      },
    );
    if (typeof raw.ldap === 'object' && raw.ldap !== null)
      secret('ldap.bindPassword', named(raw.ldap.bindPasswordEnv), path(raw.ldap.bindPasswordFile));
    throw new ConfigError(problems);
  }
  const parsed = result.data;
  const oidc = parsed.oidc.map((p, i) => {
    const at = `oidc[${i}] (${p.id}).`;
    const clientSecret = secret(`${at}clientSecret`, p.clientSecretEnv, p.clientSecretFile);
    const privateKey = p.privateKeyFile
      ? secret(`${at}privateKey`, undefined, p.privateKeyFile)
      : undefined;
    return {
      ...p,
      ...(clientSecret ? { clientSecret } : {}),
      ...(privateKey ? { privateKey } : {}),
    };
  });
  let ldap: IdentitySources['ldap'];
  if (parsed.ldap) {
    const l = parsed.ldap;
    const bindPassword = secret('ldap.bindPassword', l.bindPasswordEnv, l.bindPasswordFile) ?? '';
    let ca: string | undefined;
    if (l.caFile) {
      try {
        ca = readFile(l.caFile);
      } catch (err) {
        problems.push(
          `${source}: ldap.caFile: cannot read ${l.caFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
        );
      }
    }
    ldap = { ...l, bindPassword, ...(ca ? { ca } : {}) };
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { passwordForm: parsed.passwordForm, oidc, ...(ldap ? { ldap } : {}), file: source };
}

/** IDENTITY_SOURCES_FILE read and checked, or no sources besides the users file. */
export function loadIdentitySources(env: NodeJS.ProcessEnv): IdentitySources {
  const file = env.IDENTITY_SOURCES_FILE;
  if (!file) return NO_IDENTITY_SOURCES;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([
      `IDENTITY_SOURCES_FILE: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    ]);
  }
  return parseIdentitySources(text, file, env);
}
