/**
 * The pure parts of "Sign in with an OpenID Connect provider" (issue 15): a provider's ID token
 * claims mapped to the identity backends see (mapClaims, claimAt, methodsOf), and
 * IDENTITY_SOURCES_FILE checked with every problem listed (parseIdentitySources).
 */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../common/src/config.js';
import { claimAt, mapClaims, methodsOf } from '../../session-service/src/domain/oidc-claims.js';
import {
  type OidcProviderConfig,
  oidcProviderSchema,
  parseIdentitySources,
} from '../../session-service/src/identity-sources.js';

const provider = (extra: Record<string, unknown> = {}): OidcProviderConfig =>
  oidcProviderSchema.parse({
    id: 'corp',
    name: 'Corp',
    issuer: 'https://id.example.com',
    clientId: 'gatehouse',
    clientSecretEnv: 'CORP_SECRET',
    ...extra,
  });

const BASE = { sub: 's-1', preferred_username: 'alice', email: 'alice@example.com' };

describe('claimAt', () => {
  it.each([
    [{ a: 1 }, 'a', 1],
    [{ realm_access: { roles: ['x'] } }, 'realm_access.roles', ['x']],
    [
      { 'realm_access.roles': ['literal'], realm_access: { roles: ['nested'] } },
      'realm_access.roles',
      ['literal'],
    ],
    [{ 'https://example.com/groups': ['g'] }, 'https://example.com/groups', ['g']],
    [{ a: { b: null } }, 'a.b.c', undefined],
    [{ a: 'text' }, 'a.length', undefined],
    [{}, 'toString', undefined],
    [{ a: {} }, 'a.constructor', undefined],
  ])('%j at %s → %j', (claims, path, expected) => {
    expect(claimAt(claims as Record<string, unknown>, path)).toEqual(expected);
  });
});

describe('mapClaims: the username', () => {
  it.each([
    ['absent', { sub: 's-1' }],
    ['empty', { sub: 's-1', preferred_username: '' }],
    ['not a string', { sub: 's-1', preferred_username: 42 }],
    ['a list', { sub: 's-1', preferred_username: ['alice'] }],
  ])('%s → refused, naming the claim', (_, claims) => {
    const mapped = mapClaims(provider(), claims);
    expect(mapped).toEqual({ ok: false, reason: 'no preferred_username claim' });
  });

  it('follows claims.username, also a dotted path and a claim named with a dot', () => {
    const nested = mapClaims(provider({ claims: { username: 'ext.login' } }), {
      ext: { login: 'nested-name' },
    });
    expect(nested.ok && nested.identity.username).toBe('nested-name');
    const literal = mapClaims(provider({ claims: { username: 'ext.login' } }), {
      'ext.login': 'literal-name',
      ext: { login: 'nested-name' },
    });
    expect(literal.ok && literal.identity.username).toBe('literal-name');
    // the default claim is then not looked at
    const other = mapClaims(provider({ claims: { username: 'upn' } }), BASE);
    expect(other).toEqual({ ok: false, reason: 'no upn claim' });
  });
});

