import { GatehouseError } from '../../../common/src/errors.js';
import type { RedisClient } from '../../../common/src/redis.js';
import { storeCall } from './store-call.js';
import { canonicalUsername } from './usernames.js';
import { fieldProblem, groupNameSchema, type User } from './users.js';

/**
 * Service accounts: identities for services, made by an admin (the users CLI, the admin API),
 * with groups and tokens of their own (access-tokens.ts), and no password or browser sign-in.
 * The one owner of their records.
 *
 * In Redis, under the key prefix, `<prefix>svc:<name>` (JSON: nothing secret), kept until
 * removed. The name is a username like any (canonical form) and one account's across every
 * source: it must not be a users-file user's or an identity source's (checked when made), and
 * its user id is `svc:<name>`.
 */
export interface ServiceAccount {
  id: string;
  name: string;
  groups: string[];
  description: string;
  disabled: boolean;
  createdAt: number;
}

export const SERVICE_ACCOUNT_PREFIX = 'svc:';
export const isServiceAccountId = (id: string) => id.startsWith(SERVICE_ACCOUNT_PREFIX);

/** A service account as validate and the gateway see it: a user with no password. */
export function serviceAccountUser(account: ServiceAccount): User {
  return {
    id: account.id,
    username: account.name,
    passwordHash: '',
    groups: account.groups,
    email: '',
    disabled: account.disabled,
    source: 'service',
  };
}

export interface ServiceAccounts {
  /** `taken(name)`: whether a users-file user or an identity source holds the name already. */
  create(
    input: { name: string; groups: string[]; description?: string },
    taken: (name: string) => Promise<boolean>,
  ): Promise<ServiceAccount>;
  get(name: string): Promise<ServiceAccount | null>;
  findById(id: string): Promise<ServiceAccount | null>;
  list(): Promise<ServiceAccount[]>;
  update(
    name: string,
    change: { groups?: string[]; disabled?: boolean },
  ): Promise<ServiceAccount | null>;
  remove(name: string): Promise<boolean>;
}

/** A list of the names known (`<prefix>svc-names`, a sorted set), so list() needs no SCAN. */
export function createServiceAccounts(options: {
  redis: RedisClient;
  prefix: string;
  now?: () => number;
}): ServiceAccounts {
  const { redis, prefix } = options;
  const now = options.now ?? Date.now;
  const key = (name: string) => `${prefix}svc:${name}`;
  const namesKey = `${prefix}svc-names`;

  const canonical = (name: string) => {
    const checked = canonicalUsername(name);
    if (!checked.ok) throw new GatehouseError('BAD_REQUEST', { message: checked.message });
    return checked.username;
  };
  const checkGroups = (groups: string[]) => {
    for (const group of groups) {
      const problem = fieldProblem(groupNameSchema, group);
      if (problem) throw new GatehouseError('BAD_REQUEST', { message: problem });
    }
    return [...new Set(groups)];
  };
  async function read(name: string): Promise<ServiceAccount | null> {
    const raw = await redis.get(key(name));
    return raw === null ? null : (JSON.parse(raw) as ServiceAccount);
  }

  return {
    create: (input, taken) =>
      storeCall(async () => {
        const name = canonical(input.name);
        const groups = checkGroups(input.groups);
        if (await taken(name)) throw new GatehouseError('USERNAME_TAKEN');
        const account: ServiceAccount = {
          id: `${SERVICE_ACCOUNT_PREFIX}${name}`,
          name,
          groups,
          description: (input.description ?? '').slice(0, 256),
          disabled: false,
          createdAt: now(),
        };
        const made = await redis.set(key(name), JSON.stringify(account), { condition: 'NX' });
        if (made === null) throw new GatehouseError('USERNAME_TAKEN');
        await redis.zAdd(namesKey, { score: account.createdAt, value: name });
        return account;
      }),
    get: (name) =>
      storeCall(async () => {
        const checked = canonicalUsername(name);
        return checked.ok ? read(checked.username) : null;
      }),
    findById: (id) =>
      storeCall(async () =>
        isServiceAccountId(id) ? read(id.slice(SERVICE_ACCOUNT_PREFIX.length)) : null,
      ),
    list: () =>
      storeCall(async () => {
        const accounts: ServiceAccount[] = [];
        for (const name of (await redis.zRange(namesKey, 0, -1)) as string[]) {
          const account = await read(name);
          if (account) accounts.push(account);
        }
        return accounts;
      }),
    update: (name, change) =>
      storeCall(async () => {
        const current = await read(canonical(name));
        if (!current) return null;
        const next: ServiceAccount = {
          ...current,
          ...(change.groups ? { groups: checkGroups(change.groups) } : {}),
          ...(change.disabled !== undefined ? { disabled: change.disabled } : {}),
        };
        const written = await redis.set(key(current.name), JSON.stringify(next), {
          condition: 'XX',
        });
        return written === null ? null : next;
      }),
    remove: (name) =>
      storeCall(async () => {
        const canonicalName = canonical(name);
        const removed = (await redis.del(key(canonicalName))) === 1;
        await redis.zRem(namesKey, canonicalName);
        return removed;
      }),
  };
}
