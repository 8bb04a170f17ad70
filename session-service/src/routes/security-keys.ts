/**
 * The security page itself (what the user has) and managing its security keys and passkeys:
 * renaming one, and removing one. Removing is what turning TOTP off is for a key: it needs a
 * recent sign-in (as adding one does), ends the user's other sessions, and is refused when
 * REQUIRE_SECOND_FACTOR is on and it would leave the user without any second factor.
 */
import type { Request, Response } from 'express';
import { ERRORS } from '../../../common/src/errors.js';
import { sendError } from '../../../common/src/http.js';
import type { ValidSession } from '../domain/session-repository.js';
import { storeCall } from '../domain/store-call.js';
import { keyNameOf } from '../domain/webauthn.js';
import { securityPage } from '../views-second-factor.js';
import { isForm, seeOther } from './auth.js';
import { bodyOf, type Failure, page, sessionHelpers } from './code-check.js';
import type { SecurityDeps } from './security.js';

type PageDeps = Pick<SecurityDeps, 'secondFactors' | 'webauthn' | 'csrf'>;

/** The security page of the session's user, with a notice or an error. */
export function createSecurityView(deps: PageDeps) {
  return async (
    req: Request,
    res: Response,
    session: ValidSession,
    extra: { notice?: string; error?: string } = {},
  ) => {
    const [status, keys] = await storeCall(() =>
      Promise.all([
        deps.secondFactors.status(session.auth.userId),
        deps.webauthn.list(session.auth.userId),
      ]),
    );
    return securityPage({
      username: session.auth.username,
      ...status,
      keys,
      csrfToken: deps.csrf.token(req, res),
      ...extra,
    });
  };
}

/**
 * REQUIRE_SECOND_FACTOR: a user may not remove their last factor (GitHub refuses to turn 2FA
 * off for a member of an organisation that requires it; the alternative, letting them and
 * sending them to enrol at the next sign-in, leaves a required-2FA account on a password
 * meanwhile, with every session it keeps). The refusal when `removing` would leave none.
 */
export async function lastRequiredFactor(
  deps: Pick<SecurityDeps, 'secondFactors' | 'policy'>,
  userId: string,
  removing: 'totp' | 'key',
): Promise<Failure | null> {
  if (!deps.policy.required) return null;
  const status = await storeCall(() => deps.secondFactors.status(userId));
  const left =
    (status.totp && removing !== 'totp' ? 1 : 0) + status.webauthn - (removing === 'key' ? 1 : 0);
  if (left > 0) return null;
  return {
    code: 'MFA_ENROLMENT_REQUIRED',
    message:
      'Your organisation requires a second factor. Add another one (a security key, a passkey or an authenticator app) before removing this one.',
  };
}

export function createSecurityKeyHandlers(deps: SecurityDeps) {
  const { audit } = deps.steps.codes;
  const { me, userOf, recentlyAuthenticated } = sessionHelpers(deps);
  const view = createSecurityView(deps);

  /** A form gets the security page with the message; JSON (and DELETE) the error. */
  async function refuse(req: Request, res: Response, session: ValidSession, failure: Failure) {
    if (!isForm(req))
      return sendError(req, res, failure.code, { message: failure.message, json: true });
    page(
      res,
      ERRORS[failure.code].status,
      await view(req, res, session, { error: failure.message }),
    );
  }

  /** The user's own key with the id in the path, or null (someone else's answers as unknown). */
  async function ownKey(req: Request, userId: string) {
    const id = String(req.params.id ?? '');
    return (await storeCall(() => deps.webauthn.list(userId))).find((c) => c.id === id) ?? null;
  }

  return {
    /**
     * POST /auth/security/webauthn/:id/remove (form or JSON) and DELETE /auth/security/webauthn/:id:
     * the key is gone, so it signs nobody in, and the user's other sessions end (one may be
     * whoever holds the key).
     */
    async remove(req: Request, res: Response) {
      const session = me(req);
      const user = userOf(session);
      if (!recentlyAuthenticated(session)) {
        if (isForm(req))
          return seeOther(res, '/auth/step-up?need=recent-authentication&rd=%2Fauth%2Fsecurity');
        return sendError(req, res, 'REAUTHENTICATION_REQUIRED', { json: true });
      }
      const key = await ownKey(req, user.id);
      if (!key) return sendError(req, res, 'NOT_FOUND');
      const refused = await lastRequiredFactor(deps, user.id, 'key');
      if (refused) return refuse(req, res, session, refused);
      if (!(await storeCall(() => deps.webauthn.remove(user.id, key.id))))
        return sendError(req, res, 'NOT_FOUND');
      const revoked = await deps.sessions.deleteUserSessions(user.id, session.sid);
      audit('webauthn.removed', req, {
        username: user.username,
        userId: user.id,
        credentialId: key.id,
        revoked,
      });
      if (isForm(req)) return seeOther(res, `/auth/security?key-removed=${revoked}`);
      res.json({ revoked });
    },

    /** POST /auth/security/webauthn/:id/name `{ name }` (form or JSON): 1 to 64 printable characters. */
    async rename(req: Request, res: Response) {
      const session = me(req);
      const user = userOf(session);
      const key = await ownKey(req, user.id);
      if (!key) return sendError(req, res, 'NOT_FOUND');
      const name = keyNameOf(bodyOf(req).name);
      if (name === null)
        return refuse(req, res, session, {
          code: 'BAD_REQUEST',
          message: 'A name is 1 to 64 printable characters.',
        });
      if (!(await storeCall(() => deps.webauthn.rename(user.id, key.id, name))))
        return sendError(req, res, 'NOT_FOUND');
      audit('webauthn.renamed', req, {
        username: user.username,
        userId: user.id,
        credentialId: key.id,
      });
      if (isForm(req)) return seeOther(res, '/auth/security?key-renamed=1');
      res.json({ credential: { id: key.id, name } });
    },
  };
}
