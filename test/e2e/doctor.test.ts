import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, reservedDeadPort } from '../helpers/ports.js';
import { ROOT } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

async function doctor(env: Record<string, string>) {
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

describe('npm run doctor', () => {
  it('says ready when Redis answers and the configuration is valid', async () => {
    const run = await doctor({ REDIS_URL: redis.url });
    expect(run.stdout).toContain('[ ok ] Redis answers at REDIS_URL');
    expect(run.stdout).toContain('Ready: npm start');
    expect(run.status).toBe(0);
  });

  it('lists every problem with its fix and exits 1', async () => {
    const deadPort = await reservedDeadPort();
    const run = await doctor({
      REDIS_URL: `redis://127.0.0.1:${deadPort}`,
      SESSION_IDLE_TIMEOUT: 'soon',
      NODE_ENV: 'production',
    });
    expect(run.status).toBe(1);
    expect(run.stdout).toContain('[FAIL] Redis does not answer at REDIS_URL');
    expect(run.stdout).toMatch(/SESSION_IDLE_TIMEOUT/);
    expect(run.stdout).toMatch(/SESSION_SECRET: is required when NODE_ENV=production/);
    expect(run.stdout).toContain('fix:');
  });
});
