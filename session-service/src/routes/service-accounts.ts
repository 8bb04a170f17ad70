import type { Request, Response } from 'express';
import { GatehouseError } from '../../../common/src/errors.js';
import { sendError } from '../../../common/src/http.js';
import type { Logger } from '../../../common/src/logger.js';
import type { AccessTokens } from '../domain/access-tokens.js';
import type { ExternalUsers } from '../domain/external-users.js';
import type { ServiceAccount, ServiceAccounts } from '../domain/service-accounts.js';
import { parseTokenRequest } from '../domain/token-requests.js';
import type { UsersRepository } from '../domain/users.js';
import { bodyOf } from './code-check.js';
import { tokenAudit, tokenView } from './tokens.js';

export interface ServiceAccountsDeps {
  serviceAccounts: ServiceAccounts;
  accessTokens: AccessTokens;
  /** The users file alone, and the identity sources' users: a service account's name is neither's. */
  fileUsers: UsersRepository;
  externalUsers: ExternalUsers;
  /** TOKEN_MAX_DAYS. */
  maxDays: number;
  /** Publish `changed` for these token ids: gateways drop what they cached for them. */
  publishChanged: (ids: readonly string[]) => Promise<unknown>;
  audit: Logger;
  now: () => number;
}

export const serviceAccountView = (account: ServiceAccount) => ({
  id: account.id,
  name: account.name,
  groups: account.groups,
  description: account.description,
  disabled: account.disabled,
  createdAt: new Date(account.createdAt).toISOString(),
});

const groupsOf = (value: unknown, required: boolean): string[] | undefined => {
  if (value === undefined && !required) return undefined;
  if (value === undefined) return [];
  if (Array.isArray(value) && value.every((g) => typeof g === 'string')) return value as string[];
  throw new GatehouseError('BAD_REQUEST', { message: 'groups must be a list of group names.' });
};

/**
 * The admin API of service accounts (`/admin/service-accounts`, ADMIN_TOKEN: requireAdmin in
 * front): make, list, read, change (groups, disabled), remove, and their tokens (make one, list,
 * revoke one). Disabling or removing an account ends its tokens at once (published on the
 * revocation channel, so every gateway drops them from its cache); changing its groups publishes
 * its tokens as changed, so gateways ask again at once.
 */
