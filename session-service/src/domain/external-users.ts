import { createHash } from 'node:crypto';
import { GatehouseError } from '../../../common/src/errors.js';
import type { RedisClient } from '../../../common/src/redis.js';
import { type Sealer, UnreadableSealError } from './sealing.js';
import {
  isServiceAccountId,
  type ServiceAccounts,
  serviceAccountUser,
} from './service-accounts.js';
import { storeCall } from './store-call.js';
import { canonicalUsername, usernameKey } from './usernames.js';
import type { User, UsersRepository } from './users.js';

/**
 * Users who come from an identity source (an OpenID Connect provider, the LDAP directory) rather
 * than the users file: the one owner of their records. A record is written at each sign-in and
 * each re-check, read by validate like a users-file entry (so a group removed at the source
 * reaches backends at the next re-check), and deleted when the source says the account is gone:
 * its sessions then end at their next validation, as a removed local user's do.
 *
 * In Redis, under the key prefix:
 * - `<prefix>xuser:<user id>`: the record, sealed (purpose `external-user`; it holds email,
 *   groups and, for a provider with refreshSeconds, the refresh token);
 * - `<prefix>xname:<username key>`: the user id a username belongs to. A username is one account
 *   across every source: the first to sign in keeps it, a later one with another id is refused
 *   (USERNAME_TAKEN), and a users-file entry always wins (checked by the caller).
 * Both live as long as the longest session could (`retentionMs`), renewed at every sign-in and
 * re-check: a user not seen for longer is forgotten, and their name is free again.
 */
export type SourceKind = 'oidc' | 'ldap';

export interface ExternalUser {
  /** `oidc:<provider id>:<digest of sub>` or `ldap:<digest of the account id>`. */
  id: string;
  source: SourceKind;
  /** The provider's id, or `ldap`. */
  provider: string;
  /** The provider's `sub`, or the directory's account id. */
  subject: string;
  username: string;
  email: string;
  name: string;
  groups: string[];
  /** ms since the epoch: when the source last vouched for this account (sign-in, re-check). */
  checkedAt: number;
  /** LDAP: where the account is, its username as the directory spells it (re-checks search it), and its password-changed value at sign-in. */
  dn?: string;
  subjectUsername?: string;
  passwordChanged?: string;
  /** OpenID Connect with refreshSeconds: the newest refresh token. */
  refreshToken?: string;
  /** ms since the epoch: sessions created before this were ended by the source (password change). */
  sessionsNotBefore?: number;
}

const digest = (value: string) =>
  createHash('sha256').update(value).digest('base64url').slice(0, 22);

/** The user id of an account of a source (stable for the same provider and subject). */
export function externalUserId(source: SourceKind, provider: string, subject: string): string {
  return source === 'oidc' ? `oidc:${provider}:${digest(subject)}` : `ldap:${digest(subject)}`;
}

export const isExternalUserId = (id: string) => id.startsWith('oidc:') || id.startsWith('ldap:');

/** What validate and the login see of an external user: a User with no password of ours. */
export function asUser(record: ExternalUser): User {
  return {
    id: record.id,
    username: record.username,
    passwordHash: '',
    groups: record.groups,
    email: record.email,
    disabled: false,
    ...(record.sessionsNotBefore !== undefined
      ? { sessionsNotBefore: record.sessionsNotBefore }
      : {}),
    source: record.source,
    checkedAt: record.checkedAt,
  };
}

export interface ExternalUsers {
  get(id: string): Promise<ExternalUser | null>;
  /**
   * Write the record of a sign-in or re-check, claiming its username. Throws USERNAME_TAKEN when
   * the (canonical) username belongs to another id, SIGN_IN_NOT_ALLOWED when it is no valid
   * username. Returns the record as stored (username canonical).
   */
  save(record: ExternalUser): Promise<ExternalUser>;
  /** The id that holds a username now, or null. */
  idOfUsername(username: string): Promise<string | null>;
  /** Forget the account (its name too); its sessions end at their next validation. */
  remove(id: string): Promise<void>;
  /**
   * Keep the record (and its name) at least until `until` (ms since the epoch): an access token
   * of the user's lives that long, and is valid only while its owner's record is.
   */
  keepUntil(id: string, until: number): Promise<void>;
}

