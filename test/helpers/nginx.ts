import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  accessSync,
  chmodSync,
  constants,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import https from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { CookieJar } from './cookie-jar.js';
import { freePort, waitFor } from './ports.js';
import { ROOT, TEST_INTERNAL_TOKEN } from './processes.js';

export type NginxTemplate = 'edge' | 'auth-request';

export interface NginxServer {
  /** Where plain HTTP is accepted (127.0.0.1). */
  httpPort: number;
  /** Where TLS is accepted (127.0.0.1). */
  httpsPort: number;
  httpUrl: string;
  httpsUrl: string;
  /** The self-signed certificate nginx serves (PEM): pass it as `ca` to trust this nginx only. */
  ca: string;
  /** The temporary prefix directory (config, logs, certificate). */
  dir: string;
  /** The rendered server blocks. */
  config: string;
  /** What nginx printed plus its error log, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Replace every `${NAME}` with `vars[NAME]`; throw naming every placeholder left without a value. */
export function renderTemplate(text: string, vars: Record<string, string>): string {
  const missing = new Set<string>();
  const rendered = text.replace(PLACEHOLDER, (whole, name: string) => {
    const value = vars[name];
    if (value === undefined) {
      missing.add(name);
      return whole;
    }
    return value;
  });
  if (missing.size > 0) {
    throw new Error(
      `nginx template: no value for ${[...missing].map((n) => `\${${n}}`).join(', ')}`,
    );
  }
  return rendered;
}

/** The placeholders a template uses. */
export function templatePlaceholders(text: string): string[] {
  return [...new Set([...text.matchAll(PLACEHOLDER)].map((m) => m[1] ?? ''))].sort();
}

export function templatePath(template: NginxTemplate): string {
  return join(ROOT, 'nginx', 'templates', `${template}.conf.template`);
}

/** The nginx binary: $NGINX_BIN, then PATH, then the usual sbin directories (often not on PATH). */
export function resolveNginx(): string {
  const candidates = [
    process.env.NGINX_BIN,
    ...(process.env.PATH ?? '').split(delimiter).map((dir) => (dir ? join(dir, 'nginx') : '')),
    '/usr/sbin/nginx',
    '/usr/local/sbin/nginx',
    '/usr/local/nginx/sbin/nginx',
    '/opt/homebrew/bin/nginx',
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
  throw new Error('nginx not found (apt-get install nginx, or set NGINX_BIN to its path)');
}

function mimeTypesInclude(): string {
  try {
    accessSync('/etc/nginx/mime.types', constants.R_OK);
    return 'include /etc/nginx/mime.types;';
  } catch {
    return 'types { text/html html; text/css css; application/javascript js; }';
  }
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

/**
 * Renders nginx/templates/<template>.conf.template into a full nginx.conf under a temp prefix dir
 * and runs nginx in the foreground on free 127.0.0.1 ports with a fresh self-signed certificate
 * (scripts/dev-cert.sh). Defaults for NGINX_HTTP_PORT, NGINX_HTTPS_PORT, PUBLIC_HTTPS_PORT,
 * SERVER_NAME, TLS_CERT, TLS_KEY, INTERNAL_TOKEN (TEST_INTERNAL_TOKEN) and SESSION_COOKIE_NAME
 * (gatehouse); `vars` add the rest and may override them.
 */
/**
 * nginx in the foreground with the prefix `dir` and the configuration `conf`: what it printed
 * plus its error log (`output`), a spawn error (`failure`), and `stop`, which ends it (SIGTERM,
 * SIGKILL after 5 s) and removes `dir`.
 */
export function runNginx(bin: string, dir: string, conf: string) {
  let printed = '';
  const child: ChildProcess = spawn(bin, ['-p', `${dir}/`, '-c', conf, '-g', 'daemon off;'], {
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
  const output = () => {
    let log = '';
    try {
      log = readFileSync(join(dir, 'error.log'), 'utf8');
    } catch {
      // not written yet
    }
    return `${printed}${log}`;
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        // SIGTERM: fast shutdown (SIGQUIT would wait for open keep-alive connections).
        child.kill('SIGTERM');
      });
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return { child, output, stop, failure: () => failed };
}

export async function startNginx(options: {
  template: NginxTemplate;
  vars: Record<string, string>;
}): Promise<NginxServer> {
  const bin = resolveNginx();
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-nginx-'));
  // Workers may run as another user (nobody) when the master is root: let them reach the prefix.
  chmodSync(dir, 0o755);
  const certDir = join(dir, 'certs');
  execFileSync('sh', [join(ROOT, 'scripts', 'dev-cert.sh'), certDir], { stdio: 'pipe' });

  const [httpPort, httpsPort] = [await freePort(), await freePort()];
  const vars: Record<string, string> = {
    NGINX_HTTP_PORT: `127.0.0.1:${httpPort}`,
    NGINX_HTTPS_PORT: `127.0.0.1:${httpsPort}`,
    PUBLIC_HTTPS_PORT: String(httpsPort),
    SERVER_NAME: 'localhost',
    TLS_CERT: join(certDir, 'cert.pem'),
    TLS_KEY: join(certDir, 'key.pem'),
    // (auth-request) what every service started by processes.ts has and names its cookie
    INTERNAL_TOKEN: TEST_INTERNAL_TOKEN,
    SESSION_COOKIE_NAME: 'gatehouse',
    ...options.vars,
  };
  const config = renderTemplate(readFileSync(templatePath(options.template), 'utf8'), vars);
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `# generated by test/helpers/nginx.ts from nginx/templates/${options.template}.conf.template
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;

events {
    worker_connections 256;
}

http {
    ${mimeTypesInclude()}
    default_type application/octet-stream;
    access_log ${join(dir, 'access.log')};
    client_body_temp_path ${join(dir, 'client_body_temp')};
    proxy_temp_path ${join(dir, 'proxy_temp')};
    fastcgi_temp_path ${join(dir, 'fastcgi_temp')};
    uwsgi_temp_path ${join(dir, 'uwsgi_temp')};
    scgi_temp_path ${join(dir, 'scgi_temp')};

${config}
}
`,
  );

  const { child, output, stop, failure } = runNginx(bin, dir, conf);
  try {
    await waitFor(
      async () => {
        const failed = failure();
        if (failed) throw failed;
        if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}`);
        return (await portAnswers(httpPort)) && (await portAnswers(httpsPort));
      },
      10_000,
      `nginx (${options.template}) to listen`,
    );
  } catch (err) {
    const message = `${(err as Error).message}\n${output()}\n--- rendered ---\n${config}`;
    await stop();
    throw new Error(message);
  }

  return {
    httpPort,
    httpsPort,
    httpUrl: `http://127.0.0.1:${httpPort}`,
    httpsUrl: `https://127.0.0.1:${httpsPort}`,
    ca: readFileSync(vars.TLS_CERT ?? join(certDir, 'cert.pem'), 'utf8'),
    dir,
    config,
    output,
    stop,
  };
}

/**
 * fetch()-like over HTTPS trusting only `ca` (TLS verification stays on; nothing global changes).
 * Redirects are not followed. Answers a standard Response, so CookieJar.store() works with it.
 */
export function httpsFetch(
  url: string,
  init: { method?: string; headers?: HeadersInit; body?: string | Buffer; ca: string },
): Promise<Response> {
  const headers = new Headers(init.headers);
  const outgoing: Record<string, string> = {};
  headers.forEach((value, name) => {
    outgoing[name] = value;
  });
  if (init.body !== undefined) outgoing['content-length'] = String(Buffer.byteLength(init.body));
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = https.request(
      url,
      { method: init.method ?? 'GET', headers: outgoing, ca: init.ca, agent: false },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const responseHeaders = new Headers();
          for (const [name, value] of Object.entries(res.headers)) {
            if (value === undefined) continue;
            for (const v of Array.isArray(value) ? value : [value]) responseHeaders.append(name, v);
          }
          const status = res.statusCode ?? 0;
          const nullBody = [204, 205, 304].includes(status) || init.method === 'HEAD';
          resolve(
            new Response(nullBody ? null : Buffer.concat(chunks), {
              status,
              statusText: res.statusMessage ?? '',
              headers: responseHeaders,
            }),
          );
        });
      },
    );
    // nginx may answer (413) and close before an oversized body is fully written: the answer wins
    // when there is one; a write error only fails the call when no answer came.
    let writeError: Error | undefined;
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ECONNRESET') writeError = err;
      else reject(err);
    });
    req.on('close', () => {
      if (writeError && !answered) reject(writeError);
    });
    req.end(init.body);
  });
}

/** One browser-like client for one nginx over HTTPS: a CookieJar plus httpsFetch(). */
export function httpsClient(ca: string) {
  const jar = new CookieJar();
  return {
    jar,
    async fetch(
      url: string,
      init: { method?: string; headers?: HeadersInit; body?: string | Buffer } = {},
    ): Promise<Response> {
      const headers = new Headers(init.headers);
      const cookie = jar.header();
      if (cookie && !headers.has('cookie')) headers.set('cookie', cookie);
      const res = await httpsFetch(url, { ...init, headers, ca });
      jar.store(res);
      return res;
    },
  };
}
