import type { Request, Response } from 'express';
import { GatehouseError } from '../../../common/src/errors.js';
import { sendError, wantsHtml } from '../../../common/src/http.js';
import type { Logger } from '../../../common/src/logger.js';
import type { Csrf } from '../csrf.js';
import type { AccessTokens, TokenRecord } from '../domain/access-tokens.js';
import type { ValidSession } from '../domain/session-repository.js';
import { storeCall } from '../domain/store-call.js';
import { parseTokenRequest } from '../domain/token-requests.js';
import type { UsersRepository } from '../domain/users.js';
import { tokenCreatedPage, tokensPage } from '../views-tokens.js';
import { isForm, seeOther } from './auth.js';
import { bodyOf, page, sessionHelpers } from './code-check.js';

/** A token as lists and answers show it: never the token itself (only its stored id). */
export function tokenView(record: TokenRecord) {
  const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
  return {
    id: record.id,
    name: record.name,
    kind: record.kind,
    createdAt: iso(record.createdAt),
    expiresAt: iso(record.expiresAt),
    lastUsedAt: iso(record.lastUsedAt),
    lastUsedFrom: record.lastUsedFrom ?? null,
    scope: record.scope,
  };
}

/** What an audit line says of a token: id, name, kind, expiry and scope, never the token. */
export const tokenAudit = (record: TokenRecord) => ({
  token: record.id,
  tokenName: record.name,
  tokenKind: record.kind,
  expiresAt: new Date(record.expiresAt).toISOString(),
  scope: record.scope,
});

export interface TokensDeps {
  accessTokens: AccessTokens;
  users: UsersRepository;
  csrf: Csrf;
  /** TOKEN_MAX_DAYS. */
  maxDays: number;
  audit: Logger;
  now: () => number;
  current: WeakMap<Request, ValidSession>;
}

/**
 * "Your tokens": a signed-in user's personal access tokens (list, create, revoke one, revoke
 * all), as a page and as JSON. Every route takes the session cookie only (requireSession in
 * front): a token never manages tokens or sessions. Making a token needs a recent sign-in (the
 * rule of adding a second factor): a stolen session cookie alone must not mint a credential that
 * outlives the session.
 */
export function createTokensHandlers(deps: TokensDeps) {
  const { me, recentlyAuthenticated } = sessionHelpers(deps);
  const audit = (event: string, req: Request, extra: Record<string, unknown>) =>
    deps.audit.info({ event, ip: req.ip, requestId: req.id, ...extra }, event);
  const wantsPage = (req: Request) => isForm(req) || (wantsHtml(req) && !req.is('json'));

  async function groupsOf(session: ValidSession): Promise<string[]> {
    const user = await storeCall(() => deps.users.findById(session.auth.userId));
    return user?.groups ?? session.auth.groups;
  }

  async function listPage(
    req: Request,
    res: Response,
    session: ValidSession,
    extra: { notice?: string; error?: string; values?: Record<string, string> } = {},
  ) {
    const tokens = await deps.accessTokens.list(session.auth.userId);
    return tokensPage({
      username: session.auth.username,
      tokens,
      csrfToken: deps.csrf.token(req, res),
      maxDays: deps.maxDays,
      groups: await groupsOf(session),
      ...extra,
    });
  }

  return {
    /** GET /auth/tokens: the page, or `{ tokens }` for JSON. */
    async list(req: Request, res: Response) {
      const session = me(req);
      if (wantsHtml(req)) {
        const { revoked, created } = req.query;
        const notice =
          typeof revoked === 'string'
            ? `Revoked ${Number(revoked) || 0} token(s).`
            : typeof created === 'string'
              ? 'Token created.'
              : undefined;
        return page(res, 200, await listPage(req, res, session, notice ? { notice } : {}));
      }
      const tokens = await deps.accessTokens.list(session.auth.userId);
      res.json({ tokens: tokens.map(tokenView) });
    },

    /** POST /auth/tokens (form or JSON): the token, shown once. */
    async create(req: Request, res: Response) {
      const session = me(req);
      if (!recentlyAuthenticated(session)) {
        if (wantsPage(req))
          return seeOther(res, '/auth/step-up?need=recent-authentication&rd=%2Fauth%2Ftokens');
        return sendError(req, res, 'REAUTHENTICATION_REQUIRED', { json: true });
      }
      const fields = bodyOf(req);
      let request: ReturnType<typeof parseTokenRequest>;
      try {
        request = parseTokenRequest(fields, {
          maxDays: deps.maxDays,
          ownerGroups: await groupsOf(session),
          now: deps.now(),
        });
      } catch (err) {
        if (!(err instanceof GatehouseError) || !wantsPage(req)) throw err;
        const values = Object.fromEntries(
          ['name', 'expiresInDays', 'routes', 'groups', 'readOnly']
            .filter((k) => typeof fields[k] === 'string')
            .map((k) => [k, String(fields[k])]),
        );
        return page(res, 400, await listPage(req, res, session, { error: err.message, values }));
      }
      const { token, record } = await deps.accessTokens.create({
        kind: 'personal',
        ownerId: session.auth.userId,
        ...request,
      });
      audit('token.created', req, {
        username: session.auth.username,
        userId: session.auth.userId,
        ...tokenAudit(record),
      });
      if (wantsPage(req)) return page(res, 201, tokenCreatedPage({ token, record }));
      res.status(201).json({ token, ...tokenView(record) });
    },

    /** DELETE /auth/tokens/:id and POST /auth/tokens/:id/revoke (form). */
    async revoke(req: Request, res: Response) {
      const session = me(req);
      const id = String(req.params.id ?? '');
      if (!(await deps.accessTokens.revoke(session.auth.userId, id)))
        return sendError(req, res, 'NOT_FOUND', { message: 'No such token.' });
      audit('token.revoked', req, {
        username: session.auth.username,
        userId: session.auth.userId,
        token: id,
      });
      if (isForm(req)) return seeOther(res, '/auth/tokens?revoked=1');
      res.status(204).end();
    },

    /** POST /auth/tokens/revoke-all (form or JSON). */
    async revokeAll(req: Request, res: Response) {
      const session = me(req);
      const revoked = await deps.accessTokens.revokeAll(session.auth.userId);
      audit('token.revoked_all', req, {
        username: session.auth.username,
        userId: session.auth.userId,
        revoked,
      });
      if (isForm(req)) return seeOther(res, `/auth/tokens?revoked=${revoked}`);
      res.json({ revoked });
    },
  };
}