describe('mapClaims: groups', () => {
  it.each([
    ['no groups claim configured', {}, { groups: ['a'] }, []],
    [
      'a list',
      { claims: { groups: 'groups' } },
      { groups: ['admins', 'staff'] },
      ['admins', 'staff'],
    ],
    ['one string', { claims: { groups: 'groups' } }, { groups: 'admins' }, ['admins']],
    ['absent', { claims: { groups: 'groups' } }, {}, []],
    ['an object', { claims: { groups: 'groups' } }, { groups: { admins: true } }, []],
    ['duplicates', { claims: { groups: 'groups' } }, { groups: ['a', 'a', 'b'] }, ['a', 'b']],
    [
      'non-strings skipped',
      { claims: { groups: 'groups' } },
      { groups: ['a', 7, null, { x: 1 }] },
      ['a'],
    ],
    [
      'a dotted path (Keycloak roles)',
      { claims: { groups: 'realm_access.roles' } },
      { realm_access: { roles: ['offline', 'editor'] } },
      ['offline', 'editor'],
    ],
    [
      'groupNames: Entra GUIDs to names, unmapped kept',
      {
        claims: { groups: 'groups' },
        groupNames: {
          '2c6b6d8e-1f0e-4d55-9d51-0c1e3a9b7f10': 'admins',
          '9a1f0d4c-7b0e-4a44-8a0c-6f7e2d1c0b99': 'staff',
        },
      },
      {
        groups: [
          '2c6b6d8e-1f0e-4d55-9d51-0c1e3a9b7f10',
          '9a1f0d4c-7b0e-4a44-8a0c-6f7e2d1c0b99',
          'ffffffff-0000-0000-0000-000000000000',
        ],
      },
      ['admins', 'staff', 'ffffffff-0000-0000-0000-000000000000'],
    ],
    [
      'groupNames: two ids to one name, kept once',
      { claims: { groups: 'groups' }, groupNames: { 'id-1': 'ops', 'id-2': 'ops' } },
      { groups: ['id-1', 'id-2'] },
      ['ops'],
    ],
  ])('%s', (_, config, claims, groups) => {
    const mapped = mapClaims(provider(config), { ...BASE, ...claims });
    expect(mapped.ok).toBe(true);
    if (!mapped.ok) return;
    expect(mapped.identity.groups).toEqual(groups);
    expect(mapped.identity.dropped).toEqual([]);
  });

  it.each([
    ['a comma', 'admins,root'],
    ['a space', 'domain users'],
    ['a tab', 'a\tb'],
    ['a newline', 'admins\nX-Auth-Request-Groups: root'],
    ['a control character', 'ad\u0000mins'],
    ['DEL', 'ad\u007fmins'],
    ['empty', ''],
  ])('a group with %s is dropped and reported; the others stay', (_, bad) => {
    const mapped = mapClaims(provider({ claims: { groups: 'groups' } }), {
      ...BASE,
      groups: ['staff', bad, 'ops'],
    });
    expect(mapped.ok).toBe(true);
    if (!mapped.ok) return;
    expect(mapped.identity.groups).toEqual(['staff', 'ops']);
    expect(mapped.identity.dropped).toEqual([`group ${JSON.stringify(bad)}`]);
  });
});

describe('mapClaims: email, name', () => {
  it.each([
    ['no @', 'alice.example.com'],
    ['a space', 'alice @example.com'],
    ['a newline', 'alice@example.com\nx'],
    ['a comma', 'alice@example.com,bob@example.com'],
  ])('an email with %s is dropped and reported', (_, email) => {
    const mapped = mapClaims(provider(), { ...BASE, email });
    expect(mapped.ok).toBe(true);
    if (!mapped.ok) return;
    expect(mapped.identity.email).toBe('');
    expect(mapped.identity.dropped).toEqual([`email ${JSON.stringify(email)}`]);
  });

  it('keeps a good email and the name (cut at 256); non-strings are empty', () => {
    const mapped = mapClaims(provider(), { ...BASE, name: 'n'.repeat(300) });
    expect(mapped.ok && mapped.identity).toMatchObject({
      username: 'alice',
      email: 'alice@example.com',
      name: 'n'.repeat(256),
      dropped: [],
    });
    const odd = mapClaims(provider(), { ...BASE, email: 5, name: { first: 'A' } });
    expect(odd.ok && odd.identity).toMatchObject({ email: '', name: '', dropped: [] });
  });
});

describe('mapClaims: allowedDomains, allowedGroups', () => {
  const domains = provider({ allowedDomains: ['Example.COM', 'corp.example'] });
  it.each([
    ['verified, listed', { email: 'a@example.com', email_verified: true }, true],
    ["verified as the string 'true'", { email: 'a@example.com', email_verified: 'true' }, true],
    ['domain case differs', { email: 'a@EXAMPLE.com', email_verified: true }, true],
    ['second domain', { email: 'a@corp.example', email_verified: true }, true],
    ['not verified', { email: 'a@example.com', email_verified: false }, false],
    ["'false'", { email: 'a@example.com', email_verified: 'false' }, false],
    ['verified claim absent', { email: 'a@example.com' }, false],
    ['verified as 1', { email: 'a@example.com', email_verified: 1 }, false],
    ['another domain', { email: 'a@evil.com', email_verified: true }, false],
    ['a subdomain', { email: 'a@sub.example.com', email_verified: true }, false],
    ['a suffix lookalike', { email: 'a@notexample.com', email_verified: true }, false],
    ['no email', { email_verified: true }, false],
    ['an email that was dropped', { email: 'a b@example.com', email_verified: true }, false],
  ])('%s → allowed %s', (_, claims, allowed) => {
    const mapped = mapClaims(domains, { sub: 's', preferred_username: 'a', ...claims });
    expect(mapped.ok).toBe(allowed);
    if (!mapped.ok) expect(mapped.reason).toMatch(/email domain not allowed/);
  });

  const groups = provider({
    claims: { groups: 'groups' },
    groupNames: { 'guid-admins': 'admins' },
    allowedGroups: ['admins', 'ops'],
  });
  it.each([
    ['in one', ['ops'], true],
    ['in one after groupNames', ['guid-admins'], true],
    ['in none', ['staff'], false],
    ['no groups', [], false],
    ['the raw id of a mapped group is not its name', ['admins-guid'], false],
    ['a near miss in case', ['Admins'], false],
  ])('%s → allowed %s', (_, list, allowed) => {
    const mapped = mapClaims(groups, { ...BASE, groups: list });
    expect(mapped.ok).toBe(allowed);
    if (!mapped.ok) expect(mapped.reason).toBe('in none of the allowed groups');
  });
});

