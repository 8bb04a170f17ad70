/**
 * RFC 6238 TOTP written from the RFC with node:crypto alone, to check the session-service's codes
 * independently of the library it uses (otpauth): HMAC-SHA-1 over the 8-byte big-endian step
 * counter, dynamic truncation (RFC 4226 §5.3), 6 digits, 30-second steps.
 */
import { createHmac } from 'node:crypto';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32, padding and spaces ignored. */
export function base32Decode(text: string): Buffer {
  const clean = text.replace(/[\s=]/g, '').toUpperCase();
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const char of clean) {
    const index = BASE32.indexOf(char);
    if (index < 0) throw new Error(`not base32: ${char}`);
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** The HOTP value of `counter` (RFC 4226). */
export function hotp(key: Buffer, counter: number, digits = 6): string {
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', key).update(message).digest();
  const offset = (mac[mac.length - 1] as number) & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}

/** The TOTP code of the base32 `secret` at `time` (ms), `skew` steps away from it. */
export function totpAt(secret: string, time: number, skew = 0): string {
  return hotp(base32Decode(secret), Math.floor(time / 30_000) + skew);
}

/** Move `clock` on to a fresh step, 4 steps later: no code used before (±1 step) is near it. */
export function nextTotpStep(clock: { t: number }): void {
  clock.t = (Math.floor(clock.t / 30_000) + 4) * 30_000 + 1000;
}
