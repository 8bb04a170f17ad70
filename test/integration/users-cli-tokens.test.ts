/**
 * `npm run users -- service-account …` and `… token …` as real processes (issue 17), with a
 * session-service on the same Redis and users file validating what they make: a token printed
 * once on stdout and nothing else there, its scope, TOKEN_MAX_DAYS, revocation; and the users
 * commands that end a user's tokens (disable, passwd, remove), published on the revocation
 * channel so gateways drop them at once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOKEN_PATTERN } from '../../session-service/src/domain/access-tokens.js';
import { TEST_ENCRYPTION_KEY } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { buildSessionService, type SessionServiceApp } from '../helpers/session-service.js';
import { writeTestUsers } from '../helpers/users.js';
import { runUsersCli } from '../helpers/users-cli.js';

/** Each run is a tsx process: seconds apiece on a busy machine. */
const TEST_TIMEOUT_MS = 240_000;

let redis: RedisServer;
let dir: string;
let usersFile: string;
let service: SessionServiceApp;

beforeAll(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-cli-tokens-'));
  usersFile = join(dir, 'users.json');
  await writeTestUsers(
    [
      { username: 'alice', password: 'an old password', groups: ['dev', 'ops'] },
      { username: 'bob', password: 'an old password', groups: ['dev'] },
      { username: 'carol', password: 'an old password' },
    ],
    usersFile,
  );
  service = await buildSessionService({ redisUrl: redis.url, usersFile });
});

