import { createHash } from 'node:crypto';
import {
  type AuthenticationResponseJSON,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import {
  type FactorRepository,
  WEBAUTHN_CHALLENGE_TTL_MS,
  type WebauthnCredential,
} from './factors.js';

/**
 * WebAuthn (security keys, platform authenticators, passkeys) over @simplewebauthn/server: options
 * with a challenge stored under a binding (the session, the pending login, or a passkey sign-in's
 * own cookie) and taken once, the answer verified against the relying party (RP ID and origin),
 * the credential's counter and backup flags kept. Storage is the FactorRepository's; throttling,
 * audit and sessions are the callers'.
 */

/** Who we are to the authenticator: from PUBLIC_URL, else the request's own origin. */
export interface RelyingParty {
  /** The RP ID: PUBLIC_URL's host name (a registrable domain suffix of the origin). */
  id: string;
  /** The one origin whose answers are accepted (scheme://host[:port]). */
  origin: string;
}

/** The relying party of PUBLIC_URL, or of the origin the request came to (development). */
export function relyingPartyOf(publicUrl: string | undefined, requestOrigin: string | null) {
  const origin = publicUrl ? new URL(publicUrl).origin : requestOrigin;
  if (!origin) return null;
  return { id: new URL(origin).hostname, origin } satisfies RelyingParty;
}

/** A binding's key: the SHA-256 of a secret (a session id, a cookie token), never the secret. */
export const bindingOf = (kind: string, secret: string) =>
  `${kind}:${createHash('sha256').update(secret).digest('base64url')}`;

export type WebauthnRefusal =
  /** No challenge (expired, used, never asked), or an answer that does not verify. */
  | 'invalid'
  /** A credential the user (or anyone) does not have. */
  | 'unknown-credential'
  /** The authenticator's counter went backwards: a cloned key, refused. */
  | 'counter';

export type WebauthnUse =
  | {
      ok: true;
      method: 'webauthn';
      userId: string;
      credential: WebauthnCredential;
      userVerified: boolean;
    }
  | { ok: false; reason: WebauthnRefusal; userId?: string; credentialId?: string };

const transportsOf = (list: readonly string[]) =>
  list as NonNullable<RegistrationResponseJSON['response']['transports']>;

export function createWebauthn(deps: {
  factors: FactorRepository;
  rpName: string;
  now?: () => number;
}) {
  const { factors } = deps;
  const now = deps.now ?? Date.now;

  return {
    /** Options to register a new credential for the user (a passkey where the device can). */
    async registrationOptions(
      rp: RelyingParty,
      user: { id: string; username: string },
      binding: string,
    ): Promise<PublicKeyCredentialCreationOptionsJSON> {
      const existing = await factors.listWebauthn(user.id);
      const options = await generateRegistrationOptions({
        rpName: deps.rpName,
        rpID: rp.id,
        userName: user.username,
        // The user handle a passkey gives back at sign-in: our user id.
        userID: new TextEncoder().encode(user.id),
        attestationType: 'none',
        timeout: WEBAUTHN_CHALLENGE_TTL_MS,
        excludeCredentials: existing.map((c) => ({
          id: c.id,
          transports: transportsOf(c.transports),
        })),
        authenticatorSelection: { residentKey: 'preferred', userVerification: 'preferred' },
      });
      await factors.saveWebauthnChallenge(binding, {
        challenge: options.challenge,
        userId: user.id,
      });
      return options;
    },

    /** Verify a registration answer; the stored credential, or null when it does not verify. */
    async register(
      rp: RelyingParty,
      userId: string,
      binding: string,
      response: RegistrationResponseJSON,
      name: string,
    ): Promise<WebauthnCredential | null> {
      const expected = await factors.takeWebauthnChallenge(binding);
      if (!expected || expected.userId !== userId) return null;
      let verified: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
      try {
        verified = await verifyRegistrationResponse({
          response,
          expectedChallenge: expected.challenge,
          expectedOrigin: rp.origin,
          expectedRPID: rp.id,
          requireUserVerification: false,
        });
      } catch {
        return null;
      }
      if (!verified.verified) return null;
      const info = verified.registrationInfo;
      const credential: WebauthnCredential = {
        id: info.credential.id,
        publicKey: Buffer.from(info.credential.publicKey).toString('base64url'),
        counter: info.credential.counter,
        transports: [...(info.credential.transports ?? response.response.transports ?? [])],
        backupEligible: info.credentialDeviceType === 'multiDevice',
        backedUp: info.credentialBackedUp,
        name: name.trim().slice(0, 64) || 'Security key',
        createdAt: now(),
        lastUsedAt: null,
      };
      await factors.saveWebauthn(userId, credential);
      return credential;
    },

    /**
     * Options to prove a credential: the user's (a second factor, a step-up), or any discoverable
     * one (a passkey sign-in: no user yet, user verification required).
     */
    async authenticationOptions(
      rp: RelyingParty,
      binding: string,
      userId?: string,
    ): Promise<PublicKeyCredentialRequestOptionsJSON> {
      const allow = userId ? await factors.listWebauthn(userId) : [];
      const options = await generateAuthenticationOptions({
        rpID: rp.id,
        timeout: WEBAUTHN_CHALLENGE_TTL_MS,
        allowCredentials: allow.map((c) => ({ id: c.id, transports: transportsOf(c.transports) })),
        userVerification: userId ? 'preferred' : 'required',
      });
      await factors.saveWebauthnChallenge(binding, {
        challenge: options.challenge,
        ...(userId ? { userId } : {}),
      });
      return options;
    },

    /**
     * Verify an assertion. For a known user (the challenge's), the credential must be theirs; for
     * a passkey sign-in, the user is the credential's user handle and user verification is
     * required. A counter that goes backwards (both non-zero) is refused.
     */
    async authenticate(
      rp: RelyingParty,
      binding: string,
      response: AuthenticationResponseJSON,
    ): Promise<WebauthnUse> {
      const expected = await factors.takeWebauthnChallenge(binding);
      if (!expected || typeof response?.id !== 'string') return { ok: false, reason: 'invalid' };
      const passkey = expected.userId === undefined;
      const handle = response.response?.userHandle;
      const userId = passkey
        ? typeof handle === 'string'
          ? Buffer.from(handle, 'base64url').toString('utf8')
          : undefined
        : expected.userId;
      if (!userId) return { ok: false, reason: 'unknown-credential' };
      const stored = (await factors.listWebauthn(userId)).find((c) => c.id === response.id);
      if (!stored) return { ok: false, reason: 'unknown-credential', userId };
      let verified: Awaited<ReturnType<typeof verifyAuthenticationResponse>>;
      try {
        verified = await verifyAuthenticationResponse({
          response,
          expectedChallenge: expected.challenge,
          expectedOrigin: rp.origin,
          expectedRPID: rp.id,
          credential: {
            id: stored.id,
            publicKey: Buffer.from(stored.publicKey, 'base64url'),
            counter: stored.counter,
            transports: transportsOf(stored.transports),
          },
          requireUserVerification: passkey,
        });
      } catch (err) {
        // The library's own check (verifyAuthenticationResponse: a counter not above the stored
        // one, when either is non-zero) is the one that says "cloned".
        const counter = err instanceof Error && /counter value/i.test(err.message);
        return {
          ok: false,
          reason: counter ? 'counter' : 'invalid',
          userId,
          credentialId: stored.id,
        };
      }
      if (!verified.verified)
        return { ok: false, reason: 'invalid', userId, credentialId: stored.id };
      const info = verified.authenticationInfo;
      const credential: WebauthnCredential = {
        ...stored,
        counter: info.newCounter,
        backedUp: info.credentialBackedUp,
        lastUsedAt: now(),
      };
      // Removed while it was being used: it signs nobody in.
      if (!(await factors.updateWebauthn(userId, credential)))
        return { ok: false, reason: 'unknown-credential', userId };
      return { ok: true, method: 'webauthn', userId, credential, userVerified: info.userVerified };
    },

    list: (userId: string) => factors.listWebauthn(userId),
    remove: (userId: string, credentialId: string) => factors.removeWebauthn(userId, credentialId),

    /**
     * Give one of the user's credentials a new name; the renamed credential, or null when the
     * user has none with that id (or it was removed meanwhile: never written back). A use landing
     * between the read and the write has its counter written back one lower, which lets only that
     * one counter value be seen twice.
     */
    async rename(userId: string, credentialId: string, name: string) {
      const stored = (await factors.listWebauthn(userId)).find((c) => c.id === credentialId);
      if (!stored) return null;
      const renamed = { ...stored, name };
      return (await factors.updateWebauthn(userId, renamed)) ? renamed : null;
    },
  };
}

/** A key's name: 1 to 64 printable characters (no control or format characters), trimmed; else null. */
export function keyNameOf(input: unknown): string | null {
  if (typeof input !== 'string') return null;
  const name = input.trim();
  return /^[^\p{C}]{1,64}$/u.test(name) ? name : null;
}

export type Webauthn = ReturnType<typeof createWebauthn>;
