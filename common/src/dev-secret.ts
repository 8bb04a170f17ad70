import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Where both the session-service and the gateway keep the development INTERNAL_TOKEN (relative to
 * the directory they run in, as `npm start` runs them: the repository root).
 */
export const DEV_INTERNAL_TOKEN_FILE = './data/internal-token';

function readSecret(path: string): string | undefined {
  try {
    const existing = readFileSync(path, 'utf8').trim();
    return existing.length >= 32 ? existing : undefined;
  } catch {
    return undefined; // missing
  }
}

/**
 * Development only: a random secret made once and kept in `path`, so restarts keep everyone
 * logged in. Production never gets here (SESSION_SECRET and INTERNAL_TOKEN are required there).
 *
 * Several processes may ask at the same moment (`npm start` starts the session-service and the
 * gateway together, and both need the same INTERNAL_TOKEN): the new secret is written to a file
 * of this process and then hard-linked into place, which fails when another process was first,
 * so everyone ends up with the first complete file, never a half-written one.
 */
export function loadOrCreateDevSecret(path: string): string {
  const existing = readSecret(path);
  if (existing) return existing;
  const secret = randomBytes(48).toString('base64url');
  mkdirSync(dirname(path), { recursive: true });
  const mine = `${path}.${process.pid}.tmp`;
  writeFileSync(mine, `${secret}\n`, { mode: 0o600 });
  try {
    linkSync(mine, path);
    return secret;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const theirs = readSecret(path);
    if (theirs) return theirs;
    renameSync(mine, path); // there, but not a usable secret: replace it
    return secret;
  } finally {
    rmSync(mine, { force: true });
  }
}
