/**
 * A user's second factors: the one owner of where they are kept. Two implementations pass one
 * contract (test/integration/factor-repository-contract.ts): Redis (factors-redis.ts: shared by
 * every instance, under REDIS_PREFIX, TOTP secrets sealed with SESSION_ENCRYPTION_KEY) and
 * memory (factors-memory.ts: one process, unit-speed tests). What the factors mean (codes,
 * enrolment, recovery) is second-factor.ts's; this is storage with the few atomic steps that
 * make codes single-use across instances.
 */

export interface TotpFactor {
  /** Base32, as in the otpauth:// URI. Sealed at rest. */
  secret: string;
  /** ms since the epoch: when it was confirmed. */
  createdAt: number;
}

/**
 * A WebAuthn credential (a security key, a platform authenticator or a passkey). Public data
 * only: the private key never leaves the authenticator, so nothing here is sealed.
 */
export interface WebauthnCredential {
  /** The credential ID, base64url. */
  id: string;
  /** The COSE public key, base64url. */
  publicKey: string;
  /** The authenticator's signature counter as last seen (0: it keeps none). */
  counter: number;
  /** Transports the authenticator said it speaks (usb, nfc, ble, internal, hybrid). */
  transports: string[];
  /** May be synced to other devices (a multi-device passkey). */
  backupEligible: boolean;
  /** Was synced (backed up) as of its last use. */
  backedUp: boolean;
  /** The user's own name for it ("YubiKey", "Laptop"). */
  name: string;
  createdAt: number;
  lastUsedAt: number | null;
}

/** A WebAuthn challenge waiting for its answer; `userId` when it is for a known user. */
export interface WebauthnChallenge {
  challenge: string;
  userId?: string;
}

/** How long a WebAuthn challenge can be answered (the options' timeout is the same). */
export const WEBAUTHN_CHALLENGE_TTL_MS = 5 * 60_000;

/** How long a TOTP enrolment (the secret shown, not yet confirmed with a code) is kept. */
export const ENROLMENT_TTL_MS = 15 * 60_000;
/**
 * How long a used TOTP step is remembered: a code is accepted until one step after its own
 * ends (TOTP_WINDOW), so 3 steps cover it; 4 leave room for clocks.
 */
export const USED_STEP_TTL_MS = 4 * 30_000;

export interface FactorRepository {
  /** The user's TOTP factor, or null when none is enrolled. */
  getTotp(userId: string): Promise<TotpFactor | null>;
  /** Enrol (replacing any earlier one). */
  saveTotp(userId: string, factor: TotpFactor): Promise<void>;
  /** The secret of an enrolment in progress (shown, not yet confirmed), or null. */
  getPendingTotp(userId: string): Promise<string | null>;
  /** Start (or restart) an enrolment; forgotten after ENROLMENT_TTL_MS. */
  savePendingTotp(userId: string, secret: string): Promise<void>;
  deletePendingTotp(userId: string): Promise<void>;
  /** Claim the TOTP time step `step` for the user: true only the first time, on every instance. */
  claimTotpStep(userId: string, step: number): Promise<boolean>;
  /** Replace the user's recovery codes by these digests (recovery-codes.ts). */
  replaceRecoveryCodes(userId: string, digests: readonly string[]): Promise<void>;
  /**
   * Use a recovery code: the first of `candidates` (its digest under each configured key) that is
   * stored is removed, atomically (a code works once, however many instances race). The number of
   * codes left, or null when none matched.
   */
  useRecoveryCode(userId: string, candidates: readonly string[]): Promise<number | null>;
  recoveryCodesLeft(userId: string): Promise<number>;
  /** Remove TOTP (enrolled and in progress) and recovery codes. True when a TOTP was enrolled. */
  removeFactors(userId: string): Promise<boolean>;
  /**
   * Remove every factor: TOTP, recovery codes and every WebAuthn credential (an admin's reset of
   * a lost device, or a user removed). True when the user had a TOTP or a credential.
   */
  removeAllFactors(userId: string): Promise<boolean>;
  /** The user's WebAuthn credentials, oldest first. */
  listWebauthn(userId: string): Promise<WebauthnCredential[]>;
  /** Add a credential, or replace the one with its id (after a use: counter, flags, time). */
  saveWebauthn(userId: string, credential: WebauthnCredential): Promise<void>;
  /**
   * Replace a credential the user still has (after a use, a new name); false, and nothing
   * written, when it is gone: a key removed while it was being used or renamed stays removed.
   */
  updateWebauthn(userId: string, credential: WebauthnCredential): Promise<boolean>;
  /** Remove one credential; true when it was there. */
  removeWebauthn(userId: string, credentialId: string): Promise<boolean>;
  /**
   * Remember the challenge given to `binding` (a session, a pending login, a passkey sign-in)
   * for WEBAUTHN_CHALLENGE_TTL_MS, replacing any earlier one of the same binding.
   */
  saveWebauthnChallenge(binding: string, challenge: WebauthnChallenge): Promise<void>;
  /** The challenge of `binding`, removed as it is read (single use, on every instance); or null. */
  takeWebauthnChallenge(binding: string): Promise<WebauthnChallenge | null>;
  /**
   * When the user's grace period to enrol started (REQUIRE_SECOND_FACTOR): `now` on the first
   * call, and that same time on every later call, on every instance.
   */
  graceStart(userId: string, now: number): Promise<number>;
}
