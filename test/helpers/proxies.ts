import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePort, waitFor } from './ports.js';
import { ROOT } from './processes.js';

/** examples/caddy/Caddyfile and examples/haproxy/haproxy.cfg, the files the docs quote. */
export const CADDYFILE = join(ROOT, 'examples', 'caddy', 'Caddyfile');
export const HAPROXY_CFG = join(ROOT, 'examples', 'haproxy', 'haproxy.cfg');

/**
 * A proxy binary: $<envVar>, then PATH, then the usual sbin and bin directories (haproxy lives in
 * /usr/sbin, often not on PATH). Throws when there is none: these tests never skip.
 */
export function resolveBinary(
  name: 'caddy' | 'haproxy',
  envVar: string,
  fromEnv: string | undefined,
): string {
  const candidates = [
    fromEnv,
    ...(process.env.PATH ?? '').split(delimiter).map((dir) => (dir ? join(dir, name) : '')),
    `/usr/sbin/${name}`,
    `/usr/bin/${name}`,
    `/usr/local/sbin/${name}`,
    `/usr/local/bin/${name}`,
  ];
  for (const candidate of candidates) {
    if (!candidate) continue;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  throw new Error(`${name} not found (apt-get install ${name}, or set ${envVar} to its path)`);
}

export const resolveCaddy = () => resolveBinary('caddy', 'CADDY_BIN', process.env.CADDY_BIN);
export const resolveHaproxy = () =>
  resolveBinary('haproxy', 'HAPROXY_BIN', process.env.HAPROXY_BIN);

export interface RunningProxy {
  /** https://127.0.0.1:<port> */
  url: string;
  port: number;
  /** The certificate it serves (PEM): pass it as `ca`. */
  ca: string;
  /** What it printed, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A fresh self-signed certificate for localhost and 127.0.0.1 (scripts/dev-cert.sh). */
export function devCertificate(dir: string): { cert: string; key: string; ca: string } {
  execFileSync('sh', [join(ROOT, 'scripts', 'dev-cert.sh'), dir], { stdio: 'pipe' });
  const cert = join(dir, 'cert.pem');
  return { cert, key: join(dir, 'key.pem'), ca: readFileSync(cert, 'utf8') };
}

/**
 * Runs `bin args` in the foreground with exactly `env` (plus PATH), waits until `port` accepts
 * connections (10 s), and answers how to stop it (SIGTERM, SIGKILL after 5 s; `dir` removed).
 */
async function runProxy(options: {
  name: string;
  bin: string;
  args: string[];
  env: Record<string, string>;
  port: number;
  dir: string;
  ca: string;
}): Promise<RunningProxy> {
  let printed = '';
  const child: ChildProcess = spawn(options.bin, options.args, {
    env: { PATH: process.env.PATH ?? '', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d: Buffer) => {
    printed += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    printed += d.toString();
  });
  let failed: Error | undefined;
  child.once('error', (err) => {
    failed = err;
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      });
    }
    rmSync(options.dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      async () => {
        if (failed) throw failed;
        if (child.exitCode !== null)
          throw new Error(`${options.name} exited with ${child.exitCode}`);
        return portAnswers(options.port);
      },
      10_000,
      `${options.name} to listen on ${options.port}`,
    );
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n${printed}`);
  }
  return {
    url: `https://127.0.0.1:${options.port}`,
    port: options.port,
    ca: options.ca,
    output: () => printed,
    stop,
  };
}

/** What both recipes are told about the session-service and the app. */
export interface RecipeVars {
  /** host:port */
  sessionService: string;
  /** host:port */
  protectedUpstream: string;
  audience: string;
  internalToken: string;
}

/** Caddy running examples/caddy/Caddyfile as it is, its placeholders filled from the environment. */
export async function startCaddy(vars: RecipeVars): Promise<RunningProxy> {
  const bin = resolveCaddy();
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-caddy-'));
  const tls = devCertificate(join(dir, 'certs'));
  const port = await freePort();
  return runProxy({
    name: 'caddy',
    bin,
    args: ['run', '--config', CADDYFILE, '--adapter', 'caddyfile'],
    env: {
      // Caddy keeps an autosave of its configuration (the token included) and its storage here.
      HOME: dir,
      XDG_CONFIG_HOME: join(dir, 'config'),
      XDG_DATA_HOME: join(dir, 'data'),
      GATEHOUSE_BIND: '127.0.0.1',
      GATEHOUSE_HTTPS_PORT: String(port),
      TLS_CERT: tls.cert,
      TLS_KEY: tls.key,
      SESSION_SERVICE_UPSTREAM: vars.sessionService,
      PROTECTED_UPSTREAM: vars.protectedUpstream,
      IDENTITY_AUDIENCE: vars.audience,
      INTERNAL_TOKEN: vars.internalToken,
    },
    port,
    dir,
    ca: tls.ca,
  });
}

/** HAProxy running examples/haproxy/haproxy.cfg (and gatehouse.lua next to it) as they are. */
export async function startHaproxy(vars: RecipeVars): Promise<RunningProxy> {
  const bin = resolveHaproxy();
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-haproxy-'));
  const tls = devCertificate(join(dir, 'certs'));
  // HAProxy wants the certificate and its key in one file.
  const pem = join(dir, 'certs', 'haproxy.pem');
  writeFileSync(
    pem,
    `${readFileSync(tls.cert, 'utf8').trim()}\n${readFileSync(tls.key, 'utf8').trim()}\n`,
    { mode: 0o600 },
  );
  const port = await freePort();
  return runProxy({
    name: 'haproxy',
    bin,
    // -db: foreground, no daemon
    args: ['-db', '-f', HAPROXY_CFG],
    env: {
      GATEHOUSE_BIND: '127.0.0.1',
      GATEHOUSE_HTTPS_PORT: String(port),
      TLS_PEM: pem,
      SESSION_SERVICE_UPSTREAM: vars.sessionService,
      SESSION_SERVICE_URL: `http://${vars.sessionService}`,
      PROTECTED_UPSTREAM: vars.protectedUpstream,
      IDENTITY_AUDIENCE: vars.audience,
      INTERNAL_TOKEN: vars.internalToken,
      SESSION_COOKIE_NAME: 'gatehouse',
    },
    port,
    dir,
    ca: tls.ca,
  });
}
