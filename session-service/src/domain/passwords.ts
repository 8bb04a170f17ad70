import { type Algorithm, hash } from '@node-rs/argon2';

/** OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1. */
export const ARGON2_PARAMS = {
  // Algorithm.Argon2id (a const enum, which verbatimModuleSyntax cannot import by value)
  algorithm: 2 as Algorithm,
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1,
} as const;

export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 1024;

export function checkNewPassword(password: string): string | null {
  const length = [...password].length;
  if (length < PASSWORD_MIN) return `password must be at least ${PASSWORD_MIN} characters`;
  if (length > PASSWORD_MAX) return `password must be at most ${PASSWORD_MAX} characters`;
  return null;
}

export function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2_PARAMS);
}

/** Checks passwords (session-service/src/adapters/hasher-pool.ts: createPasswordVerifier). */
export interface PasswordVerifier {
  /** Verifies against `passwordHash`, or spends the same time on a dummy hash when it is null. */
  verify(passwordHash: string | null, password: string): Promise<boolean>;
}
