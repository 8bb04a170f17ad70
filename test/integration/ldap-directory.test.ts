/**
 * adapters/ldap-directory.ts against a real OpenLDAP (test/helpers/slapd.ts): search then bind,
 * groups from memberOf and from a search, accounts that may not sign in, filter injection, TLS
 * (StartTLS, ldaps://, a refused CA), the directory down, hung and back, and the pool's bound.
 * What the server saw is read from slapd's own log (which DNs bound, on which connections).
 */
import { Writable } from 'node:stream';
import { Client } from 'ldapts';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isGatehouseError } from '../../common/src/errors.js';
import {
  createLdapDirectory,
  type LdapDirectory,
  type LdapDirectoryConfig,
} from '../../session-service/src/adapters/ldap-directory.js';
import {
  escapeFilterValue,
  normalizeDn,
  parseDn,
} from '../../session-service/src/adapters/ldap-names.js';
import { ldapSchema } from '../../session-service/src/identity-sources.js';
import {
  GROUPS_DN,
  PEOPLE_DN,
  SERVICE_DN,
  type Slapd,
  startSlapd,
  userDn,
} from '../helpers/slapd.js';

const PASSWORDS = {
  alice: 'alice-correct-horse',
  bob: 'bob-battery-staple',
  eve: 'eve-never-used',
  special: 'special-chars-pw',
} as const;

let slapd: Slapd;
const logLines: string[] = [];
const logger = pino(
  { level: 'debug' },
  new Writable({
    write(chunk, _enc, done) {
      logLines.push(chunk.toString());
      done();
    },
  }),
);
const open: LdapDirectory[] = [];

/** The config a file with these keys would give (ldapSchema's defaults), with its secrets read. */
function config(
  keys: Record<string, unknown> = {},
  secrets: { ca?: string } = {},
): LdapDirectoryConfig {
  const parsed = ldapSchema.parse({
    url: slapd.ldapUrl,
    startTls: true,
    bindDn: SERVICE_DN,
    bindPasswordEnv: 'LDAP_BIND_PASSWORD',
    userBase: PEOPLE_DN,
    ...keys,
  });
  return { ...parsed, bindPassword: slapd.servicePassword, ca: secrets.ca ?? slapd.caPem };
}

function directory(keys: Record<string, unknown> = {}, secrets: { ca?: string } = {}) {
  const dir = createLdapDirectory(config(keys, secrets), logger);
  open.push(dir);
  return dir;
}

async function unavailable(promise: Promise<unknown>): Promise<void> {
  const err = await promise.then(
    (value) => {
      throw new Error(`expected DIRECTORY_UNAVAILABLE, got ${JSON.stringify(value)}`);
    },
    (e: unknown) => e,
  );
  expect(isGatehouseError(err, 'DIRECTORY_UNAVAILABLE'), String(err)).toBe(true);
}

beforeAll(async () => {
  slapd = await startSlapd();
  await slapd.addUser({
    uid: 'alice',
    password: PASSWORDS.alice,
    cn: 'Alice Liddell',
    mail: 'alice@example.com',
  });
  await slapd.addUser({ uid: 'bob', password: PASSWORDS.bob, cn: 'Bob Builder' });
  await slapd.addUser({ uid: 'eve', password: PASSWORDS.eve });
  // Usernames with filter specials, to show they are escaped rather than refused.
  for (const uid of ['star*name', 'paren(s)', 'back\\slash'])
    await slapd.seed([
      {
        dn: `uid=${uid.replace(/\\/g, '\\5c')},${PEOPLE_DN}`,
        attributes: {
          objectClass: 'inetOrgPerson',
          uid,
          cn: uid,
          sn: uid,
          userPassword: PASSWORDS.special,
        },
      },
    ]);
  await slapd.addGroup('admins', [userDn('alice')]);
  await slapd.addGroup('staff', [userDn('alice'), userDn('bob')]);
  // Names that cannot travel in X-Auth-Request-Groups: dropped with a warning.
  await slapd.seed([
    {
      dn: `cn=bad\\,group,${GROUPS_DN}`,
      attributes: { objectClass: 'groupOfNames', cn: 'bad,group', member: userDn('alice') },
    },
    {
      dn: `cn=Ops Team,${GROUPS_DN}`,
      attributes: { objectClass: 'groupOfNames', cn: 'Ops Team', member: userDn('alice') },
    },
    // Membership by username (RFC 2307), found only by a search filter using {username}.
    {
      dn: `cn=developers,${GROUPS_DN}`,
      attributes: {
        objectClass: 'posixGroup',
        cn: 'developers',
        gidNumber: '5000',
        memberUid: 'alice',
      },
    },
  ]);
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((d) => d.close()));
});

