/**
 * A real OpenLDAP server (Debian's slapd 2.5) for the LDAP directory tests, in the style of
 * redis.ts: free ports, a temp dir, killed on stop.
 *
 * One slapd listens on ldap:// (StartTLS offered) and ldaps:// at once, with a certificate for
 * 127.0.0.1 and localhost from a test CA made here (caPem); otherCaPem is a second, unrelated CA
 * for "a certificate that does not chain to the configured CA is refused". The database (mdb,
 * suffix dc=example,dc=com) lives in the temp dir, so stop() then start() on the same ports keeps
 * the entries ("the directory went down, then came back").
 *
 * Overlays: memberof + refint (a groupOfNames' member keeps the user's memberOf, and removing a
 * user removes them from groups), ppolicy with a default policy (pwdChangedTime kept, and
 * pwdAccountLockedTime: 000001010000Z locks an account; such a bind answers 49 like a wrong
 * password). `allow bind_anon_dn`: this server ACCEPTS an unauthenticated bind (a DN with an empty
 * password, RFC 4513 5.1.2), as many servers do, so a client that does not refuse empty passwords
 * itself would sign anyone in.
 *
 * slapd runs in the foreground with `-d 256` (stats): every connection, bind and search is a line
 * of log(), so tests can assert what the server saw (which DNs bound, how many connections).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { KeyObject, randomBytes, webcrypto } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// @peculiar/x509 resolves its providers through tsyringe, which needs this polyfill first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { Attribute, Change, Client } from 'ldapts';
import { freePort, GiveUp, waitFor } from './ports.js';

export const SUFFIX = 'dc=example,dc=com';
export const ROOT_DN = `cn=admin,${SUFFIX}`;
export const SERVICE_DN = `cn=gatehouse,ou=services,${SUFFIX}`;
export const PEOPLE_DN = `ou=people,${SUFFIX}`;
export const GROUPS_DN = `ou=groups,${SUFFIX}`;
const POLICY_DN = `cn=default,ou=policies,${SUFFIX}`;

export const userDn = (uid: string): string => `uid=${uid},${PEOPLE_DN}`;
export const groupDn = (cn: string): string => `cn=${cn},${GROUPS_DN}`;

/** A structured entry: its DN and attributes (a value or a list of values each). */
export interface LdapEntry {
  dn: string;
  attributes: Record<string, string | string[]>;
}

export interface SlapdUser {
  uid: string;
  password: string;
  /** Defaults: cn `uid`, sn `uid`, mail `uid@example.com`. */
  cn?: string;
  sn?: string;
  mail?: string;
  /** Where under the suffix; default ou=people. */
  parent?: string;
}

export interface Slapd {
  ldapPort: number;
  ldapsPort: number;
  /** ldap://127.0.0.1:P (StartTLS available). */
  ldapUrl: string;
  /** ldaps://127.0.0.1:Q. */
  ldapsUrl: string;
  dir: string;
  /** The CA the server's certificate chains to (PEM). */
  caPem: string;
  /** A second CA that signed nothing this server presents. */
  otherCaPem: string;
  rootPassword: string;
  servicePassword: string;
  process: ChildProcess;
  /** slapd's stats log so far (all starts), one line each. */
  log(): string[];
  /**
   * Wait until everything the server did so far is in log() (the log arrives through a pipe, after
   * the answers): a marked search, then its line.
   */
  flushLog(): Promise<void>;
  /** flushLog(), then the log lines from `since` (a log().length taken before). */
  logSince(since: number): Promise<string[]>;
  /** flushLog(), then the connection ids (conn=N) that bound as `dn` in lines from `since`. */
  bindConnections(dn: string, since?: number): Promise<Set<string>>;
  /** Add entries in order, as the rootdn. */
  seed(entries: readonly LdapEntry[]): Promise<void>;
  /** An inetOrgPerson with uid, cn, sn, mail, userPassword; returns its DN. */
  addUser(user: SlapdUser): Promise<string>;
  removeUser(uid: string): Promise<void>;
  setPassword(uid: string, password: string): Promise<void>;
  /**
   * pwdAccountLockedTime: 000001010000Z by default (ppolicy: locked until an administrator
   * unlocks), or `at` (a GeneralizedTime: what ppolicy writes for a lockout after failures).
   */
  lockUser(uid: string, at?: string): Promise<void>;
  /** Remove pwdAccountLockedTime. */
  unlockUser(uid: string): Promise<void>;
  /** A groupOfNames under ou=groups with these member DNs (groupOfNames needs at least one). */
  addGroup(cn: string, memberDns: string[]): Promise<string>;
  addToGroup(cn: string, memberDn: string): Promise<void>;
  removeFromGroup(cn: string, memberDn: string): Promise<void>;
  /** Run `fn` with a client bound as the rootdn (over ldap://), unbound afterwards. */
  asRoot<T>(fn: (client: Client) => Promise<T>): Promise<T>;
  /** Kill slapd (the data stays). */
  stop(): Promise<void>;
  /** Start it again on the same ports, with the same data. */
  start(): Promise<void>;
  /** SIGSTOP: connections are accepted by the kernel, nothing answers (timeouts). */
  pause(): void;
  resume(): void;
  /** stop() and remove the temp dir. */
  close(): Promise<void>;
}

