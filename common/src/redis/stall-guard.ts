/** Concern: noticing a standalone Redis that stopped answering, so commands are refused, not queued. */

/**
 * Commands written to a connection wait for their replies forever in node-redis (its per-command
 * `timeout` only covers commands not yet written), so a Redis that stops answering without closing
 * the connection (SIGSTOP, a hung host, a network partition) would collect every command sent to
 * it. The guard notes when each command went out; once the oldest one has waited longer than the
 * command deadline, Redis is stuck (replies come in order) and further commands are refused at
 * once, until it answers again or the connection is replaced (`socketTimeout`). So requests fail
 * within the deadline, the queue holds about one deadline's worth of commands, and nothing is
 * written to a connection that is not being read.
 *
 * "Stuck" is decided only after the event loop has read the sockets (in a setImmediate, which
 * runs after the poll phase): a process too busy to read Redis's replies for a second (CPU
 * starvation) must not take replies sitting in its socket for missing ones.
 */
export function createStallGuard(
  timeoutMs: number,
  forgetAfterMs: number,
  onChange: (stalled: boolean) => void,
) {
  const pending = new Map<number, number>();
  let next = 0;
  let stalled = false;
  /** How long the oldest command still counted has waited (0: none). */
  const oldestWait = (now: number) => {
    for (const [id, sentAt] of pending) {
      // Past this, the connection has been replaced and the command failed: stop counting it.
      if (now - sentAt >= forgetAfterMs) pending.delete(id);
      else return now - sentAt;
    }
    return 0;
  };
  const update = (value: boolean) => {
    if (value === stalled) return;
    stalled = value;
    onChange(value);
  };
  const timer = setInterval(
    () => setImmediate(() => update(oldestWait(Date.now()) >= timeoutMs)),
    Math.max(10, Math.min(100, Math.floor(timeoutMs / 4))),
  );
  timer.unref();
  return {
    get stalled() {
      return stalled;
    },
    track(work: Promise<unknown>): void {
      const id = next++;
      pending.set(id, Date.now());
      const done = () => {
        pending.delete(id);
        // An answer: Redis is back as soon as nothing old is left waiting.
        if (stalled && oldestWait(Date.now()) < timeoutMs) update(false);
      };
      work.then(done, done);
    },
    /** A new connection: nothing is outstanding on it. */
    reset(): void {
      pending.clear();
      update(false);
    },
    stop(): void {
      clearInterval(timer);
    },
  };
}
