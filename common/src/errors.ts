/** An error with a stable code that maps to an HTTP status. Tests assert on codes. */
export class AppError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** The session store (Redis) could not answer: callers must fail closed (503). */
export class StoreUnavailableError extends AppError {
  constructor(cause?: unknown) {
    super('SESSION_STORE_UNAVAILABLE', 503, 'The session store is unavailable. Try again shortly.');
    this.cause = cause;
  }
}

export const MESSAGES: Record<string, string> = {
  BAD_REQUEST: 'The request is malformed.',
  INVALID_JSON: 'The request body is not valid JSON.',
  PAYLOAD_TOO_LARGE: 'The request body is too large.',
  UNSUPPORTED_MEDIA_TYPE: 'Send application/json or application/x-www-form-urlencoded.',
  NOT_FOUND: 'Not found.',
  INTERNAL_ERROR: 'Something went wrong on our side.',
  UNAUTHENTICATED: 'You need to log in.',
  FORBIDDEN: 'You are not allowed to do that.',
};