afterAll(async () => {
  await slapd?.close();
  // No secret ever reached a log line.
  const all = logLines.join('');
  for (const secret of [...Object.values(PASSWORDS), slapd?.servicePassword ?? 'x'])
    expect(all).not.toContain(secret);
});

describe('DN and filter helpers', () => {
  it('escapes the RFC 4515 specials and nothing else', () => {
    expect(escapeFilterValue('a*b(c)d\\e\0f')).toBe('a\\2ab\\28c\\29d\\5ce\\00f');
    expect(escapeFilterValue('Zoë')).toBe('Zoë');
  });

  it('parses DNs with escaped commas, hex escapes and multi-valued RDNs', () => {
    expect(parseDn('cn=bad\\,group,ou=groups,dc=example,dc=com')?.[0]).toEqual([
      { type: 'cn', value: 'bad,group' },
    ]);
    expect(parseDn('CN=Smith\\2C John+uid=js,OU=x')?.[0]).toEqual([
      { type: 'CN', value: 'Smith, John' },
      { type: 'uid', value: 'js' },
    ]);
    expect(parseDn('cn=Zo\\c3\\ab,dc=x')?.[0]?.[0]?.value).toBe('Zoë');
    expect(parseDn('not a dn')).toBeNull();
    expect(normalizeDn('UID=Alice, OU=People,dc=Example,dc=com')).toBe(
      normalizeDn(userDn('alice')),
    );
  });
});

describe('sign-in against a real slapd', () => {
  it('signs in with the mapped username, email, name, id, passwordChanged and memberOf groups', async () => {
    const dir = directory();
    const check = await dir.authenticate('alice', PASSWORDS.alice);
    expect(check.ok).toBe(true);
    if (!check.ok) return;
    expect(check.account).toMatchObject({
      dn: userDn('alice'),
      username: 'alice',
      email: 'alice@example.com',
      name: 'Alice Liddell',
    });
    expect(check.account.id).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
    );
    expect(check.account.passwordChanged).toMatch(/^\d{14}Z$/);
    // 'bad,group' and 'Ops Team' are dropped, with a warning.
    expect([...check.account.groups].sort()).toEqual(['admins', 'staff']);
    expect(logLines.join('')).toContain('LDAP group dropped');
  });

  it('reads groups by search, with {dn} and {username}', async () => {
    const dir = directory({
      groups: {
        from: 'search',
        base: GROUPS_DN,
        filter: '(|(member={dn})(memberUid={username}))',
      },
    });
    const check = await dir.authenticate('alice', PASSWORDS.alice);
    expect(check.ok && [...check.account.groups].sort()).toEqual(['admins', 'developers', 'staff']);
    const bob = await dir.authenticate('bob', PASSWORDS.bob);
    expect(bob.ok && bob.account.groups).toEqual(['staff']);
  });

  it('answers ok:false for a wrong password (the server refused the bind) and an unknown user', async () => {
    const dir = directory();
    const mark = slapd.log().length;
    expect(await dir.authenticate('alice', 'wrong-password')).toEqual({ ok: false });
    expect((await slapd.bindConnections(userDn('alice'), mark)).size).toBe(1);
    expect((await slapd.logSince(mark)).join('\n')).toMatch(/RESULT tag=97 err=49/);
    expect(await dir.authenticate('nobody', PASSWORDS.alice)).toEqual({ ok: false });
  });

  it('refuses an empty password without binding, though this server accepts such a bind', async () => {
    // The danger is real here: a DN with an empty password is an unauthenticated bind that succeeds.
    const raw = new Client({ url: slapd.ldapUrl, timeout: 2000 });
    await raw.bind(userDn('eve'), '');
    await raw.unbind();
    const dir = directory();
    const mark = slapd.log().length;
    expect(await dir.authenticate('eve', '')).toEqual({ ok: false });
    expect((await slapd.bindConnections(userDn('eve'), mark)).size).toBe(0);
    expect((await slapd.logSince(mark)).join('\n')).not.toContain('uid=eve');
  });

  it('answers ok:false for an account locked by ppolicy', async () => {
    await slapd.addUser({ uid: 'locked', password: 'locked-pw' });
    const dir = directory();
    expect((await dir.authenticate('locked', 'locked-pw')).ok).toBe(true);
    await slapd.lockUser('locked');
    expect(await dir.authenticate('locked', 'locked-pw')).toEqual({ ok: false });
  });

  it('a removed user no longer signs in, and lookUp says null', async () => {
    await slapd.addUser({ uid: 'leaver', password: 'leaver-pw' });
    const dir = directory();
    const before = await dir.authenticate('leaver', 'leaver-pw');
    expect(before.ok).toBe(true);
    expect(await dir.lookUp(userDn('leaver'), 'leaver')).toMatchObject({ username: 'leaver' });
    await slapd.removeUser('leaver');
    expect(await dir.authenticate('leaver', 'leaver-pw')).toEqual({ ok: false });
    expect(await dir.lookUp(userDn('leaver'), 'leaver')).toBeNull();
  });

  it('lookUp follows group changes, a password change, and refuses another DN', async () => {
    await slapd.addUser({ uid: 'mover', password: 'mover-pw-1' });
    const dir = directory();
    expect((await dir.lookUp(userDn('mover'), 'mover'))?.groups).toEqual([]);
    await slapd.addToGroup('admins', userDn('mover'));
    expect((await dir.lookUp(userDn('mover'), 'mover'))?.groups).toEqual(['admins']);
    await slapd.removeFromGroup('admins', userDn('mover'));
    expect((await dir.lookUp(userDn('mover'), 'MOVER'))?.groups).toEqual([]);
    // The DN is compared normalised (case, spaces)…
    expect(await dir.lookUp('UID=mover, OU=people, DC=example, DC=com', 'mover')).not.toBeNull();
    // …and must be the entry's: bob's DN with mover's username is nobody.
    expect(await dir.lookUp(userDn('bob'), 'mover')).toBeNull();
    const before = (await dir.lookUp(userDn('mover'), 'mover'))?.passwordChanged;
    await slapd.setPassword('mover', 'mover-pw-2');
    expect(await dir.authenticate('mover', 'mover-pw-1')).toEqual({ ok: false });
    expect((await dir.authenticate('mover', 'mover-pw-2')).ok).toBe(true);
    const after = (await dir.lookUp(userDn('mover'), 'mover'))?.passwordChanged;
    expect(after).toMatch(/^\d{14}Z$/);
    expect(after && before && after >= before).toBe(true);
  });
});

