import { z } from 'zod';

export const EXIT_OK = 0;
/** Refused or failed; nothing changed. */
export const EXIT_FAILED = 1;
/** The users file changed, but the user's sessions could not be ended (Redis unreachable). */
export const EXIT_SESSIONS_NOT_ENDED = 2;
/** Ctrl-C at a prompt. */
export const EXIT_CANCELLED = 130;

/** A refusal or failure with a one-line message for stderr. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = EXIT_FAILED,
  ) {
    super(message);
  }
}

/** One line saying what went wrong: a zod error as `path: message`. */
export function describeError(err: unknown): string {
  if (err instanceof z.ZodError) {
    const issue = err.issues[0];
    return issue ? `${issue.path.join('.') || 'file'}: ${issue.message}` : 'invalid content';
  }
  return err instanceof Error ? err.message : String(err);
}