afterAll(async () => {
  await service?.close();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function run(
  args: string[],
  options: { input?: string; env?: Record<string, string | undefined> } = {},
) {
  return runUsersCli(args, {
    env: {
      USERS_FILE: usersFile,
      REDIS_URL: redis.url,
      REDIS_PREFIX: 'gh:',
      SESSION_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY,
      TOKEN_MAX_DAYS: '30',
      ...options.env,
    },
    ...(options.input === undefined ? {} : { input: options.input }),
  });
}

const validate = (token: string) =>
  request(service.app).get('/auth/validate').set('authorization', `Bearer ${token}`);

/** `token create …`: stdout is the token alone; its id is said on stderr. */
async function mint(args: string[]) {
  const result = await run(['token', 'create', ...args]);
  expect(result.code, result.stderr).toBe(0);
  const token = result.stdout.trim();
  expect(token).toMatch(TOKEN_PATTERN);
  expect(result.stderr).not.toContain(token);
  const id = /\(id ([A-Za-z0-9_-]+)\)/.exec(result.stderr)?.[1] ?? '';
  expect(id).not.toBe('');
  return { token, id };
}

async function listenToRevocations() {
  const subscriber = redis.client.duplicate();
  await subscriber.connect();
  const ids: string[] = [];
  await subscriber.subscribe('gh:revocations', (message) => {
    const parsed = JSON.parse(message) as { type: string; sids?: string[] };
    if (parsed.type === 'revoke') ids.push(...(parsed.sids ?? []));
  });
  return { ids, close: () => subscriber.close() };
}

describe('users service-account and token', { timeout: TEST_TIMEOUT_MS }, () => {
  it('adds a service account, makes it a scoped token (printed once), lists and revokes it', async () => {
    const added = await run([
      'service-account',
      'add',
      'ci-runner',
      '--groups',
      'deploy,dev',
      '--description',
      'CI runner',
    ]);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toContain('added the service account "ci-runner" (id svc:ci-runner)');
    const listed = await run(['service-account', 'list']);
    expect(listed.stdout).toContain('ci-runner\tgroups=deploy,dev\tenabled\tCI runner');

    // Names held elsewhere are refused: a users-file user, the account itself.
    const taken = await run(['service-account', 'add', 'alice']);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toContain('taken');

    const { token, id } = await mint([
      'ci-runner',
      '--name',
      'deploy job',
      '--expires-days',
      '7',
      '--groups',
      'deploy',
      '--routes',
      'api',
    ]);
    expect(token.startsWith('gatehouse_sat_')).toBe(true);
    const ok = await validate(token);
    expect(ok.status).toBe(200);
    expect(ok.body.user).toMatchObject({ username: 'ci-runner', groups: ['deploy'] });
    expect(ok.body.token).toMatchObject({
      id,
      kind: 'service',
      scope: { routes: ['api'], groups: ['deploy'] },
    });

    const list = await run(['token', 'list', 'ci-runner']);
    expect(list.stdout).toContain(id);
    expect(list.stdout).toContain('deploy job');
    expect(list.stdout).not.toContain(token);

    // A group the account lacks: refused, nothing printed (TOKEN_MAX_DAYS: the next test).
    for (const args of [['--name', 'x', '--expires-days', '7', '--groups', 'ops']]) {
      const refused = await run(['token', 'create', 'ci-runner', ...args]);
      expect(refused.code).toBe(1);
      expect(refused.stdout).toBe('');
    }

    const revoked = await run(['token', 'revoke', 'ci-runner', id]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect((await validate(token)).status).toBe(401);
  });

  it('service-account disable ends its tokens (published), enable allows new ones, remove ends them too', async () => {
    expect((await run(['service-account', 'add', 'nightly', '--groups', 'ops'])).code).toBe(0);
    const first = await mint(['nightly', '--name', 'a', '--expires-days', '1']);
    const heard = await listenToRevocations();
    try {
      const disabled = await run(['service-account', 'disable', 'nightly']);
      expect(disabled.code, disabled.stderr).toBe(0);
      expect(disabled.stdout).toContain('ended 1 access token of "nightly"');
      expect((await validate(first.token)).status).toBe(401);
      await expect.poll(() => heard.ids).toContain(first.id);
      expect((await run(['service-account', 'enable', 'nightly'])).code).toBe(0);
      const second = await mint(['nightly', '--name', 'c', '--expires-days', '1']);
      expect((await validate(second.token)).status).toBe(200);
      const removed = await run(['service-account', 'remove', 'nightly']);
      expect(removed.code, removed.stderr).toBe(0);
      expect((await validate(second.token)).status).toBe(401);
      await expect.poll(() => heard.ids).toContain(second.id);
    } finally {
      await heard.close();
    }
  });

  it('users add refuses a service account’s name; added while Redis is unreachable, the name is the file’s and the account’s tokens end', async () => {
    expect((await run(['service-account', 'add', 'reporter', '--groups', 'ops'])).code).toBe(0);
    const { token } = await mint(['reporter', '--name', 'r', '--expires-days', '1']);
    for (const spelling of ['reporter', 'Reporter', 'ＲＥＰＯＲＴＥＲ']) {
      const refused = await run(['add', spelling], { input: 'a long enough password\n' });
      expect(refused.code, spelling).toBe(1);
      expect(refused.stderr).toContain('"reporter" is taken: a service account has that name');
    }
    expect((await validate(token)).status).toBe(200);

    // Redis unreachable: `users add` cannot look, says so, and adds; from then on the name is
    // the users-file user's, and the service account's token is nobody's (never two accounts
    // behind one X-User).
    const blind = await run(['add', 'reporter'], {
      input: 'a long enough password\n',
      env: { REDIS_URL: 'redis://127.0.0.1:1' },
    });
    expect(blind.code, blind.stderr).toBe(0);
    expect(blind.stderr).toContain('Redis unreachable');
    expect(blind.stderr).toContain('stops working once this user is added');
    // (polled slowly: each refusal counts towards the address's token-failure throttle)
    await expect
      .poll(async () => (await validate(token)).status, { timeout: 10_000, interval: 500 })
      .toBe(401);
    // The token is ended for good; once the file lets go of the name, the account is itself again.
    expect((await run(['remove', 'reporter'])).code).toBe(0);
    const again = await mint(['reporter', '--name', 'r2', '--expires-days', '1']);
    expect(again.token.startsWith('gatehouse_sat_')).toBe(true);
    const ok = await validate(again.token);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body.user).toMatchObject({ username: 'reporter' });
    expect((await validate(token)).status).toBe(401);
  });

  it('makes a personal token for a user; disable and passwd end the user’s tokens, published', async () => {
    const tooLong = await run(['token', 'create', 'alice', '--name', 'x', '--expires-days', '31']);
    expect(tooLong.code).toBe(1);
    expect(tooLong.stderr).toContain('from 1 to 30');
    const alices = await mint(['alice', '--name', 'admin-made', '--expires-days', '5']);
    expect(alices.token.startsWith('gatehouse_pat_')).toBe(true);
    expect((await validate(alices.token)).body.user).toMatchObject({
      username: 'alice',
      groups: ['dev', 'ops'],
    });
    const bobs = await mint(['bob', '--name', 'script', '--expires-days', '5', '--read-only']);
    expect((await validate(bobs.token)).body.token.scope).toEqual({ readOnly: true });

    const heard = await listenToRevocations();
    try {
      const disabled = await run(['disable', 'alice']);
      expect(disabled.code, disabled.stderr).toBe(0);
      expect(disabled.stdout).toContain('ended 1 access token of "alice"');
      expect((await validate(alices.token)).status).toBe(401);
      await expect.poll(() => heard.ids).toContain(alices.id);

      const changed = await run(['passwd', 'bob'], { input: 'a brand new password\n' });
      expect(changed.code, changed.stderr).toBe(0);
      expect(changed.stdout).toContain('ended 1 access token of "bob"');
      expect((await validate(bobs.token)).status).toBe(401);
      await expect.poll(() => heard.ids).toContain(bobs.id);
    } finally {
      await heard.close();
    }
    // A disabled user gets no new token.
    const refused = await run(['token', 'create', 'alice', '--name', 'y', '--expires-days', '1']);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
  });

  it('needs the session-service’s key to make or read tokens, and says so', async () => {
    const result = await run(['token', 'create', 'carol', '--name', 'x', '--expires-days', '1'], {
      env: {
        SESSION_ENCRYPTION_KEY: undefined,
        DEV_ENCRYPTION_KEY_FILE: join(dir, 'no-such-key'),
      },
    });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('SESSION_ENCRYPTION_KEY');
    const unknown = await run(['token', 'list', 'nobody']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no user or service account named "nobody"');
  });
});
