import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isGatehouseError } from '../../common/src/errors.js';
import { createHasherPool, HASHER_NICE } from '../../session-service/src/adapters/hasher-pool.js';
import { hashPassword } from '../../session-service/src/domain/passwords.js';

/** The nice value of every thread of this process (Linux: field 19 of /proc/self/task/<tid>/stat). */
function threadNiceValues(): Array<{ tid: string; nice: number }> {
  return readdirSync('/proc/self/task').map((tid) => {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces), which ends at the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { tid, nice: Number(fields[16]) }; // field 19 overall: nice
  });
}

describe('password hasher pool', () => {
  it('checks argon2id hashes on worker threads: right, wrong and malformed', async () => {
    const pool = createHasherPool(2);
    const hash = await hashPassword('correct horse battery');
    const results = await Promise.all([
      pool.verify(hash, 'correct horse battery'),
      pool.verify(hash, 'wrong horse battery'),
      pool.verify('not a PHC string', 'correct horse battery'),
      pool.verify(hash, 'correct horse battery'),
    ]);
    expect(results).toEqual([true, false, false, true]);
  });

  it('queues at most maxQueued checks beyond its workers, and refuses more with BUSY (Retry-After: 1)', async () => {
    const pool = createHasherPool(1, 1);
    const hash = await hashPassword('correct horse battery');
    const running = pool.verify(hash, 'correct horse battery');
    const queued = pool.verify(hash, 'wrong');
    const refused = await pool.verify(hash, 'one too many').then(
      () => null,
      (err: unknown) => err,
    );
    expect(isGatehouseError(refused, 'BUSY')).toBe(true);
    expect(refused).toMatchObject({ status: 503, headers: { 'Retry-After': '1' } });
    expect(await running).toBe(true);
    expect(await queued).toBe(false);
    // Room again once the queue has drained.
    expect(await pool.verify(hash, 'correct horse battery')).toBe(true);
  });

  it('runs the checks at a lower CPU priority than the event loop (Linux)', async () => {
    const hash = await hashPassword('correct horse battery');
    const before = new Set(threadNiceValues().map(({ tid }) => tid));
    const pool = createHasherPool(2);
    await Promise.all([pool.verify(hash, 'x'), pool.verify(hash, 'y')]);
    // The pool's threads: a worker each, plus (run from source, as here) the thread of the tsx
    // loader each worker starts. All of them at HASHER_NICE; this thread still at 0.
    const added = threadNiceValues().filter(({ tid }) => !before.has(tid));
    expect(added.length).toBeGreaterThanOrEqual(1);
    expect(added.map(({ nice }) => nice)).toEqual(added.map(() => HASHER_NICE));
    const self = readFileSync('/proc/thread-self/stat', 'utf8');
    expect(Number(self.slice(self.lastIndexOf(')') + 2).split(' ')[16])).toBe(0);
  });
});
