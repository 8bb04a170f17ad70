import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, reservedDeadPort } from '../helpers/ports.js';
import { ROOT } from '../helpers/processes.js';
import { type RedisSentinelSetup, startRedisSentinel } from '../helpers/redis-topologies.js';

/** `npm run doctor` with REDIS_SENTINELS: its output is its report and nothing else. */
async function doctor(env: Record<string, string>) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'scripts/doctor.ts'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      USERS_FILE: '/nonexistent/users.json',
      GATEWAY_PORT: String(await freePort()),
      SESSION_SERVICE_PORT: String(await freePort()),
      DEMO_APP_PORT: String(await freePort()),
      ...env,
    },
    timeout: 20_000,
  });
}

/** Every line of the report starts with a mark, a fix, or is blank or the summary. */
function strayLines(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((line) => !/^(\[(FAIL| ok |WARN)\] |\s+|$|\d+ problem|Ready: )/.test(line));
}

let sentinel: RedisSentinelSetup;
beforeAll(async () => {
  sentinel = await startRedisSentinel();
});
afterAll(async () => {
  await sentinel?.stop();
});

describe('npm run doctor with REDIS_SENTINELS', { timeout: 30_000 }, () => {
  it('says Redis answers through the sentinels', async () => {
    const run = await doctor({
      REDIS_SENTINELS: sentinel.sentinelList,
      REDIS_SENTINEL_NAME: sentinel.name,
    });
    expect(run.stdout).toContain(
      `[ ok ] Redis answers through REDIS_SENTINELS (master "${sentinel.name}")`,
    );
    expect(strayLines(run.stdout)).toEqual([]);
    expect(run.status).toBe(0);
  });

  it('fails at once when no sentinel answers, printing no stack trace', async () => {
    const run = await doctor({
      REDIS_SENTINELS: `127.0.0.1:${await reservedDeadPort()}`,
      REDIS_SENTINEL_NAME: 'gatehouse',
    });
    expect(run.stdout).toContain(
      '[FAIL] Redis does not answer through REDIS_SENTINELS (master "gatehouse")',
    );
    expect(strayLines(run.stdout)).toEqual([]);
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(run.status).toBe(1);
  });
});
