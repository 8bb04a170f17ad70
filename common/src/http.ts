import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MESSAGES } from './errors.js';

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

/**
 * Answer an error the way the contract says: JSON `{error, message}` for API clients, a short
 * HTML page for browsers; never a stack trace.
 */
export function sendError(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  code: string,
  message = MESSAGES[code] ?? 'Error.',
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.setHeader('Cache-Control', NO_STORE);
  if (wantsHtml(req)) {
    res.statusCode = status;
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    res.end(
      htmlPage(
        `${status} ${message}`,
        `<h1>${escapeHtml(message)}</h1>\n<p class="muted">Error code: ${escapeHtml(code)}</p>`,
      ),
    );
    return;
  }
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.end(JSON.stringify({ error: code, message }));
}
