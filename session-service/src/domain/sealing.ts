import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';

/**
 * Encryption at rest for what the session-service keeps in Redis (session records, the signing
 * key): AES-256-GCM, keys from SESSION_ENCRYPTION_KEY, never from Redis. Whoever reads Redis (a
 * dump, a backup, a replica) gets ciphertext; whoever can write it cannot make a record we accept.
 *
 * - One key per purpose, derived with HKDF-SHA-256 from the configured key, so a session record
 *   can never be taken for a signing key or the other way round.
 * - The additional data binds each value to its Redis name (a session's stored id, the signing
 *   key's key name): a record copied under another session's key does not open.
 * - Rotation: the first key seals, every key opens (SESSION_ENCRYPTION_KEY_PREVIOUS). A sealed
 *   value names its key by a short fingerprint (an HMAC of the derived key, not the key), so
 *   opening tries one key, not each in turn.
 *
 * Format: `g1.<key id>.<base64url(12-byte IV | 16-byte tag | ciphertext)>`.
 */

/**
 * What a sealed value is: session records, the signing key, users' TOTP secrets (enrolled or
 * being enrolled: domain/factors*.ts), a login waiting for its second step (pending-logins.ts).
 * Recovery codes are not sealed but hashed, with a key of their own (recovery-codes.ts).
 */
export type SealPurpose =
  | 'session-record'
  | 'signing-key'
  | 'totp-secret'
  | 'pending-login'
  | 'external-user'
  | 'oidc-login'
  | 'access-token'
  | 'recovery-code';

/** Why a value did not open. Stable, for logs and tests. */
export type UnreadableReason = 'not sealed' | 'unknown key' | 'forged or damaged';

export class UnreadableSealError extends Error {
  readonly code = 'UNREADABLE_RECORD';
  constructor(readonly reason: UnreadableReason) {
    super(`sealed value unreadable: ${reason}`);
  }
}

export interface Opened {
  plaintext: string;
  /** Sealed with the current key (false: with a previous one; worth sealing again). */
  current: boolean;
}

export interface Sealer {
  seal(plaintext: string, context: string): string;
  /** Throws UnreadableSealError when `sealed` was not sealed by us for `context`. */
  open(sealed: string, context: string): Opened;
  /** The fingerprint of the key that seals (for logs and the operations doc: never the key). */
  readonly keyId: string;
}

const VERSION = 'g1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

interface Key {
  id: string;
  key: Buffer;
}

function deriveKey(secret: string, purpose: SealPurpose): Key {
  const key = Buffer.from(hkdfSync('sha256', secret, 'gatehouse', `gatehouse ${purpose} v1`, 32));
  const id = createHmac('sha256', key).update('gatehouse key id').digest('base64url').slice(0, 8);
  return { id, key };
}

/**
 * The keys derived for `purpose` from each secret, newest first: for a keyed hash (recovery
 * codes) rather than a seal. Each purpose has its own, so none doubles as another's.
 */
export function derivedKeys(secrets: readonly string[], purpose: SealPurpose): Buffer[] {
  return secrets.map((secret) => deriveKey(secret, purpose).key);
}

/** `secrets`: newest first (SESSION_ENCRYPTION_KEY, then SESSION_ENCRYPTION_KEY_PREVIOUS). */
export function createSealer(secrets: readonly string[], purpose: SealPurpose): Sealer {
  const keys = secrets.map((secret) => deriveKey(secret, purpose));
  const current = keys[0];
  if (!current) throw new Error('no encryption key (SESSION_ENCRYPTION_KEY)');
  const byId = new Map<string, Key>();
  for (const key of keys) if (!byId.has(key.id)) byId.set(key.id, key);
  const aad = (context: string) => Buffer.from(`${purpose}\n${context}`, 'utf8');

  return {
    keyId: current.id,

    seal(plaintext, context) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', current.key, iv);
      cipher.setAAD(aad(context));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      const blob = Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
      return `${VERSION}.${current.id}.${blob}`;
    },

    open(sealed, context) {
      const first = sealed.indexOf('.');
      const second = sealed.indexOf('.', first + 1);
      if (first < 0 || second < 0 || sealed.slice(0, first) !== VERSION)
        throw new UnreadableSealError('not sealed');
      const key = byId.get(sealed.slice(first + 1, second));
      if (!key) throw new UnreadableSealError('unknown key');
      const blob = Buffer.from(sealed.slice(second + 1), 'base64url');
      if (blob.length < IV_BYTES + TAG_BYTES) throw new UnreadableSealError('forged or damaged');
      try {
        const decipher = createDecipheriv('aes-256-gcm', key.key, blob.subarray(0, IV_BYTES), {
          authTagLength: TAG_BYTES,
        });
        decipher.setAAD(aad(context));
        decipher.setAuthTag(blob.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
        const plain = Buffer.concat([
          decipher.update(blob.subarray(IV_BYTES + TAG_BYTES)),
          decipher.final(),
        ]);
        return { plaintext: plain.toString('utf8'), current: key === current };
      } catch {
        throw new UnreadableSealError('forged or damaged');
      }
    },
  };
}
