/**
 * The session's vocabulary, for the code that only talks about sessions (validate, the views,
 * the assertion signer): what a session holds and how long it lives. Creating, reading, sliding,
 * listing and ending sessions is the session repository's (session-repository.ts), the one owner
 * of the record, its key format and the per-user index.
 */
export { absoluteExpiry, parseRecord, remainingMs } from './session-records.js';
export {
  authenticationOfSession,
  type Lifetimes,
  LOGIN_GRACE_MS,
  type SessionAuth,
  type SessionRepository,
  type SessionSummary,
  type ValidSession,
} from './session-repository.js';
