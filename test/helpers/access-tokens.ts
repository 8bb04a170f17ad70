/**
 * Access tokens and service accounts made directly in the Redis a test's session-service uses,
 * with the domain code it runs itself (session-service/src/domain/access-tokens.ts,
 * service-accounts.ts), sealed with the test services' SESSION_ENCRYPTION_KEY and revoked on the
 * same revocation channel (so every gateway's cache hears of it as from the session-service).
 */
import { createOneShotRedis } from '../../common/src/redis.js';
import {
  createAccessTokens,
  type TokenKind,
  type TokenRecord,
  type TokenScope,
} from '../../session-service/src/domain/access-tokens.js';
import { publishRevocations } from '../../session-service/src/domain/revocation-channel.js';
import { createSealer } from '../../session-service/src/domain/sealing.js';
import { createServiceAccounts } from '../../session-service/src/domain/service-accounts.js';
import { TEST_ENCRYPTION_KEY } from './processes.js';

export interface TestTokens {
  /** A token for `ownerId` (a users-file user's id, or `svc:<name>`), valid `ttlMs`. */
  mint(
    ownerId: string,
    options?: { kind?: TokenKind; name?: string; ttlMs?: number; scope?: TokenScope },
  ): Promise<{ token: string; record: TokenRecord }>;
  /** End one token (published on the revocation channel, as the session-service does). */
  revoke(ownerId: string, id: string): Promise<boolean>;
  /** A service account with these groups; its user id (`svc:<name>`). */
  serviceAccount(name: string, groups: string[]): Promise<string>;
  /** Every key under the prefix, with its TTL in ms (-1: none). */
  keys(pattern: string): Promise<Array<{ key: string; ttl: number }>>;
  close(): Promise<void>;
}

export async function testTokens(redisUrl: string, prefix = 'gh:'): Promise<TestTokens> {
  const redis = createOneShotRedis({ url: redisUrl }, 2000);
  await redis.connect();
  const tokens = createAccessTokens({
    redis,
    sealer: createSealer([TEST_ENCRYPTION_KEY], 'access-token'),
    prefix,
    onRevoked: (ids) => publishRevocations(redis, prefix, ids),
  });
  const accounts = createServiceAccounts({ redis, prefix });
  return {
    mint(ownerId, options = {}) {
      return tokens.create({
        kind: options.kind ?? (ownerId.startsWith('svc:') ? 'service' : 'personal'),
        ownerId,
        name: options.name ?? 'test',
        scope: options.scope ?? {},
        expiresAt: Date.now() + (options.ttlMs ?? 3_600_000),
      });
    },
    revoke: (ownerId, id) => tokens.revoke(ownerId, id),
    async serviceAccount(name, groups) {
      const account = await accounts.create({ name, groups }, async () => false);
      return account.id;
    },
    async keys(pattern) {
      const out: Array<{ key: string; ttl: number }> = [];
      for await (const batch of redis.scan(`${prefix}${pattern}`))
        for (const key of batch) out.push({ key, ttl: Number(await redis.pTTL(key)) });
      return out;
    },
    async close() {
      if (redis.isOpen) await redis.destroy();
    },
  };
}
