/** The tests' own TOTP (test/helpers/totp.ts) against RFC 6238 Appendix B's SHA-1 vectors. */
import { describe, expect, it } from 'vitest';
import { hotp } from '../helpers/totp.js';

const SEED = Buffer.from('12345678901234567890', 'ascii');

describe('the independent RFC 6238 helper', () => {
  it.each([
    [59, '94287082'],
    [1111111109, '07081804'],
    [1111111111, '14050471'],
    [1234567890, '89005924'],
    [2000000000, '69279037'],
    [20000000000, '65353130'],
  ])('at T=%i gives %s (8 digits, SHA-1)', (seconds, code) => {
    expect(hotp(SEED, Math.floor(seconds / 30), 8)).toBe(code);
  });
});
