/** What a session record keeps of a user-agent (issue 16): the sessions page's summary. */
import { describe, expect, it } from 'vitest';
import {
  USER_AGENT_MAX,
  userAgentSummary,
} from '../../session-service/src/domain/session-records.js';

describe('userAgentSummary', () => {
  it.each([
    [
      'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
      'Chrome 126 on Linux',
    ],
    [
      'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0',
      'Firefox 127 on Windows',
    ],
    [
      'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
      'Safari 17 on macOS',
    ],
    [
      'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
      'Safari 17 on iOS',
    ],
    [
      'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.68',
      'Edge 126 on Windows',
    ],
    [
      'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36',
      'Chrome 126 on Android',
    ],
    ['curl/8.5.0', 'curl/8.5.0'],
    ['', ''],
  ])('%s → %s', (ua, summary) => {
    expect(userAgentSummary(ua)).toBe(summary);
    expect(userAgentSummary(summary)).toBe(summary); // a rewrite keeps it
  });

  it('cuts anything else to 64 characters, without control characters', () => {
    expect(userAgentSummary(`bot\u0000\n${'y'.repeat(300)}`)).toBe(`bot${'y'.repeat(61)}`);
    expect(userAgentSummary('z'.repeat(300))).toHaveLength(USER_AGENT_MAX);
  });
});