describe('methodsOf', () => {
  it.each([
    ['amr absent', {}, [], ['pwd']],
    ['amr not a list', { amr: 'otp' }, [], ['pwd']],
    ['pwd', { amr: ['pwd'] }, [], ['pwd']],
    ['pwd + otp', { amr: ['pwd', 'otp'] }, [], ['pwd', 'otp']],
    ['mfa alone', { amr: ['mfa'] }, [], ['pwd', 'otp']],
    ['pwd + otp + mfa', { amr: ['pwd', 'otp', 'mfa'] }, [], ['pwd', 'otp']],
    ['hwk + mfa: no otp added', { amr: ['hwk', 'mfa'] }, [], ['pwd', 'hwk']],
    ['hwk + user kept', { amr: ['hwk', 'user'] }, [], ['pwd', 'hwk', 'user']],
    ['unknown values ignored', { amr: ['sms', 'face', 'swk', 'kba', 7] }, [], ['pwd']],
    ['unknown with otp', { amr: ['sms', 'otp'] }, [], ['pwd', 'otp']],
    ['acr listed in mfaAcrValues', { acr: '2' }, ['2'], ['pwd', 'otp']],
    ['acr not listed', { acr: '1' }, ['2'], ['pwd']],
    ['acr with no mfaAcrValues', { acr: 'urn:mfa' }, [], ['pwd']],
    ['acr listed, otp already', { amr: ['otp'], acr: '2' }, ['2'], ['pwd', 'otp']],
    ['acr empty never matches', { acr: '' }, [''], ['pwd']],
    ['acr not a string', { acr: 2 }, ['2'], ['pwd']],
  ])('%s', (_, claims, mfaAcrValues, expected) => {
    expect(methodsOf(claims, mfaAcrValues)).toEqual(expected);
  });

  it('mapClaims carries the methods', () => {
    const mapped = mapClaims(provider({ mfaAcrValues: ['urn:mfa'] }), { ...BASE, acr: 'urn:mfa' });
    expect(mapped.ok && mapped.identity.methods).toEqual(['pwd', 'otp']);
  });
});

// ---- IDENTITY_SOURCES_FILE ----

const ENV = { CORP_SECRET: 'corp-secret', LDAP_PASSWORD: 'ldap-password' };
const GOOD_PROVIDER = `
  - id: corp
    name: Corp
    issuer: https://id.example.com
    clientId: gatehouse
    clientSecretEnv: CORP_SECRET`;

