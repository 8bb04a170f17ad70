/**
 * Preloaded with `NODE_OPTIONS=--import ./bench/cpu-profiler.mjs` by bench/profile.ts (Node 20
 * refuses --cpu-prof in NODE_OPTIONS): samples the process with the inspector's profiler and
 * writes `<CPU_PROFILE_DIR>/<pid>.cpuprofile` when it exits.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const dir = process.env.CPU_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 500 });
  session.post('Profiler.start');
  // The in-process session answers synchronously, so this works in an 'exit' listener.
  process.on('exit', () => {
    session.post('Profiler.stop', (err, result) => {
      if (!err)
        writeFileSync(join(dir, `${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
