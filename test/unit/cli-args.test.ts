/**
 * `npm run users`'s command line (session-service/src/cli/args.ts): a token id as `token list`
 * prints it may begin with '-' (one in 64 do), and is an argument, never an unknown option.
 */
import { describe, expect, it } from 'vitest';
import { parseInvocation } from '../../session-service/src/cli/args.js';
import { CliError } from '../../session-service/src/cli/errors.js';

const ID = `-7${'a'.repeat(20)}_-${'Z'.repeat(19)}`; // 43 base64url characters, a leading '-'

describe('users CLI arguments', () => {
  it('takes a token id that begins with "-" as an argument, wherever it stands', () => {
    expect(ID).toHaveLength(43);
    expect(parseInvocation(['token', 'revoke', 'ci-runner', ID])).toMatchObject({
      command: 'token',
      positionals: ['revoke', 'ci-runner', ID],
    });
    expect(parseInvocation(['token', 'revoke', ID, 'ci-runner', '--json'])).toMatchObject({
      positionals: ['revoke', ID, 'ci-runner'],
      json: true,
    });
    expect(parseInvocation(['token', 'create', 'bob', '--name', ID]).name).toBe(ID);
  });

  it.each([
    ['-x'],
    ['--nope'],
    [`-${'a'.repeat(41)}`], // 42 characters: not a token id
    [`-${'a'.repeat(43)}`], // 44
    [`-${'a'.repeat(41)}.`], // not base64url
  ])('still refuses %s as an unknown option', (arg) => {
    expect(() => parseInvocation(['token', 'revoke', 'ci-runner', arg])).toThrow(CliError);
  });
});
