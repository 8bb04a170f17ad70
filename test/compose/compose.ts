/**
 * The docker-compose stack of the repository, driven the way a user drives it: a copy of the
 * working tree in a temporary directory (so the user's own .env and volumes are never touched),
 * `sh scripts/compose-env.sh`, `docker compose up`, `docker compose run ... users add`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT } from '../helpers/processes.js';

/** Why Docker cannot be used here, or undefined when an engine answers. */
export function dockerUnavailable(): string | undefined {
  const info = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  if (info.error) return `docker: ${info.error.message}`;
  if (info.status !== 0) return (info.stderr || info.stdout).trim().split('\n')[0];
  return undefined;
}

/**
 * The compose command this machine has: Compose v2 (`docker compose`) when the plugin answers,
 * else v1 (`docker-compose`, Debian's package). GATEHOUSE_COMPOSE chooses ("docker-compose").
 */
export function composeCommand(): string[] {
  const chosen = process.env.GATEHOUSE_COMPOSE;
  if (chosen) return chosen.split(' ');
  const v2 = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' });
  return v2.status === 0 ? ['docker', 'compose'] : ['docker-compose'];
}

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

export interface ComposeProject {
  dir: string;
  name: string;
  /** `<compose> -p <name> args...` in the project's directory. Never throws. */
  run(args: string[], options?: { input?: string; timeoutMs?: number }): Run;
  /** As run(), but throws with the output when the command fails. */
  ok(args: string[], options?: { input?: string; timeoutMs?: number }): Run;
  /** The ids of a service's containers. */
  containers(service: string): string[];
  /** Each container's health (docker inspect), by service. */
  health(): Record<string, string[]>;
  /** Containers, volumes and networks labelled with this project, as `docker` lists them. */
  leftovers(): string[];
  /** down -v and remove the directory; never throws. */
  destroy(): void;
}

/** The files of the working tree that git would commit (tracked, and untracked not ignored). */
function projectFiles(): string[] {
  const listed = execFileSync(
    'git',
    ['ls-files', '-z', '--cached', '--others', '--exclude-standard'],
    {
      cwd: ROOT,
      encoding: 'utf8',
    },
  );
  return listed.split('\0').filter((f) => f !== '');
}

/**
 * A copy of the repository in a new directory, under a project name of its own: the working tree
 * as it is, or the commit GATEHOUSE_COMPOSE_FROM names (e.g. HEAD, while the tree is mid-edit).
 */
export function copyProject(name: string): ComposeProject {
  const dir = join(mkdtempSync(join(tmpdir(), 'gatehouse-compose-')), name);
  const commit = process.env.GATEHOUSE_COMPOSE_FROM;
  if (commit) {
    mkdirSync(dir);
    execFileSync('sh', [
      '-c',
      `git -C "$0" archive --format=tar "$1" | tar -x -C "$2"`,
      ROOT,
      commit,
      dir,
    ]);
  }
  for (const file of commit ? [] : projectFiles()) {
    mkdirSync(join(dir, dirname(file)), { recursive: true });
    try {
      cpSync(join(ROOT, file), join(dir, file));
    } catch {
      // listed by git but deleted in the working tree
    }
  }
  const compose = composeCommand();
  const run: ComposeProject['run'] = (args, options = {}) => {
    const started = Date.now();
    const [bin = 'docker-compose', ...pre] = compose;
    const result = spawnSync(bin, [...pre, '-p', name, ...args], {
      cwd: dir,
      encoding: 'utf8',
      input: options.input,
      timeout: options.timeoutMs ?? 15 * 60_000,
      env: { ...process.env, DOCKER_BUILDKIT: process.env.DOCKER_BUILDKIT ?? '0' },
      maxBuffer: 64 * 1024 * 1024,
    });
    return {
      status: result.status,
      stdout: result.stdout ?? '',
      stderr: result.stderr ?? '',
      seconds: (Date.now() - started) / 1000,
    };
  };
  const docker = (args: string[]) =>
    execFileSync('docker', args, { encoding: 'utf8', timeout: 60_000 }).trim();
  const label = `label=com.docker.compose.project=${name}`;
  return {
    dir,
    name,
    run,
    ok(args, options) {
      const result = run(args, options);
      if (result.status !== 0) {
        throw new Error(
          `${compose.join(' ')} ${args.join(' ')} exited ${result.status}:\n${result.stdout}\n${result.stderr}`,
        );
      }
      return result;
    },
    containers(service) {
      const ids = docker([
        'ps',
        '-q',
        '--filter',
        label,
        '--filter',
        `label=com.docker.compose.service=${service}`,
      ]);
      return ids === '' ? [] : ids.split('\n');
    },
    health() {
      const ids = docker(['ps', '-aq', '--filter', label]);
      const byService: Record<string, string[]> = {};
      if (ids === '') return byService;
      const lines = docker([
        'inspect',
        '--format',
        '{{index .Config.Labels "com.docker.compose.service"}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}',
        ...ids.split('\n'),
      ]);
      for (const line of lines.split('\n')) {
        const [service = '', state = ''] = line.split(' ');
        byService[service] = [...(byService[service] ?? []), state];
      }
      return byService;
    },
    leftovers() {
      return [
        ...docker(['ps', '-aq', '--filter', label]).split('\n'),
        ...docker(['volume', 'ls', '-q', '--filter', label]).split('\n'),
        ...docker(['network', 'ls', '-q', '--filter', label]).split('\n'),
      ].filter((line) => line !== '');
    },
    destroy() {
      // down reads .env too: a scenario that failed without one still ends clean.
      if (!existsSync(join(dir, '.env'))) spawnSync('sh', ['scripts/compose-env.sh'], { cwd: dir });
      run(['down', '-v', '--remove-orphans', '--timeout', '5'], { timeoutMs: 120_000 });
      rmSync(dirname(dir), { recursive: true, force: true });
    },
  };
}

/** What `docker exec <id> node -e <script>` prints (the Gatehouse image has node). */
export function nodeIn(container: string, script: string): string {
  return execFileSync('docker', ['exec', container, 'node', '-e', script], {
    encoding: 'utf8',
    timeout: 30_000,
  }).trim();
}

/** A container's address on its first network. */
export function containerAddress(container: string): string {
  return execFileSync(
    'docker',
    ['inspect', '--format', '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}', container],
    { encoding: 'utf8' },
  )
    .trim()
    .split(' ')[0] as string;
}

/**
 * Poll `check` every `everyMs` until it returns true, or fail after `timeoutMs` with `what()`
 * (evaluated then, so it can describe the state reached). Docker commands are slow to ask:
 * test/helpers/ports.ts waitFor() polls every 25 ms, too often for them.
 */
export async function until(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: () => string,
  everyMs = 500,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what()}${lastError ? `: ${String(lastError)}` : ''}`,
  );
}
