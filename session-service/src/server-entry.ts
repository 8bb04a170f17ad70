import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Express, Request, Response } from 'express';
import type { Logger } from '../../common/src/logger.js';
import { type Metrics, observeRequest } from '../../common/src/observability.js';

/**
 * The session-service's server entry: GET or HEAD of exactly `/auth/validate` or
 * `/internal/validate` (the gateway's; with or without a query) goes from the HTTP server to its
 * handler with only the request observer in front: no Express request/response prototypes, no
 * router walk (docs/performance.md). Everything else is the Express app.
 */
export function createServerEntry(parts: {
  app: Express;
  logger: Logger;
  metrics: Metrics;
  serveValidate: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  serveInternalValidate: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  closeRevocationStreams: () => void;
}) {
  const { app, logger, metrics } = parts;
  const validateRoute = () => VALIDATE_PATH;
  const internalValidateRoute = () => INTERNAL_VALIDATE_PATH;
  function entry(req: IncomingMessage, res: ServerResponse): void {
    if (isFastPath(req, VALIDATE_PATH)) {
      res.setHeader('X-Request-Id', observeRequest(logger, metrics, req, res, validateRoute));
      void parts.serveValidate(req, res);
      return;
    }
    if (isFastPath(req, INTERNAL_VALIDATE_PATH)) {
      const id = observeRequest(logger, metrics, req, res, internalValidateRoute);
      res.setHeader('X-Request-Id', id);
      void parts.serveInternalValidate(req, res);
      return;
    }
    app(req as Request, res as Response);
  }
  return Object.assign(entry, {
    /** An http.Server serving this entry (as Express's app.listen would serve the app alone). */
    listen(port: number, host: string, callback?: () => void): http.Server {
      return http.createServer(entry).listen(port, host, callback);
    },
    /** End the gateways' revocation streams (shutdown: the server cannot drain them). */
    closeRevocationStreams: parts.closeRevocationStreams,
  });
}

const VALIDATE_PATH = '/auth/validate';
const INTERNAL_VALIDATE_PATH = '/internal/validate';

/** GET or HEAD of exactly `path`, with or without a query. */
function isFastPath(req: IncomingMessage, path: string): boolean {
  const url = req.url;
  return (
    (req.method === 'GET' || req.method === 'HEAD') &&
    url !== undefined &&
    url.startsWith(path) &&
    (url.length === path.length || url.charCodeAt(path.length) === 63) // '?'
  );
}