// --- certificates -----------------------------------------------------------------------------

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString('hex');
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALGORITHM, true, [
    'sign',
    'verify',
  ])) as unknown as CryptoKeyPair;
}

function keyPem(key: CryptoKey): string {
  return KeyObject.from(key as unknown as webcrypto.CryptoKey).export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
}

export interface TestCa {
  name: string;
  pem: string;
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
}

/** A self-signed CA certificate (a day long). */
export async function makeCa(name: string): Promise<TestCa> {
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  const keys = await generateKeys();
  const notBefore = new Date(Date.now() - 60_000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${name}`,
    notBefore,
    notAfter: new Date(notBefore.getTime() + 86_400_000),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { name, pem: cert.toString('pem'), cert, keys };
}

/** A server certificate for 127.0.0.1 and localhost signed by `ca`: { certPem, keyPem }. */
export async function issueServerCert(ca: TestCa): Promise<{ certPem: string; keyPem: string }> {
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  const keys = await generateKeys();
  const notBefore = new Date(Date.now() - 60_000);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: 'CN=localhost',
    issuer: ca.cert.subject,
    notBefore,
    notAfter: new Date(notBefore.getTime() + 86_400_000),
    signingAlgorithm: ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(
        [
          { type: 'dns', value: 'localhost' },
          { type: 'ip', value: '127.0.0.1' },
        ],
        false,
      ),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert, false),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: keyPem(keys.privateKey) };
}

// --- slapd ------------------------------------------------------------------------------------

function slapdConf(dir: string, rootPassword: string): string {
  return `# written by test/helpers/slapd.ts
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload refint
moduleload ppolicy
pidfile ${dir}/slapd.pid
argsfile ${dir}/slapd.args
TLSCACertificateFile ${dir}/ca.pem
TLSCertificateFile ${dir}/server.pem
TLSCertificateKeyFile ${dir}/server.key
# An unauthenticated bind (DN, empty password) succeeds here, as on many servers (RFC 4513 5.1.2).
allow bind_anon_dn

database mdb
suffix "${SUFFIX}"
rootdn "${ROOT_DN}"
rootpw ${rootPassword}
directory ${dir}/db
maxsize 10485760

overlay memberof
memberof-refint TRUE
overlay refint
refint_attributes member
overlay ppolicy
ppolicy_default "${POLICY_DN}"
ppolicy_hash_cleartext

access to attrs=userPassword
  by self write
  by anonymous auth
  by * none
access to *
  by dn.exact="${SERVICE_DN}" read
  by self read
  by * none
`;
}

function baseEntries(servicePassword: string): LdapEntry[] {
  const ou = (name: string): LdapEntry => ({
    dn: `ou=${name},${SUFFIX}`,
    attributes: { objectClass: 'organizationalUnit', ou: name },
  });
  return [
    {
      dn: SUFFIX,
      attributes: { objectClass: ['dcObject', 'organization'], dc: 'example', o: 'Example' },
    },
    ou('people'),
    ou('groups'),
    ou('services'),
    ou('policies'),
    {
      dn: POLICY_DN,
      attributes: {
        objectClass: ['device', 'pwdPolicy'],
        cn: 'default',
        pwdAttribute: 'userPassword',
        pwdLockout: 'TRUE',
        pwdMaxFailure: '0',
        // Any max age makes ppolicy keep pwdChangedTime from the entry's creation on.
        pwdMaxAge: '31536000',
      },
    },
    {
      dn: SERVICE_DN,
      attributes: {
        objectClass: ['organizationalRole', 'simpleSecurityObject'],
        cn: 'gatehouse',
        userPassword: servicePassword,
      },
    },
  ];
}

function spawnSlapd(dir: string, urls: string, lines: string[]): ChildProcess {
  const child = spawn('/usr/sbin/slapd', ['-f', join(dir, 'slapd.conf'), '-h', urls, '-d', '256'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let partial = '';
  const collect = (chunk: Buffer) => {
    const text = partial + chunk.toString('utf8');
    const parts = text.split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  child.on('error', (err) => {
    lines.push(`spawn error: ${err.message} (apt-get install slapd ldap-utils)`);
  });
  return child;
}

function killAndWait(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGCONT');
    child.kill(signal);
  });
}

async function rootClient(url: string, rootPassword: string, ca?: string): Promise<Client> {
  const client = new Client({
    url,
    timeout: 2000,
    connectTimeout: 2000,
    ...(ca ? { tlsOptions: { ca, rejectUnauthorized: true } } : {}),
  });
  await client.bind(ROOT_DN, rootPassword);
  return client;
}

export async function startSlapd(options: { servicePassword?: string } = {}): Promise<Slapd> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startSlapdOnce(options);
    } catch (err) {
      // A port from freePort() can be taken before slapd binds it: choose again.
      if (!(err instanceof PortTaken) || attempt >= 4) throw err;
    }
  }
}

class PortTaken extends Error {}

async function startSlapdOnce(options: { servicePassword?: string }): Promise<Slapd> {
  const ldapPort = await freePort();
  const ldapsPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-slapd-'));
  mkdirSync(join(dir, 'db'));
  const rootPassword = randomBytes(12).toString('hex');
  const servicePassword = options.servicePassword ?? randomBytes(12).toString('hex');
  const ca = await makeCa('Gatehouse test LDAP CA');
  const other = await makeCa('Unrelated CA');
  const server = await issueServerCert(ca);
  writeFileSync(join(dir, 'ca.pem'), ca.pem);
  writeFileSync(join(dir, 'server.pem'), server.certPem);
  writeFileSync(join(dir, 'server.key'), server.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'slapd.conf'), slapdConf(dir, rootPassword));

  const urls = `ldap://127.0.0.1:${ldapPort}/ ldaps://127.0.0.1:${ldapsPort}/`;
  const ldapUrl = `ldap://127.0.0.1:${ldapPort}`;
  const ldapsUrl = `ldaps://127.0.0.1:${ldapsPort}`;
  const lines: string[] = [];

  const waitUntilUp = async (child: ChildProcess) => {
    await waitFor(
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) {
          const text = lines.join('\n');
          if (/Address already in use/.test(text)) throw new GiveUp('port taken');
          throw new GiveUp(`slapd exited: ${lines.slice(-15).join('\n')}`);
        }
        // Both listeners, the ldaps one with our CA: the server is the one we started.
        for (const [url, caPem] of [
          [ldapUrl, undefined],
          [ldapsUrl, ca.pem],
        ] as const) {
          const client = await rootClient(url, rootPassword, caPem).catch(() => null);
          if (!client) return false;
          await client.unbind().catch(() => {});
        }
        return true;
      },
      15_000,
      `slapd on ports ${ldapPort} and ${ldapsPort}`,
    );
  };

  const slapd: Slapd = {
    ldapPort,
    ldapsPort,
    ldapUrl,
    ldapsUrl,
    dir,
    caPem: ca.pem,
    otherCaPem: other.pem,
    rootPassword,
    servicePassword,
    process: spawnSlapd(dir, urls, lines),
    log: () => [...lines],
    async flushLog() {
      const marker = `log-barrier-${randomBytes(6).toString('hex')}`;
      await slapd.asRoot((client) =>
        client.search(SUFFIX, { filter: `(cn=${marker})`, scope: 'base' }),
      );
      await waitFor(() => lines.some((line) => line.includes(marker)), 5000, 'slapd log line');
    },
    async logSince(since) {
      await slapd.flushLog();
      return lines.slice(since);
    },
    async bindConnections(dn, since = 0) {
      await slapd.flushLog();
      const wanted = `bind dn="${dn.toLowerCase()}"`;
      const conns = new Set<string>();
      for (const line of lines.slice(since)) {
        if (!line.toLowerCase().includes(wanted)) continue;
        const conn = /conn=(\d+)/.exec(line)?.[1];
        if (conn) conns.add(conn);
      }
      return conns;
    },
    async asRoot(fn) {
      const client = await rootClient(ldapUrl, rootPassword);
      try {
        return await fn(client);
      } finally {
        await client.unbind().catch(() => {});
      }
    },
    async seed(entries) {
      await slapd.asRoot(async (client) => {
        for (const entry of entries) await client.add(entry.dn, entry.attributes);
      });
    },
    async addUser(user) {
      const dn = `uid=${user.uid},${user.parent ?? PEOPLE_DN}`;
      await slapd.seed([
        {
          dn,
          attributes: {
            objectClass: ['inetOrgPerson'],
            uid: user.uid,
            cn: user.cn ?? user.uid,
            sn: user.sn ?? user.uid,
            mail: user.mail ?? `${user.uid}@example.com`,
            userPassword: user.password,
          },
        },
      ]);
      return dn;
    },
    async removeUser(uid) {
      await slapd.asRoot((client) => client.del(userDn(uid)));
    },
    async setPassword(uid, password) {
      await modify(userDn(uid), 'replace', 'userPassword', [password]);
    },
    async lockUser(uid, at = '000001010000Z') {
      await modify(userDn(uid), 'replace', 'pwdAccountLockedTime', [at]);
    },
    async unlockUser(uid) {
      await modify(userDn(uid), 'delete', 'pwdAccountLockedTime', []);
    },
    async addGroup(cn, memberDns) {
      const dn = groupDn(cn);
      await slapd.seed([
        { dn, attributes: { objectClass: 'groupOfNames', cn, member: memberDns } },
      ]);
      return dn;
    },
    async addToGroup(cn, memberDn) {
      await modify(groupDn(cn), 'add', 'member', [memberDn]);
    },
    async removeFromGroup(cn, memberDn) {
      await modify(groupDn(cn), 'delete', 'member', [memberDn]);
    },
    async stop() {
      await killAndWait(slapd.process, 'SIGTERM');
    },
    async start() {
      if (slapd.process.exitCode === null && slapd.process.signalCode === null) return;
      slapd.process = spawnSlapd(dir, urls, lines);
      await waitUntilUp(slapd.process);
    },
    pause() {
      slapd.process.kill('SIGSTOP');
    },
    resume() {
      slapd.process.kill('SIGCONT');
    },
    async close() {
      await slapd.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };

  async function modify(
    dn: string,
    operation: 'add' | 'delete' | 'replace',
    type: string,
    values: string[],
  ) {
    await slapd.asRoot((client) =>
      client.modify(dn, new Change({ operation, modification: new Attribute({ type, values }) })),
    );
  }

  try {
    await waitUntilUp(slapd.process);
  } catch (err) {
    await killAndWait(slapd.process);
    rmSync(dir, { recursive: true, force: true });
    if (err instanceof GiveUp && err.message === 'port taken') throw new PortTaken(err.message);
    throw err;
  }
  await slapd.seed(baseEntries(servicePassword));
  return slapd;
}
