/**
 * Users from identity sources, kept true while they are signed in: the LDAP sign-in (a password
 * checked by the directory becomes an identity-source user) and the re-check of live sessions.
 *
 * Validate serves an identity-source user from their record (domain/external-users.ts). When the
 * record is older than its source's window (ldap.recheckSeconds; a provider's refreshSeconds),
 * the validation that notices it starts a re-check in the background, one per user at a time:
 * - LDAP: the account is read again with the service account. Gone, or no longer matching the
 *   user filter (disabled): the record is removed and every session of the user ends. Disabled
 *   by an administrator (ppolicy's lock until unlocked, AD's ACCOUNTDISABLE; never a lockout
 *   after failed attempts, which anyone can cause): every session and access token ends. Its
 *   password-changed value differs from the one at sign-in: every session ends. Groups, email and
 *   name follow the directory.
 * - OpenID Connect: a refresh grant with the newest refresh token. Refused (invalid_grant: the
 *   provider ended the grant, disabled the user): the record is removed and every session ends.
 *   A new ID token's claims update groups and email; no longer allowed (allowedGroups,
 *   allowedDomains): every session ends.
 * A source that cannot be asked leaves sessions as they are (logged, retried after
 * RETRY_AFTER_FAILURE_MS): new sign-ins fail closed meanwhile, live sessions keep the last word
 * the source gave. The bound, for a user who keeps using a session: the window, plus one
 * validation, plus one look-up.
 */
import type { Logger } from '../../common/src/logger.js';
import type { OidcClient } from './adapters/oidc-client.js';
import { OidcRefused } from './adapters/oidc-client.js';
import type { Directory } from './domain/directory.js';
import {
  asUser,
  type ExternalUser,
  type ExternalUsers,
  externalUserId,
} from './domain/external-users.js';
import { mapClaims } from './domain/oidc-claims.js';
import type { SessionRepository } from './domain/session-repository.js';
import type { User } from './domain/users.js';

export const RETRY_AFTER_FAILURE_MS = 30_000;

export interface IdentityRecheckDeps {
  externalUsers: ExternalUsers;
  sessions: SessionRepository;
  clients: ReadonlyMap<string, OidcClient>;
  directory?: Directory;
  /** ldap.recheckSeconds */
  ldapRecheckSeconds?: number;
  logger: Logger;
  now: () => number;
}

