import { MAX_HEADER_FIELDS } from './limits.js';

/**
 * The catalogue: every stable error code a Gatehouse service answers, with its HTTP status, its
 * default message and the level at which an error handler logs it when it is thrown. The domain
 * throws codes (`new GatehouseError('SESSION_STORE_UNAVAILABLE', { cause })`), never statuses;
 * `sendError` (http.ts) takes the status from here. Tests assert on codes, not messages.
 *
 * test/unit/errors.test.ts keeps it honest: every code the sources answer is here with the same
 * status, every code here is answered somewhere (nginx templates included), and the docs name
 * codes only from here, with these statuses.
 *
 * Log levels: `error` is a bug (a stack trace in the log, never in the answer); `warn` a
 * dependency failing (Redis, the session-service, an upstream); `info` a refusal an operator
 * wants to see; `debug` an ordinary client error (the request line already says it happened).
 */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface ErrorSpec {
  readonly status: number;
  readonly message: string;
  readonly log: LogLevel;
}

const spec = (status: number, message: string, log: LogLevel = 'debug'): ErrorSpec => ({
  status,
  message,
  log,
});

export const ERRORS = {
  // 400
  BAD_REQUEST: spec(400, 'The request is malformed.'),
  INVALID_JSON: spec(400, 'The request body is not valid JSON.'),
  BAD_PATH: spec(400, 'The request path is not allowed.'),
  BAD_HOST: spec(400, 'The Host header is not a valid host name and port.'),
  /** An OpenID Connect callback that is not the answer to this browser's sign-in (state, code, ID token). */
  SIGN_IN_INVALID: spec(400, 'That sign-in could not be completed. Please sign in again.', 'info'),
  INVALID_AUDIENCE: spec(
    400,
    'aud must be given once: 1 to 64 letters, digits, ".", "_" or "-".',
    'info',
  ),
  // 401
  UNAUTHENTICATED: spec(401, 'You need to log in.'),
  INVALID_CREDENTIALS: spec(401, 'Invalid username or password.'),
  /** Not UNAUTHENTICATED: a gateway with the wrong token fails closed (503), not "logged out". */
  INVALID_INTERNAL_TOKEN: spec(401, 'A valid internal token is required.', 'warn'),
  /** Gateway: the route's `require` asks more of the session (JSON carries `need`). */
  STEP_UP_REQUIRED: spec(
    401,
    'This page needs a second sign-in step. Confirm it is you with a second factor.',
  ),
  /** Gateway: the user proved who they are longer ago than the route's `maxAge`. */
  REAUTHENTICATION_REQUIRED: spec(
    401,
    'This page needs a recent sign-in. Confirm it is you again.',
  ),
  /** The password was right; a second factor (`methods` in the JSON body) completes the login. */
  MFA_REQUIRED: spec(401, 'A second factor is required: send a code from your authenticator app.'),
  /** A TOTP or recovery code that is wrong, malformed, outside the window, or already used. */
  INVALID_CODE: spec(401, 'That code is not valid.'),
  // 403
  FORBIDDEN: spec(403, 'You are not allowed to do that.'),
  /** REQUIRE_SECOND_FACTOR and the grace period is over: enrol (in a browser) to sign in. */
  MFA_ENROLMENT_REQUIRED: spec(
    403,
    'A second factor is required. Sign in with a browser to set one up.',
    'info',
  ),
  /** A route requires a security key or passkey: the user has none, or the caller is not a browser. */
  WEBAUTHN_REQUIRED: spec(
    403,
    'This page requires a security key or passkey. Add one under Security, then use it in a browser.',
    'info',
  ),
  /** The identity provider vouched for the user, but its domain or groups may not sign in here. */
  SIGN_IN_NOT_ALLOWED: spec(403, 'Your account is not allowed to sign in here.', 'info'),
  /** An access token sent over plain HTTP from another machine while PUBLIC_URL is https. */
  HTTPS_REQUIRED: spec(403, 'Access tokens are accepted over HTTPS only.', 'info'),
  /** A route that takes tokens only (or sessions only) got the other kind of credential. */
  CREDENTIAL_NOT_ACCEPTED: spec(
    403,
    'This route does not accept this kind of credential (a session or an access token).',
    'info',
  ),
  /** An access token's scope leaves this route, or this method, out. */
  TOKEN_SCOPE: spec(403, 'The access token does not reach this route or method.', 'info'),
  CROSS_SITE_REQUEST: spec(403, 'Cross-site requests are not allowed.', 'info'),
  CSRF_TOKEN_INVALID: spec(403, 'This form expired. Reload the page and try again.', 'info'),
  ORIGIN_NOT_ALLOWED: spec(403, 'This page may not open a WebSocket here.', 'info'),
  // 404
  NOT_FOUND: spec(404, 'Not found.'),
  SESSION_NOT_FOUND: spec(404, 'No such session.'),
  USER_NOT_FOUND: spec(404, 'No such user.'),
  // 408, 409, 413, 415, 429, 431
  REQUEST_TIMEOUT: spec(408, 'The request body took too long to arrive.'),
  LOGIN_INTERRUPTED: spec(
    409,
    'Your sessions were ended while you signed in. Please sign in again.',
    'info',
  ),
  /** A provider's or the directory's username already belongs to another account here. */
  USERNAME_TAKEN: spec(
    409,
    'This username already belongs to another account here. Ask your administrator.',
    'warn',
  ),
  PAYLOAD_TOO_LARGE: spec(413, 'The request body is too large.'),
  UNSUPPORTED_MEDIA_TYPE: spec(415, 'Send application/json or application/x-www-form-urlencoded.'),
  TOO_MANY_ATTEMPTS: spec(429, 'Too many sign-in attempts. Try again later.', 'info'),
  TOO_MANY_HEADERS: spec(431, `The request has more than ${MAX_HEADER_FIELDS} header fields.`),
  COOKIES_TOO_LARGE: spec(
    431,
    'Your browser sent more cookies for this site than it accepts. Clear the cookies for this site and sign in again.',
  ),
  /** Node's parser refused the header section (past maxHeaderSize). */
  HEADERS_TOO_LARGE: spec(431, 'The request headers are too large.'),
  // 5xx
  INTERNAL_ERROR: spec(500, 'Something went wrong on our side.', 'error'),
  UPSTREAM_UNAVAILABLE: spec(502, 'The application is not reachable right now.', 'warn'),
  SESSION_STORE_UNAVAILABLE: spec(
    503,
    'The session store is unavailable. Try again shortly.',
    'warn',
  ),
  SESSION_SERVICE_UNAVAILABLE: spec(
    503,
    'Sign-in is unavailable right now. Try again shortly.',
    'warn',
  ),
  /** Answered by the nginx edge template (nginx/templates/edge.conf.template) alone. */
  GATEWAY_UNAVAILABLE: spec(
    503,
    'The service is not reachable right now. Try again shortly.',
    'warn',
  ),
  /** An OpenID Connect provider did not answer (discovery, token endpoint, JWKS). */
  IDENTITY_PROVIDER_UNAVAILABLE: spec(
    503,
    'The sign-in provider is not reachable right now. Try again shortly.',
    'warn',
  ),
  /** The LDAP directory did not answer, or its certificate was refused: never "wrong password". */
  DIRECTORY_UNAVAILABLE: spec(
    503,
    'The user directory is not reachable right now. Try again shortly.',
    'warn',
  ),
  /** Load shedding (every password hasher busy): counted in metrics, not one log line each. */
  BUSY: spec(503, 'Too many sign-ins right now. Try again shortly.', 'debug'),
  UPSTREAM_TIMEOUT: spec(504, 'The application did not answer in time.', 'warn'),
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export const isErrorCode = (value: unknown): value is ErrorCode =>
  typeof value === 'string' && Object.hasOwn(ERRORS, value);

/**
 * Codes that name a cause inside a service and are never answered as they are, with the code a
 * client gets instead (`null`: not answered at all, e.g. refused configuration at startup).
 */
export const INTERNAL_CODES = {
  REDIS_TIMEOUT: 'SESSION_STORE_UNAVAILABLE',
  REDIS_UNAVAILABLE: 'SESSION_STORE_UNAVAILABLE',
  /** A sealed record that does not open is no session (domain/sealing.ts). */
  UNREADABLE_RECORD: 'UNAUTHENTICATED',
  HASHER_BUSY: 'BUSY',
  /** A backend's verifier refusing X-Auth-Request-Jwt (verify-identity.ts). */
  INVALID_IDENTITY_ASSERTION: 'UNAUTHENTICATED',
  INVALID_CONFIGURATION: null,
} as const satisfies Record<string, ErrorCode | null>;

export interface ErrorOptions {
  /** Instead of the catalogue's default message (safe to show: it reaches the client). */
  message?: string;
  cause?: unknown;
  /** Answer headers, such as `Retry-After`. */
  headers?: Readonly<Record<string, string>>;
}

/**
 * The one error a Gatehouse service throws to answer a request: a catalogue code, and from it the
 * status. The services' error handlers answer it with sendError.
 */
export class GatehouseError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly log: LogLevel;

  constructor(code: ErrorCode, options: ErrorOptions = {}) {
    super(options.message ?? ERRORS[code].message, { cause: options.cause });
    this.name = 'GatehouseError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.log = ERRORS[code].log;
    this.headers = options.headers ?? {};
  }
}

/** Whether `err` is a GatehouseError (with this code, when one is given). */
export const isGatehouseError = (err: unknown, code?: ErrorCode): err is GatehouseError =>
  err instanceof GatehouseError && (code === undefined || err.code === code);
