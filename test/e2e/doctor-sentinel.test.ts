import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDoctor } from '../helpers/doctor.js';
import { reservedDeadPort } from '../helpers/ports.js';
import { type RedisSentinelSetup, startRedisSentinel } from '../helpers/redis-topologies.js';

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
    const run = await runDoctor({
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
    const run = await runDoctor({
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