export function createServiceAccountHandlers(deps: ServiceAccountsDeps) {
  const audit = (event: string, req: Request, extra: Record<string, unknown>) =>
    deps.audit.info({ event, ip: req.ip, requestId: req.id, ...extra }, event);
  /** One username across every source: the users file's, an identity source's, or ours. */
  const taken = async (name: string) =>
    (await deps.fileUsers.findByUsername(name)) !== null ||
    (await deps.externalUsers.idOfUsername(name)) !== null;

  async function accountOf(req: Request, res: Response): Promise<ServiceAccount | null> {
    const account = await deps.serviceAccounts.get(String(req.params.name ?? ''));
    if (!account) sendError(req, res, 'USER_NOT_FOUND', { message: 'No such service account.' });
    return account;
  }

  return {
    /** POST /admin/service-accounts { name, groups, description }. */
    async create(req: Request, res: Response) {
      const body = bodyOf(req);
      if (typeof body.name !== 'string')
        return sendError(req, res, 'BAD_REQUEST', { message: 'name is required.' });
      if (body.description !== undefined && typeof body.description !== 'string')
        return sendError(req, res, 'BAD_REQUEST', { message: 'description must be text.' });
      const account = await deps.serviceAccounts.create(
        {
          name: body.name,
          groups: groupsOf(body.groups, true) ?? [],
          ...(typeof body.description === 'string' ? { description: body.description } : {}),
        },
        taken,
      );
      audit('service_account.created', req, {
        username: account.name,
        userId: account.id,
        groups: account.groups,
      });
      res.status(201).json(serviceAccountView(account));
    },

    /** GET /admin/service-accounts. */
    async list(_req: Request, res: Response) {
      const accounts = await deps.serviceAccounts.list();
      res.json({ serviceAccounts: accounts.map(serviceAccountView) });
    },

    /** GET /admin/service-accounts/:name. */
    async show(req: Request, res: Response) {
      const account = await accountOf(req, res);
      if (account) res.json(serviceAccountView(account));
    },

    /** PATCH /admin/service-accounts/:name { groups?, disabled? }: disabling ends its tokens. */
    async update(req: Request, res: Response) {
      const body = bodyOf(req);
      if (body.disabled !== undefined && typeof body.disabled !== 'boolean')
        return sendError(req, res, 'BAD_REQUEST', { message: 'disabled must be true or false.' });
      const groups = groupsOf(body.groups, false);
      const current = await accountOf(req, res);
      if (!current) return;
      const account = await deps.serviceAccounts.update(current.name, {
        ...(groups ? { groups } : {}),
        ...(typeof body.disabled === 'boolean' ? { disabled: body.disabled } : {}),
      });
      if (!account)
        return sendError(req, res, 'USER_NOT_FOUND', { message: 'No such service account.' });
      const revoked = account.disabled ? await deps.accessTokens.revokeAll(account.id) : 0;
      // New groups reach every gateway at once, not after its cache's lifetime: a group taken
      // away must stop opening routes now, as a disabled account does.
      const regrouped = [...account.groups].sort().join() !== [...current.groups].sort().join();
      if (regrouped && !account.disabled)
        await deps.publishChanged((await deps.accessTokens.list(account.id)).map((t) => t.id));
      audit('service_account.updated', req, {
        username: account.name,
        userId: account.id,
        groups: account.groups,
        disabled: account.disabled,
        ...(account.disabled ? { tokensRevoked: revoked } : {}),
      });
      res.json(serviceAccountView(account));
    },

    /** DELETE /admin/service-accounts/:name: its tokens end with it. */
    async remove(req: Request, res: Response) {
      const account = await accountOf(req, res);
      if (!account) return;
      const revoked = await deps.accessTokens.revokeAll(account.id);
      await deps.serviceAccounts.remove(account.name);
      audit('service_account.removed', req, {
        username: account.name,
        userId: account.id,
        tokensRevoked: revoked,
      });
      res.status(204).end();
    },

    /** POST /admin/service-accounts/:name/tokens { name, expiresInDays, scope? }: shown once. */
    async createToken(req: Request, res: Response) {
      const account = await accountOf(req, res);
      if (!account) return;
      if (account.disabled)
        return sendError(req, res, 'BAD_REQUEST', {
          message: 'The service account is disabled: enable it first.',
        });
      const request = parseTokenRequest(bodyOf(req), {
        maxDays: deps.maxDays,
        ownerGroups: account.groups,
        now: deps.now(),
      });
      const { token, record } = await deps.accessTokens.create({
        kind: 'service',
        ownerId: account.id,
        ...request,
      });
      audit('token.created', req, {
        username: account.name,
        userId: account.id,
        by: 'admin',
        ...tokenAudit(record),
      });
      res.status(201).json({ token, ...tokenView(record) });
    },

    /** GET /admin/service-accounts/:name/tokens. */
    async listTokens(req: Request, res: Response) {
      const account = await accountOf(req, res);
      if (!account) return;
      const tokens = await deps.accessTokens.list(account.id);
      res.json({ tokens: tokens.map(tokenView) });
    },

    /** DELETE /admin/service-accounts/:name/tokens/:id. */
    async revokeToken(req: Request, res: Response) {
      const account = await accountOf(req, res);
      if (!account) return;
      const id = String(req.params.id ?? '');
      if (!(await deps.accessTokens.revoke(account.id, id)))
        return sendError(req, res, 'NOT_FOUND', { message: 'No such token.' });
      audit('token.revoked', req, {
        username: account.name,
        userId: account.id,
        by: 'admin',
        token: id,
      });
      res.status(204).end();
    },
  };
}
