/**
 * One password check, on a piscina worker thread (hasher-pool.ts). The synchronous verify: this
 * thread does nothing else, and a thread-pool hop would hand the work back to libuv's pool at the
 * event loop's priority.
 */
import { verifySync } from '@node-rs/argon2';

export interface VerifyTask {
  hash: string;
  password: string;
}

/** argon2 verify of `password` against the PHC string `hash`; false for any malformed input. */
export default function verify({ hash, password }: VerifyTask): boolean {
  try {
    return verifySync(hash, password);
  } catch {
    return false;
  }
}
