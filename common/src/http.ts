import { randomUUID } from 'node:crypto';
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import { ERRORS, type ErrorCode, isErrorCode } from './errors.js';

/** Escape text for HTML element content and quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value)
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

/** A browser navigation asks for HTML; API clients and fetch() calls do not. */
export function wantsHtml(req: IncomingMessage): boolean {
  const accept = req.headers.accept;
  return typeof accept === 'string' && accept.includes('text/html');
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Keep a well-formed request id from upstream (nginx, the gateway); otherwise make one. */
export function requestIdFrom(value: string | string[] | undefined): string {
  return typeof value === 'string' && REQUEST_ID.test(value) ? value : randomUUID();
}

export const NO_STORE = 'no-store';

export interface PageOptions {
  /** Our own stylesheet (same origin: the pages' CSP allows `style-src 'self'` only). */
  stylesheet?: string;
  /** The page icon (without one, browsers ask for /favicon.ico, which the gateway protects). */
  icon?: string;
  /** A wider column, for tables. */
  wide?: boolean;
}

/**
 * A short, self-contained HTML page: a small header with the brand, one `<main>` landmark, our
 * own stylesheet and icon, no scripts, no inline styles, no third-party assets. The third
 * argument may still be the stylesheet's path alone.
 */
export function htmlPage(title: string, body: string, options: string | PageOptions = {}): string {
  const {
    stylesheet = '/auth/static/gatehouse.css',
    icon = '/auth/static/favicon.svg',
    wide = false,
  } = typeof options === 'string' ? { stylesheet: options } : options;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="${escapeHtml(stylesheet)}">
<link rel="icon" href="${escapeHtml(icon)}" type="image/svg+xml">
</head>
<body>
<header class="site-header">
<a class="brand" href="/"><img class="brand-mark" src="${escapeHtml(icon)}" alt="" width="24" height="24">Gatehouse</a>
</header>
<main class="card${wide ? ' wide' : ''}">
${body}
</main>
</body>
</html>
`;
}

export interface SendErrorOptions {
  /** Instead of the catalogue's default message (it reaches the client: nothing internal). */
  message?: string;
  /** Answer headers, such as `Retry-After` or `WWW-Authenticate`. */
  headers?: Readonly<Record<string, string>>;
  /** JSON whatever `Accept` says: the caller is a machine (nginx auth_request, the gateway). */
  json?: boolean;
  /** More members of the JSON body after `error` and `message` (STEP_UP_REQUIRED's `need`). */
  fields?: Readonly<Record<string, string>>;
  /**
   * Only to relay a 4xx a library error carries (express.static's 403, 405, 412, 416), answered
   * under BAD_REQUEST as always. Everything else answers the catalogue's status.
   */
  status?: number;
}

/** `{"error","message"}`, the JSON body of every error answer (and a code's own `fields`). */
export const errorJson = (
  code: string,
  message: string,
  fields: Readonly<Record<string, string>> = {},
) =>
  // error and message first, and never replaced by a field
  JSON.stringify(Object.assign({ error: code, message }, fields, { error: code, message }));

/** The short page a browser gets for an error: the message and the code, nothing else. */
export function errorPage(status: number, code: string, message: string): string {
  return htmlPage(
    `${status} ${message}`,
    `<h1>${escapeHtml(message)}</h1>\n<p class="muted">Error code: ${escapeHtml(code)}</p>`,
  );
}

/**
 * Answer an error the way the contract says: JSON `{error, message}` for API clients, a short
 * HTML page for browsers; never a stack trace. The status comes from the catalogue
 * (errors.ts). `Cache-Control: no-store` always; `Content-Length` always (HEAD included).
 */
export function sendError(
  req: IncomingMessage,
  res: ServerResponse,
  code: ErrorCode,
  options: SendErrorOptions = {},
): void {
  writeError(req, res, { code, ...options });
}

function writeError(
  req: IncomingMessage,
  res: ServerResponse,
  options: SendErrorOptions & { code: string },
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const { code } = options;
  const spec = isErrorCode(code) ? ERRORS[code] : undefined;
  const status = options.status ?? spec?.status ?? 500;
  const message = options.message ?? spec?.message ?? ERRORS.INTERNAL_ERROR.message;
  for (const [name, value] of Object.entries(options.headers ?? {})) res.setHeader(name, value);
  res.setHeader('Cache-Control', NO_STORE);
  res.statusCode = status;
  const html = !options.json && wantsHtml(req);
  const body = html ? errorPage(status, code, message) : errorJson(code, message, options.fields);
  res.setHeader(
    'Content-Type',
    html ? 'text/html; charset=utf-8' : 'application/json; charset=utf-8',
  );
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body); // (no body on HEAD: node:http drops it)
}

/**
 * The same answer as raw HTTP/1.1 bytes, for a socket that has no ServerResponse (a request
 * Node's parser refused, a refused upgrade): JSON, then the connection closes.
 */
export function errorResponseBytes(
  code: ErrorCode,
  options: Pick<SendErrorOptions, 'message' | 'headers' | 'fields'> = {},
): string {
  const { status } = ERRORS[code];
  const body = errorJson(code, options.message ?? ERRORS[code].message, options.fields);
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    `Cache-Control: ${NO_STORE}`,
    ...Object.entries(options.headers ?? {}).map(([name, value]) => `${name}: ${value}`),
    'Connection: close',
  ];
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}
