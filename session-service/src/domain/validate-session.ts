import type { SessionRepository, ValidSession } from './session-repository.js';
import type { User, UsersRepository } from './users.js';

/** A session's id in, the session with its user's live identity out; null when it is not valid. */
export type SessionValidator = (sid: string) => Promise<ValidSession | null>;

/**
 * A session is valid only while its user still is: a user removed or disabled, or whose sessions
 * were ended by a password change (`sessionsNotBefore`), is refused and the session deleted, even
 * if ending the sessions in Redis failed at the time. Identity comes from the live user record,
 * so a group removed from a user takes effect at once.
 */
export function createSessionValidator(deps: {
  sessions: SessionRepository;
  users: UsersRepository;
  /** Told of every identity-source user a session is validated for (identity-recheck.ts). */
  onExternalUser?: (user: User) => void;
}): SessionValidator {
  return async (sid) => {
    const session = await deps.sessions.validateSession(sid);
    if (!session) return null;
    const user = await deps.users.findById(session.auth.userId);
    const revoked =
      !user ||
      user.disabled ||
      (user.sessionsNotBefore !== undefined && session.auth.createdAt < user.sessionsNotBefore);
    if (revoked) {
      await deps.sessions.deleteSession(sid, session.auth.userId);
      return null;
    }
    if (user.source === 'oidc' || user.source === 'ldap') deps.onExternalUser?.(user);
    return {
      ...session,
      auth: { ...session.auth, username: user.username, groups: user.groups, email: user.email },
    };
  };
}
