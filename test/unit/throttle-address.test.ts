import { describe, expect, it } from 'vitest';
import { normaliseAddress } from '../../session-service/src/domain/throttle.js';

describe('the client address a login limit counts', () => {
  it.each([
    ['203.0.113.7', 64, '203.0.113.7'],
    ['2001:db8:1:2::99', 64, '2001:db8:1:2:0:0:0:0/64'],
    ['2001:DB8:1:2:ffff:ffff:ffff:ffff', 64, '2001:db8:1:2:0:0:0:0/64'],
    ['[2001:db8:1:2::1]', 64, '2001:db8:1:2:0:0:0:0/64'],
    ['  2001:db8:1:3::1 ', 64, '2001:db8:1:3:0:0:0:0/64'],
    ['fe80::1%eth0', 64, 'fe80:0:0:0:0:0:0:0/64'],
    ['2001:db8:abcd:12ff::1', 56, '2001:db8:abcd:1200:0:0:0:0/56'],
    ['2001:db8:abcd:12ff::1', 48, '2001:db8:abcd:0:0:0:0:0/48'],
    ['2001:db8::1', 128, '2001:db8:0:0:0:0:0:1/128'],
    ['2001:db8::1', 0, '0:0:0:0:0:0:0:0/0'],
    ['2001:db8::1.2.3.4', 112, '2001:db8:0:0:0:0:102:0/112'],
    ['::ffff:192.0.2.1', 64, '192.0.2.1'],
    ['::FFFF:c000:0201', 64, '192.0.2.1'],
    ['', 64, ''],
    ['Unknown', 64, 'unknown'],
    ['0x7f.1', 64, '0x7f.1'],
  ])('counts %j (/%i) as %j', (address, prefixLength, counted) => {
    expect(normaliseAddress(address, prefixLength)).toBe(counted);
  });
});
