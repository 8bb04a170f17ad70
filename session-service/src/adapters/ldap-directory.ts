/**
 * An LDAP directory (OpenLDAP, Active Directory…) as a Directory (domain/directory.ts), on ldapts.
 *
 * Sign-in is search then bind: a service account (bindDn) finds the one entry userFilter matches
 * for the username (escaped by RFC 4515 in ldap-names.ts, so a username cannot widen the
 * filter), then a fresh, short-lived connection binds as that entry's DN with the password. The service account's
 * connections are pooled (at most poolSize, reused); a pooled connection is never rebound as a
 * user. An empty password is refused before any bind: on many servers a DN with an empty password
 * is an "unauthenticated bind" that succeeds (RFC 4513 5.1.2).
 *
 * Fail closed: the directory saying no (no such user, several matches, wrong password, locked or
 * disabled: 49, or 50/53 to a user's bind) is `{ ok: false }`; the directory not answering (refused,
 * timed out after timeoutMs, its certificate refused, the service account refused) throws
 * GatehouseError('DIRECTORY_UNAVAILABLE'), a 503. Passwords never reach a log line or an error.
 *
 * ldapts reconnects by itself when an operation finds its socket closed, and such a connection is
 * anonymous (and, after StartTLS, in clear text): a pooled connection whose socket closed is
 * therefore dropped, checked right before each operation, never used again.
 */
