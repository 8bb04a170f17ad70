import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDoctor } from '../helpers/doctor.js';
import { reservedDeadPort } from '../helpers/ports.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

describe('npm run doctor', () => {
  it('says ready when Redis answers and the configuration is valid', async () => {
    const run = await runDoctor({ REDIS_URL: redis.url });
    expect(run.stdout).toContain('[ ok ] Redis answers at REDIS_URL');
    expect(run.stdout).toContain('Ready: npm start');
    expect(run.status).toBe(0);
  });

  it('lists every problem with its fix and exits 1', async () => {
    const deadPort = await reservedDeadPort();
    const run = await runDoctor({
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
