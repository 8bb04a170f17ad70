/** The new password of add and passwd: the first line of stdin, or asked twice on a terminal. */
import type { Readable } from 'node:stream';
import password from '@inquirer/password';
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

/**
 * Ask on the terminal (prompts on stderr, so stdout stays the command's result), echoing nothing:
 * @inquirer/password without a mask and without its show-password shortcut. No `validate`: after
 * a refusal it puts the refused value back in the line, invisible here, so a weak password ends
 * the command instead (exit 1), as a mismatch does. Ctrl-C cancels (exit 130).
 */
async function promptHidden(message: string): Promise<string> {
  try {
    return await password(
      { message, mask: false, toggleMask: false },
      { input: process.stdin, output: process.stderr },
    );
  } catch (err) {
    // Inquirer's documented test for Ctrl-C (its error classes live in @inquirer/core).
    if (err instanceof Error && err.name === 'ExitPromptError')
      throw new CliError('cancelled', EXIT_CANCELLED);
    throw err;
  }
}

async function promptPasswordTwice(username: string): Promise<string> {
  const first = await promptHidden(`New password for ${quote(username)}:`);
  requireValidPassword(first);
  const second = await promptHidden('Repeat the password:');
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
