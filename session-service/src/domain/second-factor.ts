import type { FactorRepository } from './factors.js';
import type { RecoveryCodes } from './recovery-codes.js';
import { recoveryCodeInput } from './recovery-codes.js';
import { matchTotp, newTotpSecret, totpCode, totpUri } from './totp.js';

/** The second-factor methods a login or a step-up may be completed with (API names). */
export type SecondFactorMethod = 'totp' | 'recovery_code' | 'webauthn';

/** What a client sent as a second factor: a TOTP code, or a recovery code. */
export interface SecondFactorProof {
  totp?: unknown;
  recovery_code?: unknown;
}

export type Verification =
  | { ok: true; method: SecondFactorMethod; recoveryCodesLeft?: number; userVerified?: boolean }
  /**
   * `missing`: no code given; `invalid`: wrong, malformed or outside the window (or a WebAuthn
   * answer that does not verify); `replayed`; WebAuthn's `unknown-credential` and `counter` (the
   * sign counter went backwards: a cloned key).
   */
  | { ok: false; reason: 'missing' | 'invalid' | 'replayed' | 'unknown-credential' | 'counter' };

export interface FactorStatus {
  totp: boolean;
  recoveryCodesLeft: number;
  /** WebAuthn credentials (security keys, passkeys). */
  webauthn: number;
}

/**
 * What second factors mean: enrolment of TOTP (a secret shown, confirmed with a first code, then
 * ten recovery codes), checking a code (each TOTP step once per user; each recovery code once),
 * regenerating recovery codes, removal. Storage is the FactorRepository's; throttling and audit
 * are the callers'.
 */
export function createSecondFactors(deps: {
  factors: FactorRepository;
  recovery: RecoveryCodes;
  /** The issuer authenticator apps show (PUBLIC_URL's host, or "Gatehouse"). */
  issuer: string;
  now?: () => number;
}) {
  const { factors, recovery } = deps;
  const now = deps.now ?? Date.now;

  /** The step `input` is a code of, claimed for the user; a refusal otherwise. */
  async function checkTotp(userId: string, secret: string, input: unknown): Promise<Verification> {
    const code = totpCode(input);
    const step = code === null ? null : matchTotp(secret, code, now());
    if (step === null) return { ok: false, reason: 'invalid' };
    if (!(await factors.claimTotpStep(userId, step))) return { ok: false, reason: 'replayed' };
    return { ok: true, method: 'totp' };
  }

  async function newRecoveryCodes(userId: string): Promise<string[]> {
    const { codes, digests } = recovery.generate(userId);
    await factors.replaceRecoveryCodes(userId, digests);
    return codes;
  }

  return {
    async status(userId: string): Promise<FactorStatus> {
      const [totp, recoveryCodesLeft, webauthn] = await Promise.all([
        factors.getTotp(userId),
        factors.recoveryCodesLeft(userId),
        factors.listWebauthn(userId),
      ]);
      return { totp: totp !== null, recoveryCodesLeft, webauthn: webauthn.length };
    },

    async enrolled(userId: string): Promise<boolean> {
      return (await factors.getTotp(userId)) !== null;
    },

    /** The enrolment in progress (the same secret on every reload), or a new one. */
    async startEnrolment(userId: string, label: string): Promise<{ secret: string; uri: string }> {
      let secret = await factors.getPendingTotp(userId);
      if (secret === null) {
        secret = newTotpSecret();
        await factors.savePendingTotp(userId, secret);
      }
      return { secret, uri: totpUri(secret, deps.issuer, label) };
    },

    /**
     * Confirm the enrolment in progress with a first code: the factor is enrolled, with ten new
     * recovery codes (returned, to be shown once). The code's step is used up, so the same code
     * cannot then complete a login.
     */
    async confirmEnrolment(
      userId: string,
      input: unknown,
    ): Promise<
      | { ok: true; method: 'totp'; recoveryCodes: string[] }
      | { ok: false; reason: 'invalid' | 'replayed' }
    > {
      // No enrolment in progress (expired after ENROLMENT_TTL_MS): no code can confirm it.
      const secret = await factors.getPendingTotp(userId);
      if (secret === null) return { ok: false, reason: 'invalid' };
      const checked = await checkTotp(userId, secret, input);
      if (!checked.ok)
        return { ok: false, reason: checked.reason === 'replayed' ? 'replayed' : 'invalid' };
      await factors.saveTotp(userId, { secret, createdAt: now() });
      await factors.deletePendingTotp(userId);
      return { ok: true, method: 'totp', recoveryCodes: await newRecoveryCodes(userId) };
    },

    /** Check a second factor: a TOTP code when given, else a recovery code. */
    async verify(userId: string, proof: SecondFactorProof): Promise<Verification> {
      const given = (v: unknown) => typeof v === 'string' && v.trim() !== '';
      if (given(proof.totp)) {
        const factor = await factors.getTotp(userId);
        if (!factor) return { ok: false, reason: 'invalid' };
        return checkTotp(userId, factor.secret, proof.totp);
      }
      if (given(proof.recovery_code)) {
        const code = recoveryCodeInput(proof.recovery_code);
        if (code === null) return { ok: false, reason: 'invalid' };
        const left = await factors.useRecoveryCode(userId, recovery.candidates(userId, code));
        if (left === null) return { ok: false, reason: 'invalid' };
        return { ok: true, method: 'recovery_code', recoveryCodesLeft: left };
      }
      return { ok: false, reason: 'missing' };
    },

    regenerateRecoveryCodes: newRecoveryCodes,

    remove(userId: string): Promise<boolean> {
      return factors.removeFactors(userId);
    },
  };
}

export type SecondFactors = ReturnType<typeof createSecondFactors>;
