import { describe, expect, it } from 'vitest';
import { homePage, signedInWith } from '../../demo-app/src/views.js';

describe('the demo-app says how you signed in', () => {
  it.each([
    [['pwd'], 'password'],
    [['pwd', 'otp', 'mfa'], 'password + one-time code (two factors)'],
    [['hwk', 'user', 'mfa'], 'security key or passkey + verified on the device (two factors)'],
    [[], ''],
    [['sms', '<script>'], ''],
  ])('%j -> %s', (amr, words) => {
    expect(signedInWith(amr)).toBe(words);
  });

  it('shows it on the home page, escaped, and only when it is known', () => {
    const viewer = { username: 'alice', groups: [], email: '', expiresAt: '' };
    expect(homePage({ ...viewer, amr: ['pwd', 'otp', 'mfa'] })).toContain(
      '<dd id="signed-in-with">password + one-time code (two factors)</dd>',
    );
    expect(homePage({ ...viewer, amr: [] })).not.toContain('Signed in with');
  });
});