describe('filter injection', () => {
  const spellings = [
    '*',
    'alice*',
    '*alice',
    'a*e',
    '*)(uid=*',
    'alice)(|(uid=*',
    '*)(|(objectClass=*',
    '\\2a',
    'alice\\2a',
    'admin)(&)',
    'alice)(&)',
    'alice\0',
    '\0',
    '(',
    ')',
    '\\',
    'alice\\',
    'alice(',
    // Look-alikes: slapd's matching folds fullwidth letters and outer spaces (it finds alice for
    // ａｌｉｃｅ and " alice "), so the adapter checks the entry holds the name as typed.
    'ａｌｉｃｅ',
    'аlice', // Cyrillic а
    'alice\u200b',
    ' alice',
    'alice ',
    'al\u00adice',
  ];

  it.each(spellings.map((s) => [JSON.stringify(s), s]))(
    '%s with alice’s password: ok:false',
    async (_shown, username) => {
      const dir = directory();
      const mark = slapd.log().length;
      expect(await dir.authenticate(username, PASSWORDS.alice)).toEqual({ ok: false });
      expect((await slapd.bindConnections(userDn('alice'), mark)).size).toBe(0);
      // The server received the filter's shape unchanged: one equality on uid, nothing added.
      const searches = (await slapd.logSince(mark)).filter((l) =>
        l.includes(' SRCH base="ou=people'),
      );
      expect(searches).toHaveLength(1);
      expect(searches[0]).toMatch(/filter="\(&\(objectClass=inetOrgPerson\)\(uid=[^*()"]*\)\)"$/);
    },
  );

  it('usernames that contain the specials sign in as themselves (escaped, not refused)', async () => {
    const dir = directory();
    for (const uid of ['star*name', 'paren(s)', 'back\\slash']) {
      const check = await dir.authenticate(uid, PASSWORDS.special);
      expect(check.ok && check.account.username, uid).toBe(uid);
    }
    // alice's case differs only: the same account (the directory's spelling comes back).
    const upper = await dir.authenticate('ALICE', PASSWORDS.alice);
    expect(upper.ok && upper.account.username).toBe('alice');
  });
});

