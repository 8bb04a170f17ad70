/** The new password of add and passwd: the first line of stdin, or asked twice on a terminal. */
import type { Readable } from 'node:stream';
import { checkNewPassword, PASSWORD_MAX } from '../domain/passwords.js';
import { CliError, EXIT_CANCELLED } from './errors.js';
import { quote } from './print.js';

/** More bytes than any accepted password can take (1024 characters of up to 4 bytes each). */
const STDIN_LIMIT_BYTES = PASSWORD_MAX * 4 + 2;

export function requireValidPassword(password: string): void {
  const problem = checkNewPassword(password);
  if (problem) throw new CliError(problem);
}

/** Strip exactly one trailing "\n" or "\r\n", nothing else. */
function stripLineEnd(line: string): string {
  if (line.endsWith('\r\n')) return line.slice(0, -2);
  if (line.endsWith('\n')) return line.slice(0, -1);
  return line;
}

/** The bytes of stdin up to and including the first newline (or to EOF). */
async function readFirstLineBytes(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    const newline = buf.indexOf(0x0a);
    chunks.push(newline >= 0 ? buf.subarray(0, newline + 1) : buf);
    size += buf.length;
    if (newline >= 0) break;
    if (size > STDIN_LIMIT_BYTES) {
      throw new CliError(`password must be at most ${PASSWORD_MAX} characters`);
    }
  }
  return Buffer.concat(chunks);
}

async function readPasswordFromPipe(stream: Readable): Promise<string> {
  const bytes = await readFirstLineBytes(stream);
  try {
    return stripLineEnd(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes));
  } catch {
    throw new CliError('the password on stdin is not valid UTF-8');
  }
}

/** Apply keys typed in raw mode to `value`; `done` once Enter (or Ctrl-D) ends the line. */
function applyKeys(value: string, keys: string): { value: string; done: boolean } {
  // Arrow keys and other escape sequences arrive as one chunk: ignore them whole.
  if (keys.startsWith('\u001b')) return { value, done: false };
  let current = value;
  for (const key of keys) {
    if (key === '\u0003') throw new CliError('cancelled', EXIT_CANCELLED);
    if (key === '\r' || key === '\n' || key === '\u0004') return { value: current, done: true };
    if (key === '\u007f' || key === '\b') current = [...current].slice(0, -1).join('');
    else if (key >= ' ') current += key;
  }
  return { value: current, done: false };
}

/** Ask on the terminal without echoing what is typed. */
function promptHidden(prompt: string): Promise<string> {
  const { stdin, stderr } = process;
  // Raw mode before the prompt: keys typed the moment it shows must not be echoed.
  stdin.setEncoding('utf8');
  stdin.setRawMode(true);
  stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = (err: unknown) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (keys: string) => {
      try {
        const next = applyKeys(value, keys);
        value = next.value;
        if (next.done) finish(null);
      } catch (err) {
        finish(err);
      }
    };
    stdin.on('data', onData);
    stdin.resume();
  });
}

async function promptPasswordTwice(username: string): Promise<string> {
  const first = await promptHidden(`New password for ${quote(username)}: `);
  requireValidPassword(first);
  const second = await promptHidden('Repeat the password: ');
  if (first !== second) throw new CliError('the two passwords do not match');
  return first;
}

/** A valid new password from stdin (piped) or the terminal (asked twice, hidden). */
export async function readNewPassword(username: string): Promise<string> {
  const password = process.stdin.isTTY
    ? await promptPasswordTwice(username)
    : await readPasswordFromPipe(process.stdin);
  requireValidPassword(password);
  return password;
}
