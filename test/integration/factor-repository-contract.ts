/**
 * The factor repository's contract (session-service/src/domain/factors.ts): one suite over every
 * implementation, in memory (test/unit/factor-repository.test.ts) and on standalone Redis,
 * Cluster and Sentinel (redis-contract.test.ts), as the session repository's.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { FactorRepository } from '../../session-service/src/domain/factors.js';

const newUserId = () => `user-${randomBytes(4).toString('hex')}`;

/** A WebAuthn credential as the repository stores it (tests vary its fields). */
const KEY = {
  id: 'cred-1',
  publicKey: 'pk',
  counter: 0,
  transports: ['usb'],
  backupEligible: false,
  backedUp: false,
  name: 'YubiKey',
  createdAt: 2000,
  lastUsedAt: null,
};

export function describeFactorRepositoryContract(name: string, make: () => FactorRepository) {
  describe(`the factor repository on ${name}`, () => {
    it('keeps a TOTP factor per user, and an enrolment in progress beside it', async () => {
      const factors = make();
      const [alice, bob] = [newUserId(), newUserId()];
      expect(await factors.getTotp(alice)).toBeNull();
      expect(await factors.getPendingTotp(alice)).toBeNull();
      await factors.savePendingTotp(alice, 'PENDINGSECRET');
      expect(await factors.getPendingTotp(alice)).toBe('PENDINGSECRET');
      expect(await factors.getTotp(alice)).toBeNull();
      await factors.saveTotp(alice, { secret: 'ENROLLEDSECRET', createdAt: 1234 });
      await factors.deletePendingTotp(alice);
      expect(await factors.getTotp(alice)).toEqual({ secret: 'ENROLLEDSECRET', createdAt: 1234 });
      expect(await factors.getPendingTotp(alice)).toBeNull();
      expect(await factors.getTotp(bob)).toBeNull();
    });

    it('gives each TOTP step of a user once, however many callers race', async () => {
      const factors = make();
      const [alice, bob] = [newUserId(), newUserId()];
      const claims = await Promise.all(
        Array.from({ length: 10 }, () => factors.claimTotpStep(alice, 100)),
      );
      expect(claims.filter(Boolean)).toHaveLength(1);
      expect(await factors.claimTotpStep(alice, 101)).toBe(true);
      expect(await factors.claimTotpStep(bob, 100)).toBe(true);
      expect(await factors.claimTotpStep(alice, 100)).toBe(false);
    });

    it('uses each recovery code once, says how many are left, and replaces them all', async () => {
      const factors = make();
      const alice = newUserId();
      expect(await factors.recoveryCodesLeft(alice)).toBe(0);
      expect(await factors.useRecoveryCode(alice, ['a'])).toBeNull();
      await factors.replaceRecoveryCodes(alice, ['a', 'b', 'c']);
      expect(await factors.recoveryCodesLeft(alice)).toBe(3);
      // The candidates: the digest under each configured key; the first stored one is used.
      expect(await factors.useRecoveryCode(alice, ['x', 'b'])).toBe(2);
      const racing = await Promise.all(
        Array.from({ length: 5 }, () => factors.useRecoveryCode(alice, ['a'])),
      );
      expect(racing.filter((r) => r !== null)).toEqual([1]);
      await factors.replaceRecoveryCodes(alice, ['d', 'e']);
      expect(await factors.useRecoveryCode(alice, ['c'])).toBeNull();
      expect(await factors.recoveryCodesLeft(alice)).toBe(2);
    });

    it('removes every factor of a user, and says whether a TOTP was enrolled', async () => {
      const factors = make();
      const alice = newUserId();
      await factors.saveTotp(alice, { secret: 'S', createdAt: 1 });
      await factors.savePendingTotp(alice, 'P');
      await factors.replaceRecoveryCodes(alice, ['a']);
      expect(await factors.removeFactors(alice)).toBe(true);
      expect(await factors.getTotp(alice)).toBeNull();
      expect(await factors.getPendingTotp(alice)).toBeNull();
      expect(await factors.recoveryCodesLeft(alice)).toBe(0);
      expect(await factors.removeFactors(alice)).toBe(false);
    });

    it('removes all the factors of a user, WebAuthn credentials included (an admin reset), and no one else', async () => {
      const factors = make();
      const [alice, bob, carol] = [newUserId(), newUserId(), newUserId()];
      const key = { ...KEY, createdAt: 1 };
      await factors.saveTotp(alice, { secret: 'S', createdAt: 1 });
      await factors.replaceRecoveryCodes(alice, ['a']);
      await factors.saveWebauthn(alice, key);
      await factors.saveWebauthn(bob, key);
      await factors.saveWebauthn(carol, { ...key, id: 'cred-2' });
      expect(await factors.removeAllFactors(alice)).toBe(true);
      expect(await factors.getTotp(alice)).toBeNull();
      expect(await factors.recoveryCodesLeft(alice)).toBe(0);
      expect(await factors.listWebauthn(alice)).toEqual([]);
      // A user with only a key had a factor too; the others keep theirs.
      expect(await factors.removeAllFactors(carol)).toBe(true);
      expect(await factors.listWebauthn(bob)).toHaveLength(1);
      expect(await factors.removeAllFactors(alice)).toBe(false);
    });

    it('keeps WebAuthn credentials per user by id: added, updated after a use, removed', async () => {
      const factors = make();
      const [alice, bob] = [newUserId(), newUserId()];
      const key = KEY;
      expect(await factors.listWebauthn(alice)).toEqual([]);
      await factors.saveWebauthn(alice, key);
      await factors.saveWebauthn(alice, { ...key, id: 'cred-0', name: 'Laptop', createdAt: 1000 });
      expect((await factors.listWebauthn(alice)).map((c) => c.name)).toEqual(['Laptop', 'YubiKey']);
      await factors.saveWebauthn(alice, { ...key, counter: 7, backedUp: true, lastUsedAt: 3000 });
      expect((await factors.listWebauthn(alice))[1]).toEqual({
        ...key,
        counter: 7,
        backedUp: true,
        lastUsedAt: 3000,
      });
      expect(await factors.listWebauthn(bob)).toEqual([]);
      expect(await factors.removeWebauthn(alice, 'cred-1')).toBe(true);
      expect(await factors.removeWebauthn(alice, 'cred-1')).toBe(false);
      expect((await factors.listWebauthn(alice)).map((c) => c.id)).toEqual(['cred-0']);
    });

    it('updates a WebAuthn credential only while the user still has it (a removed key stays removed)', async () => {
      const factors = make();
      const [alice, bob] = [newUserId(), newUserId()];
      await factors.saveWebauthn(alice, KEY);
      expect(await factors.updateWebauthn(alice, { ...KEY, name: 'Spare' })).toBe(true);
      expect((await factors.listWebauthn(alice)).map((c) => c.name)).toEqual(['Spare']);
      expect(await factors.updateWebauthn(bob, { ...KEY, name: 'Mine' })).toBe(false);
      expect(await factors.listWebauthn(bob)).toEqual([]);
      await factors.removeWebauthn(alice, KEY.id);
      expect(await factors.updateWebauthn(alice, { ...KEY, counter: 9 })).toBe(false);
      expect(await factors.listWebauthn(alice)).toEqual([]);
    });

    it('gives a WebAuthn challenge once, to its own binding, however many callers race', async () => {
      const factors = make();
      const binding = `session:${newUserId()}`;
      expect(await factors.takeWebauthnChallenge(binding)).toBeNull();
      await factors.saveWebauthnChallenge(binding, { challenge: 'first', userId: 'u' });
      await factors.saveWebauthnChallenge(binding, { challenge: 'second', userId: 'u' });
      expect(await factors.takeWebauthnChallenge(`${binding}x`)).toBeNull();
      const racing = await Promise.all(
        Array.from({ length: 5 }, () => factors.takeWebauthnChallenge(binding)),
      );
      expect(racing.filter((r) => r !== null)).toEqual([{ challenge: 'second', userId: 'u' }]);
      await factors.saveWebauthnChallenge(binding, { challenge: 'passkey' });
      expect(await factors.takeWebauthnChallenge(binding)).toEqual({ challenge: 'passkey' });
    });

    it('keeps the first grace start of a user', async () => {
      const factors = make();
      const alice = newUserId();
      expect(await factors.graceStart(alice, 1000)).toBe(1000);
      expect(await factors.graceStart(alice, 5000)).toBe(1000);
      expect(await factors.graceStart(newUserId(), 5000)).toBe(5000);
    });
  });
}
