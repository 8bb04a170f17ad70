import { randomBytes } from 'node:crypto';

/**
 * The little of RFC 6455 the gateway needs to close a tunnel cleanly: where frame boundaries are
 * in a byte stream it relays untouched, and a close frame to inject at one.
 */
/**
 * Where a byte stream of WebSocket frames stands: a close frame may only be injected between
 * frames, so the gateway tracks frame boundaries (header bytes are read, payloads skipped).
 */
export class FrameBoundary {
  private header: number[] = [];
  private headerLength = 2;
  private remaining = 0;

  get atBoundary(): boolean {
    return this.remaining === 0 && this.header.length === 0;
  }

  feed(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - i);
        this.remaining -= take;
        i += take;
        continue;
      }
      this.header.push(chunk[i] ?? 0);
      i += 1;
      const h = this.header;
      if (h.length === 2) {
        const len7 = (h[1] ?? 0) & 0x7f;
        const masked = ((h[1] ?? 0) & 0x80) !== 0;
        this.headerLength = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
      }
      if (h.length >= 2 && h.length === this.headerLength) {
        const len7 = (h[1] ?? 0) & 0x7f;
        let length = len7;
        if (len7 === 126) length = ((h[2] ?? 0) << 8) | (h[3] ?? 0);
        else if (len7 === 127) {
          length = 0;
          for (let k = 2; k < 10; k++) length = length * 256 + (h[k] ?? 0);
        }
        this.remaining = length;
        this.header = [];
        this.headerLength = 2;
      }
    }
  }
}

/** A close frame (RFC 6455 §5.5.1); frames from the client side must be masked. */
export function closeFrame(code: number, reason: string, masked: boolean): Buffer {
  const payload = Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from(reason)]);
  if (!masked) return Buffer.concat([Buffer.from([0x88, payload.length]), payload]);
  const key = randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ (key[i % 4] ?? 0)));
  return Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), key, body]);
}