import { isIP, type Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { Client, type Entry, InvalidCredentialsError, ResultCodeError } from 'ldapts';
import { GatehouseError } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/logger.js';
import type { Directory, DirectoryAccount, DirectoryCheck } from '../domain/directory.js';
import { emailSchema, fieldProblem, groupNameSchema } from '../domain/users.js';
import type { IdentitySources } from '../identity-sources.js';
import { domainRoot, escapeFilterValue, normalizeDn, parseDn } from './ldap-names.js';

export type LdapDirectoryConfig = NonNullable<IdentitySources['ldap']>;

/** LDAP_MATCHING_RULE_IN_CHAIN: Active Directory's transitive membership (nested groups). */
export const IN_CHAIN = '1.2.840.113556.1.4.1941';

/** Attributes that hold binary values (read as Buffers, ids base64-encoded). */
const BINARY_ATTRIBUTES = new Set(['objectguid', 'ms-ds-consistencyguid', 'objectsid']);

/** Longer usernames are refused without asking the directory. */
const USERNAME_LIMIT = 256;

/** ppolicy's pwdAccountLockedTime for "locked until an administrator unlocks it". */
const PPOLICY_ADMIN_LOCK = '000001010000Z';
/** Active Directory's userAccountControl flag of a disabled account. */
const AD_ACCOUNTDISABLE = 0x2;

/** Result codes of a user's bind that mean "this account may not sign in" (not "down"). */
const REFUSED_BIND = new Set([
  49, // invalidCredentials: wrong password, no such DN, locked (ppolicy), AD's disabled/expired
  50, // insufficientAccessRights
  53, // unwillingToPerform: some servers' inactivated accounts
]);

export interface LdapDirectory extends Directory {
  /** The service-account pool: connections open now, idle now, the most ever open at once. */
  poolStats(): { open: number; idle: number; peak: number };
}

function attribute(entry: Entry, name: string): Array<string | Buffer> {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === name.toLowerCase());
  if (!key || key === 'dn') return [];
  const value = entry[key];
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

function firstText(entry: Entry, name: string): string | undefined {
  const value = attribute(entry, name)[0];
  if (value === undefined) return undefined;
  return Buffer.isBuffer(value) ? value.toString('utf8') : value;
}

/** The directory cannot be asked (down, timed out, TLS refused, service account refused). */
function unavailable(cause: unknown): GatehouseError {
  return new GatehouseError('DIRECTORY_UNAVAILABLE', { cause });
}

/** What went wrong, without anything a caller passed in: for log lines. */
function reason(err: unknown): string {
  if (err instanceof ResultCodeError) return `LDAP result ${err.code} (${err.name})`;
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

class ConnectionLost extends Error {
  constructor() {
    super('the pooled LDAP connection was closed');
  }
}

/** A connection bound as the service account, dropped as soon as its socket closes. */
class ServiceConnection {
  dead = false;
  constructor(readonly client: Client) {
    for (const socket of sockets(client)) socket.once('close', () => this.markDead());
  }
  onDead: () => void = () => {};
  private markDead() {
    if (this.dead) return;
    this.dead = true;
    this.onDead();
  }
  get usable(): boolean {
    return !this.dead && this.client.isConnected;
  }
  /** Checked and started in one tick: ldapts would otherwise reconnect anonymously. */
  search(base: string, options: Parameters<Client['search']>[1]) {
    if (!this.usable) return Promise.reject(new ConnectionLost());
    return this.client.search(base, options);
  }
  close() {
    this.markDead();
    return this.client.unbind().catch(() => {});
  }
}

/** The client's socket (ldapts keeps it private): for its 'close' event. */
function sockets(client: Client): Socket[] {
  const socket = (client as unknown as { socket?: Socket }).socket;
  return socket ? [socket] : [];
}

export function createLdapDirectory(config: LdapDirectoryConfig, logger?: Logger): LdapDirectory {
  const log = logger?.child({ component: 'ldap-directory' });
  const url = new URL(config.url);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const tlsOptions: ConnectionOptions = {
    rejectUnauthorized: true,
    ...(config.ca ? { ca: config.ca } : {}),
    // SNI and the name checked: a host name; an IP address is checked against the host option.
    ...(isIP(host) ? {} : { servername: host }),
  };
  const secure = url.protocol === 'ldaps:';
  const timeoutMs = config.timeoutMs;
  const groups = config.groups;
  const binaryId = BINARY_ATTRIBUTES.has(config.attributes.id.toLowerCase());
  const groupsBySearch = groups.from === 'search' || groups.nested;
  const groupFilter =
    groups.nested && (groups.from === 'memberOf' || groups.filter === '(member={dn})')
      ? `(member:${IN_CHAIN}:={dn})`
      : groups.filter;
  const groupBase = groups.base ?? domainRoot(config.userBase);
  /**
   * The attributes userFilter compares with the username (`(uid={username})`): the entry found
   * must hold the username as typed (case aside), since servers fold more than case when they
   * match (OpenLDAP: fullwidth ａｌｉｃｅ and " alice " both find alice).
   */
  const matchedAttributes = [
    ...config.userFilter.matchAll(/\(([A-Za-z0-9.;-]+)=\{username\}\)/g),
  ].map((m) => m[1] as string);
  const userAttributes = [
    ...new Set([
      ...matchedAttributes,
      config.attributes.username,
      config.attributes.email,
      config.attributes.name,
      config.attributes.id,
      config.attributes.passwordChanged,
      // An administrator's disabling (DirectoryAccount.disabled); a server ignores names it lacks.
      'pwdAccountLockedTime',
      'userAccountControl',
      ...(groupsBySearch ? [] : ['memberOf']),
    ]),
  ];

  /** A connected (and, with startTls, encrypted) client; not bound. Destroyed on failure. */
  async function connect(): Promise<Client> {
    const client = new Client({
      url: config.url,
      timeout: timeoutMs,
      connectTimeout: timeoutMs,
      // Only for ldaps://: ldapts speaks TLS from the first byte whenever tlsOptions is set.
      ...(secure ? { tlsOptions } : {}),
    });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const steps = (async () => {
        if (config.startTls) await client.startTLS({ ...tlsOptions, host });
      })();
      await Promise.race([steps, deadline]);
      return client;
    } catch (err) {
      await client.unbind().catch(() => {});
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** connect() then bind as `dn`, within timeoutMs (ldapts times the bind itself). */
  async function connectAndBind(dn: string, password: string): Promise<Client> {
    const client = await connect();
    try {
      await client.bind(dn, password);
      return client;
    } catch (err) {
      await client.unbind().catch(() => {});
      throw err;
    }
  }

  // --- the service account's pool -------------------------------------------------------------

  const idle: ServiceConnection[] = [];
  let open = 0;
  let peak = 0;
  let closed = false;
  const waiters: Array<() => void> = [];
  const wakeOne = () => waiters.shift()?.();

  function discard(conn: ServiceConnection) {
    const at = idle.indexOf(conn);
    if (at >= 0) idle.splice(at, 1);
    void conn.close();
  }

  async function acquire(): Promise<ServiceConnection> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (closed) throw unavailable(new Error('the directory client is closed'));
      const reused = idle.pop();
      if (reused) {
        if (reused.usable) return reused;
        discard(reused);
        continue;
      }
      if (open < config.poolSize) {
        open++;
        peak = Math.max(peak, open);
        let client: Client;
        try {
          client = await connectAndBind(config.bindDn, config.bindPassword);
        } catch (err) {
          open--;
          wakeOne();
          log?.warn({ reason: reason(err) }, 'LDAP service account could not connect or bind');
          throw unavailable(err);
        }
        const conn = new ServiceConnection(client);
        conn.onDead = () => {
          open--;
          const at = idle.indexOf(conn);
          if (at >= 0) idle.splice(at, 1);
          wakeOne();
        };
        return conn;
      }
      const left = deadline - Date.now();
      if (left <= 0)
        throw unavailable(new Error(`all ${config.poolSize} directory connections stayed busy`));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          const at = waiters.indexOf(wake);
          if (at >= 0) waiters.splice(at, 1);
          resolve();
        }, left);
        const wake = () => {
          clearTimeout(timer);
          resolve();
        };
        waiters.push(wake);
      });
    }
  }

  function release(conn: ServiceConnection, healthy: boolean) {
    if (closed || !healthy || !conn.usable) {
      discard(conn);
      return;
    }
    idle.push(conn);
    wakeOne();
  }

  /** Run `fn` on a pooled service connection; any failure is DIRECTORY_UNAVAILABLE. */
  async function withService<T>(fn: (conn: ServiceConnection) => Promise<T>): Promise<T> {
    const conn = await acquire();
    try {
      const result = await fn(conn);
      release(conn, true);
      return result;
    } catch (err) {
      // A result code on a healthy connection (no such base…) leaves the connection usable.
      release(conn, err instanceof ResultCodeError);
      if (err instanceof GatehouseError) throw err;
      log?.warn({ reason: reason(err) }, 'LDAP directory did not answer');
      throw unavailable(err);
    }
  }

  // --- reading accounts -----------------------------------------------------------------------

  /** The one entry userFilter matches for `username`, or null (none, or more than one). */
  async function findUser(conn: ServiceConnection, username: string): Promise<Entry | null> {
    const filter = config.userFilter.replaceAll('{username}', escapeFilterValue(username));
    const { searchEntries } = await conn.search(config.userBase, {
      scope: 'sub',
      filter,
      sizeLimit: 2,
      attributes: userAttributes,
      explicitBufferAttributes: binaryId ? [config.attributes.id, 'objectGUID'] : [],
    });
    if (searchEntries.length !== 1) {
      if (searchEntries.length > 1)
        log?.warn('LDAP user filter matched more than one entry for a username: none may sign in');
      return null;
    }
    const entry = searchEntries[0] as Entry;
    if (matchedAttributes.length > 0) {
      const typed = username.toLowerCase();
      const holds = matchedAttributes.some((name) =>
        attribute(entry, name).some((v) => String(v).toLowerCase() === typed),
      );
      if (!holds) {
        log?.info({ dn: entry.dn }, 'LDAP entry matched a username it does not hold: refused');
        return null;
      }
    }
    return entry;
  }

  function groupName(raw: string, seen: Set<string>, names: string[]) {
    const problem = fieldProblem(groupNameSchema, raw);
    if (problem) {
      log?.warn({ problem }, 'LDAP group dropped: its name cannot be passed on');
      return;
    }
    if (!seen.has(raw)) {
      seen.add(raw);
      names.push(raw);
    }
  }

  async function readGroups(
    conn: ServiceConnection,
    entry: Entry,
    username: string,
  ): Promise<string[]> {
    const names: string[] = [];
    const seen = new Set<string>();
    const nameAttribute = groups.nameAttribute.toLowerCase();
    if (groupsBySearch) {
      const filter = groupFilter
        .replaceAll('{dn}', escapeFilterValue(entry.dn))
        .replaceAll('{username}', escapeFilterValue(username));
      const { searchEntries } = await conn.search(groupBase, {
        scope: 'sub',
        filter,
        attributes: [groups.nameAttribute],
      });
      for (const group of searchEntries) {
        const name = firstText(group, groups.nameAttribute);
        if (name !== undefined) groupName(name, seen, names);
      }
      return names;
    }
    for (const value of attribute(entry, 'memberOf')) {
      const dn = Buffer.isBuffer(value) ? value.toString('utf8') : value;
      const rdns = parseDn(dn);
      const fromRdn = rdns?.[0]?.find((p) => p.type.toLowerCase() === nameAttribute)?.value;
      if (fromRdn !== undefined) {
        groupName(fromRdn, seen, names);
        continue;
      }
      if (!rdns) {
        log?.warn({ memberOf: dn }, 'LDAP memberOf value is not a DN: group dropped');
        continue;
      }
      // The name is not in the DN (nameAttribute: sAMAccountName…): read the group.
      const { searchEntries } = await conn.search(dn, {
        scope: 'base',
        filter: '(objectClass=*)',
        attributes: [groups.nameAttribute],
      });
      const name = searchEntries[0] ? firstText(searchEntries[0], groups.nameAttribute) : undefined;
      if (name !== undefined) groupName(name, seen, names);
    }
    return names;
  }

  function toAccount(entry: Entry, typed: string, groupNames: string[]): DirectoryAccount {
    const username = firstText(entry, config.attributes.username) ?? typed;
    const rawId = attribute(entry, config.attributes.id)[0];
    const id =
      rawId === undefined
        ? entry.dn
        : Buffer.isBuffer(rawId)
          ? rawId.toString(binaryId ? 'base64' : 'utf8')
          : rawId;
    let email = firstText(entry, config.attributes.email) ?? '';
    const emailProblem = fieldProblem(emailSchema, email);
    if (emailProblem) {
      log?.warn({ dn: entry.dn, problem: emailProblem }, 'LDAP email not passed on');
      email = '';
    }
    const passwordChanged = firstText(entry, config.attributes.passwordChanged);
    const disabled =
      firstText(entry, 'pwdAccountLockedTime') === PPOLICY_ADMIN_LOCK ||
      (Number(firstText(entry, 'userAccountControl') ?? 0) & AD_ACCOUNTDISABLE) !== 0;
    return {
      id: id || entry.dn,
      dn: entry.dn,
      username,
      email,
      name: firstText(entry, config.attributes.name) ?? username,
      groups: groupNames,
      ...(passwordChanged !== undefined ? { passwordChanged } : {}),
      ...(disabled ? { disabled: true as const } : {}),
    };
  }

  /** Bind as the user on a connection of its own: true, false (refused), or throws (down). */
  async function checkPassword(dn: string, password: string): Promise<boolean> {
    let client: Client;
    try {
      client = await connectAndBind(dn, password);
    } catch (err) {
      if (err instanceof InvalidCredentialsError) return false;
      if (err instanceof ResultCodeError && REFUSED_BIND.has(err.code)) {
        log?.info({ dn, result: err.code }, 'LDAP directory refused the bind');
        return false;
      }
      log?.warn({ reason: reason(err) }, 'LDAP directory did not answer a user bind');
      throw unavailable(err);
    }
    await client.unbind().catch(() => {});
    return true;
  }

  return {
    async authenticate(username: string, password: string): Promise<DirectoryCheck> {
      // An empty password would be an unauthenticated bind, which many servers let succeed.
      if (password === '' || username === '' || username.length > USERNAME_LIMIT)
        return { ok: false };
      const entry = await withService((conn) => findUser(conn, username));
      if (!entry) return { ok: false };
      if (!(await checkPassword(entry.dn, password))) return { ok: false };
      const groupNames = await withService((conn) =>
        readGroups(conn, entry, firstText(entry, config.attributes.username) ?? username),
      );
      return { ok: true, account: toAccount(entry, username, groupNames) };
    },

    async lookUp(dn: string, username: string): Promise<DirectoryAccount | null> {
      if (username === '' || username.length > USERNAME_LIMIT) return null;
      return withService(async (conn) => {
        const entry = await findUser(conn, username);
        if (!entry) return null;
        const want = normalizeDn(dn);
        if (want === null || normalizeDn(entry.dn) !== want) return null;
        const groupNames = await readGroups(
          conn,
          entry,
          firstText(entry, config.attributes.username) ?? username,
        );
        return toAccount(entry, username, groupNames);
      });
    },

    async ping(): Promise<void> {
      let client: Client;
      try {
        client = await connectAndBind(config.bindDn, config.bindPassword);
      } catch (err) {
        log?.warn({ reason: reason(err) }, 'LDAP service account could not connect or bind');
        throw unavailable(err);
      }
      await client.unbind().catch(() => {});
    },

    async close(): Promise<void> {
      closed = true;
      for (const wake of waiters.splice(0)) wake();
      await Promise.all(idle.splice(0).map((conn) => conn.close()));
    },

    poolStats() {
      return { open, idle: idle.length, peak };
    },
  };
}