export function createIdentityRecheck(deps: IdentityRecheckDeps) {
  const running = new Set<string>();
  const failedAt = new Map<string, number>();
  const audit = deps.logger.child({ audit: true });

  function windowOf(user: User): number {
    if (user.source === 'ldap') return (deps.ldapRecheckSeconds ?? 0) * 1000;
    const provider = user.id.split(':')[1] ?? '';
    return (deps.clients.get(provider)?.config.refreshSeconds ?? 0) * 1000;
  }

  async function end(record: ExternalUser, reason: string, forget: boolean) {
    if (forget) await deps.externalUsers.remove(record.id);
    const ended = await deps.sessions.deleteUserSessions(record.id);
    audit.info(
      {
        event: 'sessions.ended_by_source',
        userId: record.id,
        username: record.username,
        reason,
        ended,
      },
      'sessions.ended_by_source',
    );
  }

  async function recheckLdap(record: ExternalUser) {
    if (!deps.directory || !record.dn) return;
    const account = await deps.directory.lookUp(
      record.dn,
      record.subjectUsername ?? record.username,
    );
    if (!account) return end(record, 'ldap_account_gone', true);
    // Disabled: the record keeps its name (enabled again, the same person signs in), and
    // sessionsNotBefore ends the user's access tokens too.
    const passwordChanged = (account.passwordChanged ?? '') !== (record.passwordChanged ?? '');
    const ends = account.disabled || passwordChanged;
    await deps.externalUsers.save({
      ...record,
      email: account.email,
      name: account.name,
      groups: account.groups,
      checkedAt: deps.now(),
      ...(account.passwordChanged ? { passwordChanged: account.passwordChanged } : {}),
      ...(ends ? { sessionsNotBefore: deps.now() } : {}),
    });
    if (account.disabled) await end(record, 'ldap_account_disabled', false);
    else if (passwordChanged) await end(record, 'ldap_password_changed', false);
  }

  async function recheckOidc(record: ExternalUser) {
    const client = deps.clients.get(record.provider);
    if (!client || !record.refreshToken) return;
    let refreshed: Awaited<ReturnType<OidcClient['refresh']>>;
    try {
      refreshed = await client.refresh(record.refreshToken);
    } catch (err) {
      if (err instanceof OidcRefused) return end(record, `oidc_refresh_refused:${err.error}`, true);
      throw err;
    }
    let next: ExternalUser = {
      ...record,
      checkedAt: deps.now(),
      ...(refreshed.refreshToken ? { refreshToken: refreshed.refreshToken } : {}),
    };
    if (refreshed.claims) {
      const mapped = mapClaims(client.config, refreshed.claims);
      if (!mapped.ok) return end(record, `oidc_not_allowed: ${mapped.reason}`, true);
      next = {
        ...next,
        email: mapped.identity.email,
        name: mapped.identity.name,
        groups: mapped.identity.groups,
      };
    }
    await deps.externalUsers.save(next);
  }

  async function recheck(id: string) {
    const record = await deps.externalUsers.get(id);
    if (!record) return;
    if (record.source === 'ldap') await recheckLdap(record);
    else await recheckOidc(record);
  }

  return {
    /** validate-session's onExternalUser: a re-check in the background when the record is due. */
    onValidated(user: User) {
      const window = windowOf(user);
      if (window <= 0 || user.checkedAt === undefined) return;
      const t = deps.now();
      if (t - user.checkedAt < window || running.has(user.id)) return;
      if (t - (failedAt.get(user.id) ?? 0) < RETRY_AFTER_FAILURE_MS) return;
      running.add(user.id);
      recheck(user.id)
        .then(() => failedAt.delete(user.id))
        .catch((err: unknown) => {
          failedAt.set(user.id, deps.now());
          if (failedAt.size > 10_000) failedAt.clear();
          deps.logger.warn(
            { err, userId: user.id },
            'identity source re-check failed; sessions kept',
          );
        })
        .finally(() => running.delete(user.id));
    },
    /** For tests and doctor: re-check one user now. */
    recheck,
  };
}

/**
 * The password form's directory step: a username with no users-file entry is checked against
 * the directory (search, then bind as the user). Right: the account becomes (or stays) an
 * identity-source user, returned for the login's next step; when its password-changed value is
 * not the one stored, sessions made before this sign-in end (sessionsNotBefore). Wrong: null.
 * The directory down: DIRECTORY_UNAVAILABLE (503), never "wrong password".
 */
export function createDirectoryLogin(deps: {
  directory: Directory;
  externalUsers: ExternalUsers;
  now: () => number;
}) {
  return async (username: string, password: string): Promise<User | null> => {
    const checked = await deps.directory.authenticate(username, password);
    if (!checked.ok) return null;
    const { account } = checked;
    const id = externalUserId('ldap', 'ldap', account.id);
    // The password changed since the record's sign-in (or re-check): sessions made before this
    // sign-in end, as a re-check would have ended them. Without this the new sign-in would store
    // the new value and the re-check would find nothing changed for the old password's sessions.
    const previous = await deps.externalUsers.get(id);
    const passwordChanged =
      previous !== null && (previous.passwordChanged ?? '') !== (account.passwordChanged ?? '');
    const sessionsNotBefore = passwordChanged ? deps.now() : previous?.sessionsNotBefore;
    const record = await deps.externalUsers.save({
      id,
      source: 'ldap',
      provider: 'ldap',
      subject: account.id,
      subjectUsername: account.username,
      username: account.username,
      email: account.email,
      name: account.name,
      groups: account.groups,
      dn: account.dn,
      checkedAt: deps.now(),
      ...(account.passwordChanged ? { passwordChanged: account.passwordChanged } : {}),
      ...(sessionsNotBefore !== undefined ? { sessionsNotBefore } : {}),
    });
    return asUser(record);
  };
}

export type DirectoryLogin = ReturnType<typeof createDirectoryLogin>;
