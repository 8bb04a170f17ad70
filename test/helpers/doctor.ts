import { spawnSync } from 'node:child_process';
import { freePort } from './ports.js';
import { ROOT } from './processes.js';

/**
 * `npm run doctor` as a real process, with a bare environment (PATH, HOME, a users file that does
 * not exist, free ports for the three services) plus `env`: its report is all it prints.
 */
export async function runDoctor(env: Record<string, string>) {
  const ports = {
    GATEWAY_PORT: String(await freePort()),
    SESSION_SERVICE_PORT: String(await freePort()),
    DEMO_APP_PORT: String(await freePort()),
  };
  return spawnSync(process.execPath, ['--import', 'tsx', 'scripts/doctor.ts'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      USERS_FILE: '/nonexistent/users.json',
      ...ports,
      ...env,
    },
    timeout: 20_000,
  });
}
