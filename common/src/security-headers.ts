import helmet from 'helmet';

/**
 * The security headers of every page Gatehouse serves (helmet): a CSP that allows nothing but
 * our own stylesheets and images and forms posting to us (plus `formAction`), no framing, no
 * referrer, and HSTS when served over HTTPS.
 */
export function securityHeaders(options: { formAction?: readonly string[]; hsts?: boolean } = {}) {
  return helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'"],
        formAction: ["'self'", ...(options.formAction ?? [])],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
      },
    },
    strictTransportSecurity: options.hsts ? { maxAge: 31_536_000, includeSubDomains: true } : false,
    referrerPolicy: { policy: 'no-referrer' },
  });
}