function problemsOf(text: string, env: Record<string, string> = ENV, files = {}): string[] {
  try {
    parseIdentitySources(text, 'sources.yaml', env, (path) => {
      const content = (files as Record<string, string>)[path];
      if (content === undefined)
        throw Object.assign(new Error(`ENOENT ${path}`), { code: 'ENOENT' });
      return content;
    });
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('parseIdentitySources', () => {
  it('a good file parses, with defaults and the secret read', () => {
    const sources = parseIdentitySources(`oidc:${GOOD_PROVIDER}`, 'sources.yaml', ENV);
    expect(sources.passwordForm).toBe(true);
    expect(sources.oidc).toHaveLength(1);
    expect(sources.oidc[0]).toMatchObject({
      id: 'corp',
      clientSecret: 'corp-secret',
      scopes: ['openid', 'profile', 'email'],
      claims: { username: 'preferred_username', email: 'email', name: 'name' },
      refreshSeconds: 0,
      providerLogout: true,
    });
    expect(parseIdentitySources('', 'empty.yaml', {}).oidc).toEqual([]);
    // http only for this machine
    for (const issuer of ['http://localhost:8080', 'http://127.0.0.1:9000/realms/x'])
      expect(problemsOf(`oidc:${GOOD_PROVIDER.replace('https://id.example.com', issuer)}`)).toEqual(
        [],
      );
  });

  it.each([
    ['an unknown top-level key', `oidcs: []`, [/^sources\.yaml: .*oidcs/]],
    [
      'an unknown provider key (a typo)',
      `oidc:${GOOD_PROVIDER}\n    refreshSecond: 60`,
      [/oidc\[0\] \(corp\).*refreshSecond/],
    ],
    [
      'an unknown claims key',
      `oidc:${GOOD_PROVIDER}\n    claims: { user: sub }`,
      [/oidc\[0\] \(corp\)\.claims.*user/],
    ],
    [
      'a duplicate id',
      `oidc:${GOOD_PROVIDER}${GOOD_PROVIDER}`,
      [/oidc\[1\] \(corp\)\.id: corp is used twice/],
    ],
    [
      'a plain http issuer on another host',
      `oidc:${GOOD_PROVIDER.replace('https://id.example.com', 'http://id.example.com')}`,
      [/oidc\[0\] \(corp\)\.issuer: must be an https:\/\/ URL/],
    ],
    [
      'http on a name that only starts with localhost',
      `oidc:${GOOD_PROVIDER.replace('https://id.example.com', 'http://localhost.evil.com')}`,
      [/issuer: must be an https/],
    ],
    [
      'refreshSeconds without offline_access',
      `oidc:${GOOD_PROVIDER}\n    refreshSeconds: 60`,
      [/oidc\[0\] \(corp\)\.refreshSeconds: needs a refresh token: add offline_access/],
    ],
    [
      'scopes without openid',
      `oidc:${GOOD_PROVIDER}\n    scopes: [profile, email]`,
      [/scopes: must include openid/],
    ],
    [
      'no client secret at all',
      `oidc:${GOOD_PROVIDER.replace('\n    clientSecretEnv: CORP_SECRET', '')}`,
      [/clientSecretEnv: set exactly one of/],
    ],
    [
      'a secret two ways',
      `oidc:${GOOD_PROVIDER}\n    clientSecretFile: /run/secrets/corp`,
      [/clientSecretEnv: set exactly one of/],
    ],
    [
      'passwordForm false with no providers',
      `passwordForm: false`,
      [/passwordForm: false leaves no way to sign in/],
    ],
    [
      'a bad id',
      `oidc:${GOOD_PROVIDER.replace('id: corp', 'id: Corp_1')}`,
      [/oidc\[0\] \(Corp_1\)\.id: must be 1–32 lowercase/],
    ],
    [
      'a bad claim path',
      `oidc:${GOOD_PROVIDER}\n    claims: { groups: "roles..x" }`,
      [/claims\.groups: must be a claim name or a dotted path/],
    ],
    [
      'a bad group name in groupNames and allowedGroups',
      `oidc:${GOOD_PROVIDER}\n    groupNames: { guid-1: "domain admins" }\n    allowedGroups: ["a,b"]`,
      [
        /groupNames\.guid-1: group "domain admins" must not contain/,
        /allowedGroups\[0\]: group "a,b"/,
      ],
    ],
    [
      'ldap with both bindPasswordEnv and bindPasswordFile',
      `ldap:
  url: ldap://ldap.example.com
  bindDn: cn=svc,dc=example,dc=com
  bindPasswordEnv: LDAP_PASSWORD
  bindPasswordFile: /run/secrets/ldap
  userBase: ou=people,dc=example,dc=com`,
      [/ldap\.bindPasswordEnv: set exactly one of bindPasswordEnv or bindPasswordFile/],
    ],
    [
      'ldap with neither',
      `ldap:
  url: ldap://ldap.example.com
  bindDn: cn=svc,dc=example,dc=com
  userBase: ou=people,dc=example,dc=com`,
      [/ldap\.bindPasswordEnv: set exactly one/],
    ],
    [
      'ldap: ldaps with startTls, search groups without base, filter without {username}',
      `ldap:
  url: ldaps://ldap.example.com
  startTls: true
  bindDn: cn=svc,dc=example,dc=com
  bindPasswordEnv: LDAP_PASSWORD
  userBase: ou=people,dc=example,dc=com
  userFilter: (uid=alice)
  groups: { from: search }`,
      [
        /ldap\.userFilter: must contain \{username\}/,
        /ldap\.startTls: ldaps:\/\/ is TLS already/,
        /ldap\.groups\.base: is required/,
      ],
    ],
    [
      'YAML that does not parse',
      `oidc:\n  - id: corp\n   name: x\n  - : :`,
      [/^sources\.yaml:\d+:\d+: /],
    ],
    [
      'a key written twice',
      `passwordForm: true\npasswordForm: false`,
      [/^sources\.yaml:\d+:\d+: .*[Mm]ap keys must be unique/],
    ],
  ])('%s', (_, text, expected) => {
    const problems = problemsOf(text);
    expect(problems.length, problems.join('\n')).toBeGreaterThanOrEqual(expected.length);
    for (const pattern of expected)
      expect(
        problems.some((p) => pattern.test(p)),
        `${pattern} in:\n${problems.join('\n')}`,
      ).toBe(true);
    // every line says which file
    for (const p of problems) expect(p).toMatch(/^sources\.yaml[:]/);
  });

  it('lists several problems of one file at once', () => {
    const problems = problemsOf(`passwordForm: false
colour: blue
oidc:
  - id: corp
    name: Corp
    issuer: http://id.example.com
    clientId: gatehouse
    clientSecretEnv: CORP_SECRET
    clientSecretFile: /x
    refreshSeconds: 60
  - id: corp
    name: Corp again
    issuer: https://id2.example.com
    clientId: gatehouse
    clientSecretEnv: lower_case
ldap:
  url: ldap://ldap.example.com
  bindDn: cn=svc
  bindPasswordEnv: LDAP_PASSWORD
  bindPasswordFile: /y
  userBase: dc=example`);
    const expected = [
      /colour/,
      /oidc\[0\] \(corp\)\.issuer: must be an https/,
      /oidc\[0\] \(corp\)\.clientSecretEnv: set exactly one/,
      /oidc\[0\] \(corp\)\.refreshSeconds: needs a refresh token/,
      /oidc\[1\] \(corp\)\.id: corp is used twice/,
      /oidc\[1\] \(corp\)\.clientSecretEnv: must be an environment variable name/,
      /ldap\.bindPasswordEnv: set exactly one/,
    ];
    for (const pattern of expected)
      expect(
        problems.some((p) => pattern.test(p)),
        `${pattern} in:\n${problems.join('\n')}`,
      ).toBe(true);
  });

  it('names each secret that cannot be read: unset or empty variables, missing or empty files', () => {
    const problems = problemsOf(
      `oidc:
  - id: one
    name: One
    issuer: https://one.example.com
    clientId: c1
    clientSecretEnv: ONE_SECRET
  - id: two
    name: Two
    issuer: https://two.example.com
    clientId: c2
    clientSecretFile: /secrets/two
  - id: three
    name: Three
    issuer: https://three.example.com
    clientId: c3
    privateKeyFile: /secrets/three.pem
  - id: four
    name: Four
    issuer: https://four.example.com
    clientId: c4
    clientSecretEnv: FOUR_SECRET
ldap:
  url: ldap://ldap.example.com
  bindDn: cn=svc
  bindPasswordFile: /secrets/ldap
  caFile: /secrets/ca.pem
  userBase: dc=example`,
      { FOUR_SECRET: '' },
      { '/secrets/two': '  \n', '/secrets/ca.pem': 'PEM' },
    );
    expect(problems).toEqual([
      'sources.yaml: oidc[0] (one).clientSecretEnv: ONE_SECRET is not set',
      'sources.yaml: oidc[1] (two).clientSecretFile: /secrets/two is empty',
      'sources.yaml: oidc[2] (three).privateKeyFile: cannot read /secrets/three.pem: ENOENT',
      'sources.yaml: oidc[3] (four).clientSecretEnv: FOUR_SECRET is not set',
      'sources.yaml: ldap.bindPasswordFile: cannot read /secrets/ldap: ENOENT',
    ]);
  });

  it('a missing secret is listed together with the shape problems of the same file', () => {
    const problems = problemsOf(
      `oidc:${GOOD_PROVIDER.replace('CORP_SECRET', 'UNSET_SECRET')}
  - id: other
    name: Other
    issuer: http://other.example.com
    clientId: c
    clientSecretEnv: OTHER_SECRET`,
      {},
    );
    expect(problems.some((p) => /oidc\[1\] \(other\)\.issuer: must be an https/.test(p))).toBe(
      true,
    );
    expect(
      problems.some((p) => /oidc\[0\] \(corp\)\.clientSecretEnv: UNSET_SECRET is not set/.test(p)),
      problems.join('\n'),
    ).toBe(true);
  });
});
