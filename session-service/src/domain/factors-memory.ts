import {
  ENROLMENT_TTL_MS,
  type FactorRepository,
  type TotpFactor,
  USED_STEP_TTL_MS,
  WEBAUTHN_CHALLENGE_TTL_MS,
  type WebauthnChallenge,
  type WebauthnCredential,
} from './factors.js';

/**
 * Second factors in this process's memory: held to the Redis repository's contract
 * (test/integration/factor-repository-contract.ts), for tests and a single process that keeps
 * nothing across restarts (nothing at rest, so nothing sealed).
 */
export function createMemoryFactorRepository(
  options: { now?: () => number } = {},
): FactorRepository {
  const now = options.now ?? Date.now;
  const totp = new Map<string, TotpFactor>();
  const pending = new Map<string, { secret: string; until: number }>();
  const used = new Map<string, number>();
  const recovery = new Map<string, Set<string>>();
  const grace = new Map<string, number>();
  const webauthn = new Map<string, Map<string, WebauthnCredential>>();
  const challenges = new Map<string, { challenge: WebauthnChallenge; until: number }>();

  return {
    async getTotp(userId) {
      const factor = totp.get(userId);
      return factor ? { ...factor } : null;
    },
    async saveTotp(userId, factor) {
      totp.set(userId, { ...factor });
    },
    async getPendingTotp(userId) {
      const entry = pending.get(userId);
      return entry && entry.until > now() ? entry.secret : null;
    },
    async savePendingTotp(userId, secret) {
      pending.set(userId, { secret, until: now() + ENROLMENT_TTL_MS });
    },
    async deletePendingTotp(userId) {
      pending.delete(userId);
    },
    async claimTotpStep(userId, step) {
      const key = `${userId}\n${step}`;
      const until = used.get(key);
      if (until !== undefined && until > now()) return false;
      used.set(key, now() + USED_STEP_TTL_MS);
      return true;
    },
    async replaceRecoveryCodes(userId, digests) {
      recovery.set(userId, new Set(digests));
    },
    async useRecoveryCode(userId, candidates) {
      const codes = recovery.get(userId);
      const match = candidates.find((digest) => codes?.has(digest));
      if (!codes || match === undefined) return null;
      codes.delete(match);
      return codes.size;
    },
    async recoveryCodesLeft(userId) {
      return recovery.get(userId)?.size ?? 0;
    },
    async removeFactors(userId) {
      const had = totp.delete(userId);
      pending.delete(userId);
      recovery.delete(userId);
      return had;
    },
    async removeAllFactors(userId) {
      const hadTotp = totp.delete(userId);
      pending.delete(userId);
      recovery.delete(userId);
      const hadKeys = (webauthn.get(userId)?.size ?? 0) > 0;
      webauthn.delete(userId);
      return hadTotp || hadKeys;
    },
    async listWebauthn(userId) {
      return [...(webauthn.get(userId)?.values() ?? [])]
        .map((c) => ({ ...c, transports: [...c.transports] }))
        .sort((a, b) => a.createdAt - b.createdAt);
    },
    async saveWebauthn(userId, credential) {
      const mine = webauthn.get(userId) ?? new Map<string, WebauthnCredential>();
      mine.set(credential.id, { ...credential, transports: [...credential.transports] });
      webauthn.set(userId, mine);
    },
    async updateWebauthn(userId, credential) {
      const mine = webauthn.get(userId);
      if (!mine?.has(credential.id)) return false;
      mine.set(credential.id, { ...credential, transports: [...credential.transports] });
      return true;
    },
    async removeWebauthn(userId, credentialId) {
      return webauthn.get(userId)?.delete(credentialId) ?? false;
    },
    async saveWebauthnChallenge(binding, challenge) {
      challenges.set(binding, {
        challenge: { ...challenge },
        until: now() + WEBAUTHN_CHALLENGE_TTL_MS,
      });
    },
    async takeWebauthnChallenge(binding) {
      const entry = challenges.get(binding);
      challenges.delete(binding);
      return entry && entry.until > now() ? entry.challenge : null;
    },
    async graceStart(userId, t) {
      const start = grace.get(userId) ?? t;
      grace.set(userId, start);
      return start;
    },
  };
}
