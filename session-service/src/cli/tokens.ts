import type { TokenKind, TokenRecord } from '../domain/access-tokens.js';
import type { ServiceAccount } from '../domain/service-accounts.js';
import { parseTokenRequest } from '../domain/token-requests.js';
import { usernameKey } from '../domain/usernames.js';
import { parseGroupList, withId } from '../domain/users.js';
import { type Invocation, type OptionName, refuseOptions, type Settings } from './args.js';
import type { Command } from './commands.js';
import { CliError, EXIT_FAILED, EXIT_OK } from './errors.js';
import { complain, quote, say } from './print.js';
import { type Stores, withStores } from './redis-stores.js';
import { loadUsers } from './users-file.js';

/** Exactly `count` arguments after the subcommand. */
function argsOf(invocation: Invocation, count: number, usage: string): string[] {
  const args = invocation.positionals.slice(1);
  if (args.length !== count) throw new CliError(`usage: ${usage} (run with --help for more)`);
  return args;
}

function groupsOption(value: string | undefined): string[] {
  const parsed = parseGroupList(value ?? '');
  if (!parsed.ok) throw new CliError(parsed.message);
  return parsed.groups;
}

const printable = (value: string) =>
  value.replace(
    /[\p{Cc}\p{Cf}]/gu,
    (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`,
  );

const accountLine = (a: ServiceAccount) =>
  [
    a.name,
    `groups=${a.groups.length > 0 ? a.groups.join(',') : '-'}`,
    a.disabled ? 'disabled' : 'enabled',
    a.description || '-',
  ]
    .map(printable)
    .join('\t');

const iso = (ms: number | undefined) => (ms === undefined ? '-' : new Date(ms).toISOString());

function scopeText(record: TokenRecord): string {
  const { routes, groups, readOnly } = record.scope;
  const parts = [
    ...(routes ? [`routes=${routes.join(',')}`] : []),
    ...(groups ? [`groups=${groups.join(',') || '-'}`] : []),
    ...(readOnly ? ['read-only'] : []),
  ];
  return parts.length > 0 ? parts.join(' ') : 'scope=all';
}

const tokenLine = (t: TokenRecord) =>
  [
    t.id,
    t.name,
    t.kind,
    `created=${iso(t.createdAt)}`,
    `expires=${iso(t.expiresAt)}`,
    `last-used=${iso(t.lastUsedAt)}${t.lastUsedFrom ? ` from ${t.lastUsedFrom}` : ''}`,
    scopeText(t),
  ]
    .map(printable)
    .join('\t');

/** A token's owner: a users-file user, an identity source's user, or a service account. */
interface Owner {
  id: string;
  username: string;
  groups: string[];
  kind: TokenKind;
  disabled: boolean;
}

async function ownerOf(settings: Settings, stores: Stores, name: string): Promise<Owner> {
  const key = usernameKey(name);
  const local = (await loadUsers(settings)).find((u) => usernameKey(u.username) === key);
  if (local) {
    const user = withId(local);
    return { ...user, kind: 'personal', disabled: user.disabled ?? false };
  }
  const account = await stores.serviceAccounts.get(name);
  if (account) return { ...account, username: account.name, kind: 'service' };
  const externalId = await stores.externalUsers.idOfUsername(name);
  const external = externalId ? await stores.externalUsers.get(externalId) : null;
  if (external)
    return {
      id: external.id,
      username: external.username,
      groups: external.groups,
      kind: 'personal',
      disabled: false,
    };
  throw new CliError(`no user or service account named ${quote(name)}`);
}

const serviceAccountAdd: Command = async (settings, invocation) => {
  refuseOptions(invocation, ['groups', 'description'], 'service-account add');
  const [name] = argsOf(
    invocation,
    1,
    'service-account add <name> [--groups a,b] [--description text]',
  );
  const groups = groupsOption(invocation.groups);
  const users = await loadUsers(settings);
  // No key needed: an identity source's name is found by its digest, nothing is opened.
  const account = await withStores(settings, 'add the service account', { keys: false }, (s) =>
    s.serviceAccounts.create(
      {
        name: name as string,
        groups,
        ...(invocation.description !== undefined ? { description: invocation.description } : {}),
      },
      async (canonical) =>
        users.some((u) => usernameKey(u.username) === usernameKey(canonical)) ||
        (await s.externalUsers.idOfUsername(canonical)) !== null,
    ),
  );
  say(`added the service account ${quote(account.name)} (id ${account.id})`);
  return EXIT_OK;
};

const serviceAccountList: Command = async (settings, invocation) => {
  refuseOptions(invocation, ['json'], 'service-account list');
  argsOf(invocation, 0, 'service-account list [--json]');
  const accounts = await withStores(settings, 'list the service accounts', { keys: false }, (s) =>
    s.serviceAccounts.list(),
  );
  if (invocation.json) {
    say(
      JSON.stringify(
        accounts.map((a) => ({ ...a, createdAt: iso(a.createdAt) })),
        null,
        2,
      ),
    );
    return EXIT_OK;
  }
  if (accounts.length === 0) complain('no service accounts');
  for (const account of accounts) say(accountLine(account));
  return EXIT_OK;
};

/** disable, enable, remove: the first two change the record; disable and remove end its tokens. */
const serviceAccountChange =
  (change: 'disable' | 'enable' | 'remove'): Command =>
  async (settings, invocation) => {
    refuseOptions(invocation, [], `service-account ${change}`);
    const [name] = argsOf(invocation, 1, `service-account ${change} <name>`);
    const result = await withStores(
      settings,
      `${change} the service account`,
      { keys: false },
      async (s) => {
        const account = await s.serviceAccounts.get(name as string);
        if (!account) throw new CliError(`no service account named ${quote(name as string)}`);
        if (change === 'enable') {
          await s.serviceAccounts.update(account.name, { disabled: false });
          return { account, ended: 0 };
        }
        if (change === 'disable') await s.serviceAccounts.update(account.name, { disabled: true });
        const ended = await s.revoker.revokeAll(account.id);
        if (change === 'remove') await s.serviceAccounts.remove(account.name);
        return { account, ended };
      },
    );
    const done = { disable: 'disabled', enable: 'enabled', remove: 'removed' }[change];
    say(`${done} the service account ${quote(result.account.name)}`);
    if (change !== 'enable')
      say(
        `ended ${result.ended} access token${result.ended === 1 ? '' : 's'} of ${quote(result.account.name)}`,
      );
    return EXIT_OK;
  };

const tokenCreate: Command = async (settings, invocation) => {
  const options: OptionName[] = ['name', 'expires-days', 'routes', 'groups', 'read-only'];
  refuseOptions(invocation, options, 'token create');
  const usage =
    'token create <owner> --name <name> --expires-days N [--routes a,b] [--groups a,b] [--read-only]';
  const [ownerName] = argsOf(invocation, 1, usage);
  if (invocation.name === undefined || invocation.expiresDays === undefined)
    throw new CliError(`usage: ${usage} (--name and --expires-days are required)`);
  const maxDays = settings.tokenMaxDays();
  const made = await withStores(settings, 'make the token', { keys: true }, async (s) => {
    const owner = await ownerOf(settings, s, ownerName as string);
    if (owner.disabled) throw new CliError(`${quote(owner.username)} is disabled: enable it first`);
    const request = parseTokenRequest(
      {
        name: invocation.name,
        expiresInDays: invocation.expiresDays,
        ...(invocation.routes !== undefined ? { routes: invocation.routes } : {}),
        ...(invocation.groups !== undefined ? { groups: invocation.groups } : {}),
        readOnly: invocation.readOnly,
      },
      { maxDays, ownerGroups: owner.groups, now: Date.now() },
    );
    const { token, record } = await s.tokens.create({
      kind: owner.kind,
      ownerId: owner.id,
      ...request,
    });
    return { owner, token, record };
  });
  complain(
    `made the ${made.record.kind === 'service' ? 'service account' : 'personal access'} token ${quote(made.record.name)} of ${quote(made.owner.username)} (id ${made.record.id}), expiring ${iso(made.record.expiresAt)}; ${scopeText(made.record)}. It is shown only now:`,
  );
  say(made.token);
  return EXIT_OK;
};

const tokenList: Command = async (settings, invocation) => {
  refuseOptions(invocation, ['json'], 'token list');
  const [ownerName] = argsOf(invocation, 1, 'token list <owner> [--json]');
  const { owner, tokens } = await withStores(
    settings,
    'list the tokens',
    { keys: true },
    async (s) => {
      const owner = await ownerOf(settings, s, ownerName as string);
      return { owner, tokens: await s.tokens.list(owner.id) };
    },
  );
  if (invocation.json) {
    const out = tokens.map((t) => ({
      ...t,
      createdAt: iso(t.createdAt),
      expiresAt: iso(t.expiresAt),
      lastUsedAt: t.lastUsedAt === undefined ? null : iso(t.lastUsedAt),
    }));
    say(JSON.stringify(out, null, 2));
    return EXIT_OK;
  }
  if (tokens.length === 0) complain(`${quote(owner.username)} has no access tokens`);
  for (const token of tokens) say(tokenLine(token));
  return EXIT_OK;
};

const tokenRevoke: Command = async (settings, invocation) => {
  refuseOptions(invocation, [], 'token revoke');
  const [ownerName, id] = argsOf(invocation, 2, 'token revoke <owner> <id>');
  const owner = await withStores(settings, 'revoke the token', { keys: true }, async (s) => {
    const owner = await ownerOf(settings, s, ownerName as string);
    if (!(await s.tokens.revoke(owner.id, id as string)))
      throw new CliError(`${quote(owner.username)} has no token ${quote(id as string)}`);
    return owner;
  });
  say(`revoked the token ${id} of ${quote(owner.username)}`);
  return EXIT_OK;
};

/** A command of subcommands: `service-account add …`, `token create …`. */
const withSubcommands =
  (name: string, subcommands: Record<string, Command>): Command =>
  (settings, invocation) => {
    const sub = invocation.positionals[0];
    const command = sub === undefined ? undefined : subcommands[sub];
    if (!command) {
      complain(
        `${name} needs one of: ${Object.keys(subcommands).join(', ')}${sub === undefined ? '' : ` (not ${quote(sub)})`}; run with --help for usage`,
      );
      return Promise.resolve(EXIT_FAILED);
    }
    return command(settings, invocation);
  };

export const TOKEN_COMMANDS: Readonly<Record<string, Command>> = {
  'service-account': withSubcommands('service-account', {
    add: serviceAccountAdd,
    list: serviceAccountList,
    disable: serviceAccountChange('disable'),
    enable: serviceAccountChange('enable'),
    remove: serviceAccountChange('remove'),
  }),
  token: withSubcommands('token', { create: tokenCreate, list: tokenList, revoke: tokenRevoke }),
};
