import helmet from 'helmet';

/**
 * The security headers of every page Gatehouse serves (helmet): a CSP that allows nothing but
 * our own stylesheets and images and forms posting to us (plus `formAction`), and with `scripts`
 * our own script files and fetches to us (the session-service's static/webauthn.js: WebAuthn
 * needs a script; still nothing inline), no framing, no
 * referrer to other origins, and HSTS when served over HTTPS.
 *
 * Referrer-Policy is `same-origin`, not `no-referrer`: under `no-referrer` a browser sends
 * `Origin: null` even on a same-origin form post, and on a plain-HTTP intranet host (no Fetch
 * Metadata there) Origin is all the session-service has to tell our own forms from forged ones
 * (Fetch spec, "serializing a request origin"). Other origins still get neither Referer nor a
 * real Origin from our pages.
 */
export function securityHeaders(
  options: { formAction?: readonly string[]; hsts?: boolean; scripts?: boolean } = {},
) {
  return helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        styleSrc: ["'self'"],
        ...(options.scripts ? { scriptSrc: ["'self'"], connectSrc: ["'self'"] } : {}),
        imgSrc: ["'self'"],
        formAction: ["'self'", ...(options.formAction ?? [])],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
      },
    },
    strictTransportSecurity: options.hsts ? { maxAge: 31_536_000, includeSubDomains: true } : false,
    referrerPolicy: { policy: 'same-origin' },
  });
}
