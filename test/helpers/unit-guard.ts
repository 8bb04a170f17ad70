/**
 * Setup file of the unit tier (vitest.config.ts): a unit test starts no process and opens no
 * socket, so that the tier runs in seconds anywhere. Starting a child process, listening, or
 * connecting anywhere throws; a test that needs one of them belongs in test/integration.
 * Worker threads stay allowed (the hasher pool runs argon2 in them).
 */
import childProcess from 'node:child_process';
import { syncBuiltinESMExports } from 'node:module';
import net from 'node:net';
import { afterAll, beforeAll } from 'vitest';

const PROCESS_FUNCTIONS = [
  'spawn',
  'spawnSync',
  'exec',
  'execSync',
  'execFile',
  'execFileSync',
  'fork',
] as const;

function refuse(what: string): never {
  throw new Error(`${what} in a unit test: move the test to test/integration`);
}

const saved = {
  process: PROCESS_FUNCTIONS.map((name) => [name, childProcess[name]] as const),
  listen: net.Server.prototype.listen,
  connect: net.Socket.prototype.connect,
};

beforeAll(() => {
  const mutable = childProcess as unknown as Record<string, unknown>;
  for (const name of PROCESS_FUNCTIONS) mutable[name] = () => refuse(`child_process.${name}()`);
  net.Server.prototype.listen = () => refuse('server.listen()');
  net.Socket.prototype.connect = () => refuse('a network connection');
  // `import { spawn } from 'node:child_process'` sees the replacement too
  syncBuiltinESMExports();
});

afterAll(() => {
  const mutable = childProcess as unknown as Record<string, unknown>;
  for (const [name, original] of saved.process) mutable[name] = original;
  net.Server.prototype.listen = saved.listen;
  net.Socket.prototype.connect = saved.connect;
  syncBuiltinESMExports();
});
