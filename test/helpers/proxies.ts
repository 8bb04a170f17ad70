import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { ROOT } from './processes.js';
import { devCertificate, resolveBinary, runProxyProcess, untilListening } from './proxy-process.js';

/** examples/caddy/Caddyfile and examples/haproxy/haproxy.cfg, the files the docs quote. */
export const CADDYFILE = join(ROOT, 'examples', 'caddy', 'Caddyfile');
export const HAPROXY_CFG = join(ROOT, 'examples', 'haproxy', 'haproxy.cfg');

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

/**
 * Runs `bin args` in the foreground with exactly `env` (plus PATH) and waits until `port` accepts
 * connections; stop() ends it and removes `dir`.
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
  const proxy = runProxyProcess(options);
  await untilListening(options.name, proxy, [options.port]);
  return {
    url: `https://127.0.0.1:${options.port}`,
    port: options.port,
    ca: options.ca,
    output: proxy.output,
    stop: proxy.stop,
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