describe('TLS', () => {
  it('StartTLS on ldap:// and ldaps:// with the test CA both work (also by host name)', async () => {
    const startTls = directory();
    expect((await startTls.authenticate('alice', PASSWORDS.alice)).ok).toBe(true);
    const ldaps = directory({ url: slapd.ldapsUrl, startTls: false });
    expect((await ldaps.authenticate('alice', PASSWORDS.alice)).ok).toBe(true);
    await ldaps.ping();
    const byName = directory({ url: `ldaps://localhost:${slapd.ldapsPort}`, startTls: false });
    expect((await byName.authenticate('alice', PASSWORDS.alice)).ok).toBe(true);
    // The service connections really were encrypted (slapd logs ssf=256 for TLS binds).
    const binds = (await slapd.logSince(0)).filter((l) =>
      l.includes(`BIND dn="${SERVICE_DN}" mech=SIMPLE`),
    );
    expect(binds.length).toBeGreaterThan(0);
    expect(binds.slice(-3).every((l) => / ssf=(128|256)/.test(l))).toBe(true);
  });

  it('a certificate that does not chain to the configured CA is DIRECTORY_UNAVAILABLE', async () => {
    const mark = slapd.log().length;
    const ldaps = directory({ url: slapd.ldapsUrl, startTls: false }, { ca: slapd.otherCaPem });
    await unavailable(ldaps.authenticate('alice', PASSWORDS.alice));
    await unavailable(ldaps.ping());
    const startTls = directory({}, { ca: slapd.otherCaPem });
    await unavailable(startTls.authenticate('alice', PASSWORDS.alice));
    await unavailable(startTls.lookUp(userDn('alice'), 'alice'));
    // Nothing was sent in the clear after the refusal: no bind reached the server.
    expect((await slapd.bindConnections(SERVICE_DN, mark)).size).toBe(0);
    expect((await slapd.bindConnections(userDn('alice'), mark)).size).toBe(0);
  });
});

describe('the pool', () => {
  it('20 concurrent sign-ins use at most poolSize service connections; users bind on their own', async () => {
    const dir = directory({ poolSize: 3 });
    const mark = slapd.log().length;
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        i % 2 === 0
          ? dir.authenticate('alice', PASSWORDS.alice)
          : dir.authenticate('bob', PASSWORDS.bob),
      ),
    );
    expect(results.every((r) => r.ok)).toBe(true);
    expect(dir.poolStats().peak).toBeLessThanOrEqual(3);
    const service = await slapd.bindConnections(SERVICE_DN, mark);
    expect(service.size).toBeGreaterThanOrEqual(1);
    expect(service.size).toBeLessThanOrEqual(3);
    const users = new Set([
      ...(await slapd.bindConnections(userDn('alice'), mark)),
      ...(await slapd.bindConnections(userDn('bob'), mark)),
    ]);
    // A fresh connection for each user bind, never a pooled one rebound.
    expect(users.size).toBe(20);
    expect([...users].filter((c) => service.has(c))).toEqual([]);
  });
});

// Last: these stop and pause the server.
describe('the directory down, hung, and back', () => {
  it('stopped: DIRECTORY_UNAVAILABLE (not ok:false) at once; started again: works (the pool recovers)', async () => {
    const timeoutMs = 1500;
    const dir = directory({ timeoutMs, poolSize: 2 });
    expect((await dir.authenticate('alice', PASSWORDS.alice)).ok).toBe(true);
    await slapd.stop();
    try {
      const started = Date.now();
      await unavailable(dir.authenticate('alice', PASSWORDS.alice));
      await unavailable(dir.authenticate('alice', 'wrong-password'));
      await unavailable(dir.lookUp(userDn('alice'), 'alice'));
      await unavailable(dir.ping());
      expect(Date.now() - started).toBeLessThan(timeoutMs);
    } finally {
      await slapd.start();
    }
    expect((await dir.authenticate('alice', PASSWORDS.alice)).ok).toBe(true);
    expect(await dir.lookUp(userDn('alice'), 'alice')).not.toBeNull();
    expect(dir.poolStats().open).toBeLessThanOrEqual(2);
  });

  it('hung (SIGSTOP): DIRECTORY_UNAVAILABLE within timeoutMs; resumed: works again', async () => {
    const timeoutMs = 800;
    const dir = directory({ timeoutMs });
    expect((await dir.authenticate('alice', PASSWORDS.alice)).ok).toBe(true);
    slapd.pause();
    try {
      for (const attempt of [
        () => dir.authenticate('alice', PASSWORDS.alice),
        () => dir.lookUp(userDn('alice'), 'alice'),
        () => directory({ timeoutMs }).ping(),
      ]) {
        const started = Date.now();
        await unavailable(attempt());
        const took = Date.now() - started;
        expect(took).toBeGreaterThanOrEqual(timeoutMs - 50);
        expect(took).toBeLessThan(timeoutMs + 700);
      }
    } finally {
      slapd.resume();
    }
    expect((await dir.authenticate('alice', PASSWORDS.alice)).ok).toBe(true);
  });

  it('errors carry no secret in their message', async () => {
    const dir = directory({ timeoutMs: 500 });
    await slapd.stop();
    try {
      const err = await dir.authenticate('alice', PASSWORDS.alice).catch((e: unknown) => e);
      const text = `${String(err)} ${String((err as Error).cause)} ${JSON.stringify(err)}`;
      expect(isGatehouseError(err, 'DIRECTORY_UNAVAILABLE')).toBe(true);
      expect(text).not.toContain(PASSWORDS.alice);
      expect(text).not.toContain(slapd.servicePassword);
    } finally {
      await slapd.start();
    }
  });
});
