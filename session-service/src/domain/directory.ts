/**
 * An LDAP directory (or Active Directory) as the login sees it: a password check by binding as
 * the user, and a re-read of an account for live sessions. The adapter is
 * adapters/ldap-directory.ts (ldapts); nothing here knows LDAP's wire.
 *
 * Failures are of two kinds and never mixed up: the directory said no (unknown user, wrong
 * password, locked or disabled account: `{ ok: false }`, a plain "invalid username or password"),
 * or it could not be asked (down, timed out, its certificate refused: throws
 * GatehouseError('DIRECTORY_UNAVAILABLE'), a 503, never "wrong password").
 */
export interface DirectoryAccount {
  /** A stable id for the account (entryUUID, objectGUID; the DN when the directory has none). */
  id: string;
  /** Where the account is now (re-checks read it from here). */
  dn: string;
  /** The username attribute's value as the directory spells it. */
  username: string;
  email: string;
  name: string;
  /** Group names (their nameAttribute), nested ones included when asked. */
  groups: string[];
  /** The password-changed attribute's raw value, when the directory keeps one. */
  passwordChanged?: string;
  /**
   * Disabled by an administrator: OpenLDAP ppolicy's lock until an administrator unlocks
   * (`pwdAccountLockedTime: 000001010000Z`), or Active Directory's ACCOUNTDISABLE bit of
   * `userAccountControl`. A lockout after failed attempts is not: anyone can cause one by failing
   * to sign in as the user, and it must not sign them out (the bind refuses new sign-ins anyway).
   */
  disabled?: true;
}

export type DirectoryCheck = { ok: true; account: DirectoryAccount } | { ok: false };

export interface Directory {
  /**
   * Search the user with the service account (the username escaped by RFC 4515), then bind as
   * them with `password`. `{ ok: false }` for no such user, more than one match, a wrong password,
   * a locked or disabled account.
   */
  authenticate(username: string, password: string): Promise<DirectoryCheck>;
  /**
   * The account at `dn` read again with the service account (for live sessions): null when it is
   * gone or no longer matches the user filter; `disabled` when an administrator disabled it.
   */
  lookUp(dn: string, username: string): Promise<DirectoryAccount | null>;
  /** Bind with the service account (doctor, readiness). Throws DIRECTORY_UNAVAILABLE. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
