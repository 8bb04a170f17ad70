import type { NextFunction, Request, Response } from 'express';
import { GatehouseError } from '../../common/src/errors.js';
import { sendError } from '../../common/src/http.js';
import type { Logger } from '../../common/src/logger.js';

/**
 * A thrown error as a catalogue error: ours as they are (the password hashers' load shedding is
 * BUSY), the body parsers' refusals (express/body-parser `type`s) by what they mean; null for a bug.
 */
function asGatehouseError(err: unknown): GatehouseError | null {
  if (err instanceof GatehouseError) return err;
  switch ((err as { type?: unknown } | null)?.type) {
    case 'entity.parse.failed':
      return new GatehouseError('INVALID_JSON', { cause: err });
    case 'entity.too.large':
      return new GatehouseError('PAYLOAD_TOO_LARGE', { cause: err });
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new GatehouseError('UNSUPPORTED_MEDIA_TYPE', { cause: err });
    case 'parameters.too.many':
      return new GatehouseError('PAYLOAD_TOO_LARGE', {
        cause: err,
        message: 'Too many form fields.',
      });
  }
  return null;
}

/** The one error handler: stable codes, JSON or a short page, never a stack trace. */
export function errorHandler(logger: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const known = asGatehouseError(err);
    if (known) {
      logger[known.log](
        { requestId: req.id, err: { code: known.code, message: known.message } },
        'request failed',
      );
      return sendError(req, res, known.code, { message: known.message, headers: known.headers });
    }
    // Another library's 4xx (express.static: 403, 405, 412, 416): its status, as BAD_REQUEST.
    const status = (err as { status?: unknown } | null)?.status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      return status === 404
        ? sendError(req, res, 'NOT_FOUND')
        : sendError(req, res, 'BAD_REQUEST', { status });
    }
    logger.error({ err, requestId: req.id }, 'unhandled error');
    sendError(req, res, 'INTERNAL_ERROR');
  };
}
