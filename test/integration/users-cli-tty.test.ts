import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verify } from '@node-rs/argon2';
import { afterAll, describe, expect, it } from 'vitest';
import type { StoredUser } from '../../session-service/src/domain/users.js';
import { reservedDeadPort } from '../helpers/ports.js';

/**
 * The CLI on a real terminal: util-linux `script` runs it on a pseudo-terminal (so stdin.isTTY),
 * and the test types into the terminal once a prompt shows, reading back all the terminal shows.
 */
const ROOT = new URL('../..', import.meta.url).pathname;
const CLI = 'session-service/src/cli/users.ts';
const PASSWORD = 'correct horse battery';
const HAS_SCRIPT = spawnSync('script', ['--version']).status === 0;
const dir = mkdtempSync(join(tmpdir(), 'gatehouse-users-tty-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Terminal {
  /** Resolves once the screen has shown `text` `times` times in all (a deadline fails the test). */
  shows(text: string, times?: number): Promise<void>;
  type(keys: string): void;
  exit: Promise<{ code: number | null; screen: string }>;
}

function onTerminal(args: string[], usersFile: string, redisUrl: string): Terminal {
  const command = ['node', '--import', 'tsx', CLI, ...args].join(' ');
  const child = spawn('script', ['-qec', command, '/dev/null'], {
    cwd: ROOT,
    env: { ...process.env, USERS_FILE: usersFile, REDIS_URL: redisUrl, TERM: 'dumb' },
    stdio: ['pipe', 'pipe', 'pipe'],
    timeout: 20_000,
  });
  let screen = '';
  const waiting = new Set<() => void>();
  child.stdout.on('data', (d: Buffer) => {
    screen += d.toString();
    for (const check of waiting) check();
  });
  child.stderr.on('data', (d: Buffer) => {
    screen += d.toString();
  });
  const exit = new Promise<{ code: number | null; screen: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, screen })),
  );
  return {
    shows: (text, times = 1) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (screen.split(text).length - 1 < times) return;
          waiting.delete(check);
          resolve();
        };
        waiting.add(check);
        check();
        void exit.then(() => {
          if (waiting.delete(check)) reject(new Error(`never showed ${text}: ${screen}`));
        });
      }),
    type: (keys) => child.stdin.write(keys),
    exit,
  };
}

const usersIn = (path: string) =>
  (JSON.parse(readFileSync(path, 'utf8')) as { users: StoredUser[] }).users;

describe.skipIf(!HAS_SCRIPT)('users add on a terminal', { timeout: 40_000 }, () => {
  it('asks twice without echoing and stores the hash', async () => {
    const file = join(dir, 'added.json');
    const tty = onTerminal(['add', 'alice'], file, `redis://127.0.0.1:${await reservedDeadPort()}`);
    await tty.shows('New password for "alice"');
    tty.type(`${PASSWORD}\r`);
    await tty.shows('Repeat the password');
    tty.type(`${PASSWORD}\r`);
    const { code, screen } = await tty.exit;
    expect(code).toBe(0);
    expect(screen).toContain('added "alice"');
    expect(screen).not.toContain('correct');
    const [user] = usersIn(file);
    expect(await verify(user?.passwordHash ?? '', PASSWORD)).toBe(true);
  });

  it('refuses a weak password before asking again, with exit code 1', async () => {
    const file = join(dir, 'weak.json');
    const tty = onTerminal(['add', 'dave'], file, `redis://127.0.0.1:${await reservedDeadPort()}`);
    await tty.shows('New password for "dave"');
    tty.type('seven77\r');
    const { code, screen } = await tty.exit;
    expect(code).toBe(1);
    expect(screen).toContain('password must be at least 8 characters');
    expect(screen).not.toContain('Repeat');
    expect(screen).not.toContain('seven77');
    expect(() => readFileSync(file)).toThrow();
  });

  it('refuses two different passwords with exit code 1 and writes nothing', async () => {
    const file = join(dir, 'mismatch.json');
    const tty = onTerminal(['add', 'bob'], file, `redis://127.0.0.1:${await reservedDeadPort()}`);
    await tty.shows('New password for "bob"');
    tty.type(`${PASSWORD}\r`);
    await tty.shows('Repeat the password');
    tty.type('another horse battery\r');
    const { code, screen } = await tty.exit;
    expect(code).toBe(1);
    expect(screen).toContain('the two passwords do not match');
    expect(() => readFileSync(file)).toThrow();
  });

  it('stops on Ctrl-C with exit code 130', async () => {
    const file = join(dir, 'cancelled.json');
    const tty = onTerminal(['add', 'carol'], file, `redis://127.0.0.1:${await reservedDeadPort()}`);
    await tty.shows('New password for "carol"');
    tty.type('half typed\u0003');
    const { code, screen } = await tty.exit;
    expect(code).toBe(130);
    expect(screen).toContain('cancelled');
    expect(() => readFileSync(file)).toThrow();
  });
});
