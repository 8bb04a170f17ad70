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

/** A short, self-contained HTML page (our own stylesheet, no scripts, no third-party assets). */
export function htmlPage(
  title: string,
  body: string,
  stylesheet = '/auth/static/gatehouse.css',
): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="${escapeHtml(stylesheet)}">
</head>
<body>
<main class="card">
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