export function createExternalUsers(options: {
  redis: RedisClient;
  /** createSealer(keys, 'external-user'). */
  sealer: Sealer;
  prefix: string;
  retentionMs: number;
}): ExternalUsers {
  const { redis, sealer, prefix, retentionMs } = options;
  const userKey = (id: string) => `${prefix}xuser:${id}`;
  const nameKey = (username: string) => `${prefix}xname:${digest(usernameKey(username))}`;
  const ttl = { expiration: { type: 'PX' as const, value: retentionMs } };

  async function get(id: string): Promise<ExternalUser | null> {
    const key = userKey(id);
    const raw = await redis.get(key);
    if (raw === null) return null;
    try {
      return JSON.parse(sealer.open(raw, key).plaintext) as ExternalUser;
    } catch (err) {
      if (err instanceof UnreadableSealError) return null;
      throw err;
    }
  }

  return {
    get: (id) => storeCall(() => get(id)),
    save: (record) =>
      storeCall(async () => {
        const name = canonicalUsername(record.username);
        if (!name.ok)
          throw new GatehouseError('SIGN_IN_NOT_ALLOWED', {
            message: `The username your account has (${name.message}) cannot be used here.`,
          });
        const stored = { ...record, username: name.username };
        const key = nameKey(stored.username);
        // Claim the name, or find it ours already (a re-check, a second sign-in).
        const claimed = await redis.set(key, stored.id, { ...ttl, condition: 'NX' });
        if (claimed === null) {
          const holder = await redis.get(key);
          if (holder !== null && holder !== stored.id) throw new GatehouseError('USERNAME_TAKEN');
          await redis.set(key, stored.id, ttl);
        }
        const previous = await get(stored.id);
        // A renamed account (the provider's username claim changed): free its old name.
        if (previous && usernameKey(previous.username) !== usernameKey(stored.username)) {
          const oldKey = nameKey(previous.username);
          if ((await redis.get(oldKey)) === stored.id) await redis.del(oldKey);
        }
        const uKey = userKey(stored.id);
        // Never shorter than it was: keepUntil may have lengthened it for a token.
        const left = await redis.pTTL(uKey);
        const keep = { expiration: { type: 'PX' as const, value: Math.max(retentionMs, left) } };
        await redis.set(uKey, sealer.seal(JSON.stringify(stored), uKey), keep);
        if (left > retentionMs) await redis.pExpire(key, left);
        return stored;
      }),
    idOfUsername: (username) => storeCall(() => redis.get(nameKey(username))),
    keepUntil: (id, until) =>
      storeCall(async () => {
        const uKey = userKey(id);
        const wanted = until - Date.now();
        if ((await redis.pTTL(uKey)) >= wanted) return;
        const record = await get(id);
        if (!record) return;
        await redis.pExpire(uKey, wanted);
        const key = nameKey(record.username);
        if ((await redis.get(key)) === id) await redis.pExpire(key, wanted);
      }),
    remove: (id) =>
      storeCall(async () => {
        const record = await get(id);
        await redis.del(userKey(id));
        if (record) {
          const key = nameKey(record.username);
          if ((await redis.get(key)) === id) await redis.del(key);
        }
      }),
  };
}

/**
 * Whether the users file has an entry named `username`: from what is loaded (validate never waits
 * for a reload), confirmed against the file as it is now when it says yes (rare), since an answer
 * of yes ends the other account's sessions and tokens.
 */
async function fileHolds(file: UsersRepository, username: string): Promise<boolean> {
  if (file.peekByUsername && file.peekByUsername(username) === null) return false;
  return (await file.findByUsername(username)) !== null;
}

/**
 * The users validate and the login see: users-file entries, and external users by their ids
 * (`oidc:…`, `ldap:…`), and service accounts (`svc:…`). findByUsername finds any (the admin API
 * lists anyone's sessions); the password form checks a password only against a users-file entry
 * (`source` unset). A users-file entry keeps its name: findById answers null for another
 * source's account whose name the file has since been given.
 */
export function composeUsers(
  file: UsersRepository,
  external: ExternalUsers,
  services?: ServiceAccounts,
): UsersRepository {
  return {
    async findByUsername(username) {
      const local = await file.findByUsername(username);
      if (local) return local;
      const id = await external.idOfUsername(username);
      const record = id ? await external.get(id) : null;
      if (record) return asUser(record);
      const service = await services?.get(username);
      return service ? serviceAccountUser(service) : null;
    },
    async findById(id) {
      if (!isServiceAccountId(id) && !isExternalUserId(id)) return file.findById(id);
      const service = isServiceAccountId(id) ? await services?.findById(id) : null;
      const record = service ? null : isExternalUserId(id) ? await external.get(id) : null;
      const user = service ? serviceAccountUser(service) : record ? asUser(record) : null;
      // A users-file entry keeps its name: an account of another source whose name the file has
      // since been given (`users add` with Redis unreachable) is no longer anyone, or a backend
      // would see two accounts as one username.
      if (!user || (await fileHolds(file, user.username))) return null;
      return user;
    },
  };
}
