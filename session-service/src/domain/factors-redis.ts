import { GatehouseError } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/logger.js';
import type { RedisClient } from '../../../common/src/redis.js';
import {
  ENROLMENT_TTL_MS,
  type FactorRepository,
  type TotpFactor,
  USED_STEP_TTL_MS,
  WEBAUTHN_CHALLENGE_TTL_MS,
  type WebauthnChallenge,
  type WebauthnCredential,
} from './factors.js';
import { type Sealer, UnreadableSealError } from './sealing.js';
import { storeCall } from './store-call.js';

/** Remove the first of ARGV that is a member of KEYS[1]; the members left, or -1 if none was. */
const USE_RECOVERY_CODE = `
for _, digest in ipairs(ARGV) do
  if redis.call('SREM', KEYS[1], digest) == 1 then return redis.call('SCARD', KEYS[1]) end
end
return -1
`;
/** KEYS[1] becomes the set of ARGV (empty: gone). */
const REPLACE_SET = `
redis.call('DEL', KEYS[1])
if #ARGV > 0 then redis.call('SADD', KEYS[1], unpack(ARGV)) end
return #ARGV
`;
const CARDINALITY = `return redis.call('SCARD', KEYS[1])`;
// The hash commands through EVAL: RedisClient's command list stays the one that every topology
// adapter wraps (common/src/redis/commands.ts), and each script still names its one key.
const HASH_VALUES = `return redis.call('HVALS', KEYS[1])`;
const HASH_SET = `return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])`;
/** HSET only where the field is (HSETEX FXX is Redis 8+): 1 when replaced, 0 when absent. */
const HASH_REPLACE = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`;
const HASH_DELETE = `return redis.call('HDEL', KEYS[1], ARGV[1])`;
/** GETDEL, atomically, on any Redis (GETDEL itself is 6.2+): one caller gets the value. */
const TAKE = `
local value = redis.call('GET', KEYS[1])
if value then redis.call('DEL', KEYS[1]) end
return value
`;

/**
 * Second factors in Redis, under the key prefix, so every instance sees the same (standalone,
 * Sentinel, Cluster: each command names one key, and a user's keys share the hash tag of the
 * user id):
 *
 * - `<prefix>mfa:{<user id>}:totp`: the enrolled TOTP, sealed (SESSION_ENCRYPTION_KEY, purpose
 *   `totp-secret`, the key name as context: a value copied under another user does not open);
 *   sealed again with the current key when read with a previous one (rotation);
 * - `…:totp-pending`: an enrolment in progress, sealed the same way, expiring;
 * - `…:totp-used:<step>`: a TOTP step used once (SET NX, expiring): replays are refused;
 * - `…:recovery`: a set of recovery code digests (keyed hashes, recovery-codes.ts);
 * - `…:grace`: when the user's grace period to enrol started (SET NX);
 * - `…:webauthn`: a hash of WebAuthn credentials, field = credential ID, value = JSON (public
 *   keys and counters: nothing secret, so not sealed);
 * - `<prefix>webauthn-challenge:<binding>`: a challenge waiting for its answer, expiring, taken
 *   with GETDEL (single use however many instances race).
 *
 * Redis failures become SESSION_STORE_UNAVAILABLE (503): never "no factor", which would let a
 * password alone in.
 */
export function createRedisFactorRepository(options: {
  redis: RedisClient;
  /**
   * Seals and opens TOTP secrets: createSealer(keys, 'totp-secret'). Everything but removal and
   * the counters needs it; removeFactors alone (the users CLI) works without it.
   */
  secrets?: Sealer;
  prefix?: string;
  logger?: Pick<Logger, 'warn'>;
}): FactorRepository & { keyOf: (userId: string, name: string) => string } {
  const { redis } = options;
  const sealer = (): Sealer => {
    if (!options.secrets) throw new Error('second factors need a sealer (secrets)');
    return options.secrets;
  };
  const prefix = options.prefix ?? 'gh:';
  const keyOf = (userId: string, name: string) => `${prefix}mfa:{${userId}}:${name}`;

  /**
   * The sealed value at `key`, opened; null when absent. A value that does not open (tampered,
   * swapped, or sealed with a key no longer configured) is an error, not "no factor": refusing
   * the login (503) is safe, letting a password alone in is not.
   */
  async function openAt(key: string): Promise<string | null> {
    const raw = await redis.get(key);
    if (raw === null) return null;
    try {
      const opened = sealer().open(raw, key);
      // Sealed with a previous SESSION_ENCRYPTION_KEY: seal it again with the current one.
      if (!opened.current)
        await redis.set(key, sealer().seal(opened.plaintext, key), {
          expiration: 'KEEPTTL',
          condition: 'XX',
        });
      return opened.plaintext;
    } catch (err) {
      if (!(err instanceof UnreadableSealError)) throw err;
      options.logger?.warn({ key, reason: err.reason }, 'second factor unreadable: refused');
      throw new GatehouseError('SESSION_STORE_UNAVAILABLE', { cause: err });
    }
  }

  const count = (reply: unknown) => Number(reply);

  return {
    keyOf,
    getTotp: (userId) =>
      storeCall(async () => {
        const json = await openAt(keyOf(userId, 'totp'));
        return json === null ? null : (JSON.parse(json) as TotpFactor);
      }),
    saveTotp: (userId, factor) =>
      storeCall(async () => {
        const key = keyOf(userId, 'totp');
        await redis.set(key, sealer().seal(JSON.stringify(factor), key));
      }),
    getPendingTotp: (userId) => storeCall(() => openAt(keyOf(userId, 'totp-pending'))),
    savePendingTotp: (userId, secret) =>
      storeCall(async () => {
        const key = keyOf(userId, 'totp-pending');
        await redis.set(key, sealer().seal(secret, key), {
          expiration: { type: 'PX', value: ENROLMENT_TTL_MS },
        });
      }),
    deletePendingTotp: (userId) =>
      storeCall(async () => {
        await redis.del(keyOf(userId, 'totp-pending'));
      }),
    claimTotpStep: (userId, step) =>
      storeCall(async () => {
        const reply = await redis.set(keyOf(userId, `totp-used:${step}`), '1', {
          expiration: { type: 'PX', value: USED_STEP_TTL_MS },
          condition: 'NX',
        });
        return reply !== null;
      }),
    replaceRecoveryCodes: (userId, digests) =>
      storeCall(async () => {
        await redis.eval(REPLACE_SET, {
          keys: [keyOf(userId, 'recovery')],
          arguments: [...digests],
        });
      }),
    useRecoveryCode: (userId, candidates) =>
      storeCall(async () => {
        const left = count(
          await redis.eval(USE_RECOVERY_CODE, {
            keys: [keyOf(userId, 'recovery')],
            arguments: [...candidates],
          }),
        );
        return left < 0 ? null : left;
      }),
    recoveryCodesLeft: (userId) =>
      storeCall(async () =>
        count(await redis.eval(CARDINALITY, { keys: [keyOf(userId, 'recovery')] })),
      ),
    removeFactors: (userId) =>
      storeCall(async () => {
        const [had] = await Promise.all(
          ['totp', 'totp-pending', 'recovery'].map((name) => redis.del(keyOf(userId, name))),
        );
        return (had ?? 0) > 0;
      }),
    removeAllFactors: (userId) =>
      storeCall(async () => {
        const removed = await Promise.all(
          ['totp', 'totp-pending', 'recovery', 'webauthn'].map((name) =>
            redis.del(keyOf(userId, name)),
          ),
        );
        return (removed[0] ?? 0) > 0 || (removed[3] ?? 0) > 0;
      }),
    listWebauthn: (userId) =>
      storeCall(async () => {
        const all = (await redis.eval(HASH_VALUES, {
          keys: [keyOf(userId, 'webauthn')],
        })) as string[];
        return all
          .map((json) => JSON.parse(json) as WebauthnCredential)
          .sort((a, b) => a.createdAt - b.createdAt);
      }),
    saveWebauthn: (userId, credential) =>
      storeCall(async () => {
        await redis.eval(HASH_SET, {
          keys: [keyOf(userId, 'webauthn')],
          arguments: [credential.id, JSON.stringify(credential)],
        });
      }),
    updateWebauthn: (userId, credential) =>
      storeCall(
        async () =>
          count(
            await redis.eval(HASH_REPLACE, {
              keys: [keyOf(userId, 'webauthn')],
              arguments: [credential.id, JSON.stringify(credential)],
            }),
          ) > 0,
      ),
    removeWebauthn: (userId, credentialId) =>
      storeCall(
        async () =>
          count(
            await redis.eval(HASH_DELETE, {
              keys: [keyOf(userId, 'webauthn')],
              arguments: [credentialId],
            }),
          ) > 0,
      ),
    saveWebauthnChallenge: (binding, challenge) =>
      storeCall(async () => {
        await redis.set(`${prefix}webauthn-challenge:${binding}`, JSON.stringify(challenge), {
          expiration: { type: 'PX', value: WEBAUTHN_CHALLENGE_TTL_MS },
        });
      }),
    takeWebauthnChallenge: (binding) =>
      storeCall(async () => {
        const raw = (await redis.eval(TAKE, {
          keys: [`${prefix}webauthn-challenge:${binding}`],
        })) as string | null;
        return raw === null ? null : (JSON.parse(raw) as WebauthnChallenge);
      }),
    graceStart: (userId, now) =>
      storeCall(async () => {
        const key = keyOf(userId, 'grace');
        await redis.set(key, String(now), { condition: 'NX' });
        return Number((await redis.get(key)) ?? now);
      }),
  };
}
