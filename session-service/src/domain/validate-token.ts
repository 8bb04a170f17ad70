import { createHash } from 'node:crypto';
import type { Identity } from '../../../common/src/identity.js';
import type { RedisClient } from '../../../common/src/redis.js';
import { type AccessTokens, looksLikeToken, type TokenRecord } from './access-tokens.js';
import { storeCall } from './store-call.js';
import type { UsersRepository } from './users.js';

/**
 * An access token in, its owner's live identity out (the token's scope applied): the token
 * counterpart of validate-session.ts. A token is valid only while its owner is: an owner removed
 * or disabled, or whose sessions were ended by a password change (`sessionsNotBefore`) after the
 * token was made, makes the token refused and ended (published, so every gateway drops it).
 * Personal tokens belong to people (`gatehouse_pat_`), service tokens to service accounts
 * (`gatehouse_sat_`): a token of one kind is never accepted for an owner of the other.
 */
export interface ValidToken {
  token: TokenRecord;
  identity: Identity;
}

export type TokenValidation =
  | { ok: true; valid: ValidToken }
  | { ok: false; reason: 'invalid' | 'throttled'; retryAfterSeconds?: number };

/**
 * Failed token attempts per client address: a fixed window of TOKEN_FAILURE_WINDOW_MS from the
 * first failure, at most TOKEN_FAILURES_MAX failures, then the address is refused until the
 * window ends. One key per address (a hash of it), expiring with its window: a flood of random
 * tokens from many addresses costs Redis one small expiring key per address, nothing more.
 */
export const TOKEN_FAILURES_MAX = 20;
export const TOKEN_FAILURE_WINDOW_MS = 15 * 60_000;

const COUNT_FAILURE = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
`;

export function createTokenValidator(deps: {
  tokens: AccessTokens;
  users: UsersRepository;
  redis: RedisClient;
  prefix: string;
}) {
  const failureKey = (address: string) =>
    `${deps.prefix}tokfail:${createHash('sha256').update(address).digest('base64url').slice(0, 22)}`;

  async function throttled(address: string): Promise<number | null> {
    const key = failureKey(address);
    const count = Number((await deps.redis.get(key)) ?? 0);
    if (count < TOKEN_FAILURES_MAX) return null;
    const ttl = await deps.redis.pTTL(key);
    return Math.max(1, Math.ceil(ttl / 1000));
  }

  /** Count a failure; the address's failures in this window, this one included. */
  async function failed(address: string): Promise<number> {
    const count = await deps.redis.eval(COUNT_FAILURE, {
      keys: [failureKey(address)],
      arguments: [String(TOKEN_FAILURE_WINDOW_MS)],
    });
    return Number(count);
  }

  return async (token: string, from: string): Promise<TokenValidation> =>
    storeCall(async () => {
      const blocked = await throttled(from);
      if (blocked !== null) return { ok: false, reason: 'throttled', retryAfterSeconds: blocked };
      const record = looksLikeToken(token) ? await deps.tokens.use(token, from) : null;
      if (!record) {
        // Concurrent attempts all passed the check above: those past the limit are told so too,
        // so an address never hears "invalid" more than TOKEN_FAILURES_MAX times a window.
        if ((await failed(from)) > TOKEN_FAILURES_MAX) {
          const ttl = await deps.redis.pTTL(failureKey(from));
          return {
            ok: false,
            reason: 'throttled',
            retryAfterSeconds: Math.max(1, Math.ceil(ttl / 1000)),
          };
        }
        return { ok: false, reason: 'invalid' };
      }
      const owner = await deps.users.findById(record.ownerId);
      const wrongKind = owner && (owner.source === 'service') !== (record.kind === 'service');
      const ended =
        !owner ||
        owner.disabled ||
        wrongKind ||
        (owner.sessionsNotBefore !== undefined && record.createdAt < owner.sessionsNotBefore);
      if (ended) {
        await deps.tokens.revoke(record.ownerId, record.id);
        return { ok: false, reason: 'invalid' };
      }
      const groups = record.scope.groups
        ? owner.groups.filter((g) => record.scope.groups?.includes(g))
        : owner.groups;
      return {
        ok: true,
        valid: {
          token: record,
          identity: { id: owner.id, username: owner.username, groups, email: owner.email },
        },
      };
    });
}

export type TokenValidator = ReturnType<typeof createTokenValidator>;
