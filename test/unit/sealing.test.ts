import { describe, expect, it } from 'vitest';
import { createSealer, UnreadableSealError } from '../../session-service/src/domain/sealing.js';

const KEY = 'k'.repeat(40);
const OLD = 'o'.repeat(40);

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof UnreadableSealError) return err.reason;
    throw err;
  }
  return 'opened';
}

describe('sealing (AES-256-GCM, keys from the environment)', () => {
  const sealer = createSealer([KEY], 'session-record');

  it('opens what it sealed, for the same context only', () => {
    const sealed = sealer.seal('{"auth":{"username":"alice"}}', 'id-1');
    expect(sealed).not.toContain('alice');
    expect(sealer.open(sealed, 'id-1')).toEqual({
      plaintext: '{"auth":{"username":"alice"}}',
      current: true,
    });
    expect(reasonOf(() => sealer.open(sealed, 'id-2'))).toBe('forged or damaged');
  });

  it('never seals the same text the same way twice (random IV)', () => {
    expect(sealer.seal('x', 'c')).not.toBe(sealer.seal('x', 'c'));
  });

  it('refuses clear text, an unknown key, a truncated or altered value', () => {
    const sealed = sealer.seal('secret', 'c');
    expect(reasonOf(() => sealer.open('{"auth":{}}', 'c'))).toBe('not sealed');
    expect(reasonOf(() => createSealer([OLD], 'session-record').open(sealed, 'c'))).toBe(
      'unknown key',
    );
    expect(reasonOf(() => sealer.open(sealed.slice(0, 20), 'c'))).toBe('forged or damaged');
    const body = sealed.slice(sealed.lastIndexOf('.') + 1);
    const altered = `${sealed.slice(0, sealed.lastIndexOf('.') + 1)}${body[0] === 'A' ? 'B' : 'A'}${body.slice(1)}`;
    expect(reasonOf(() => sealer.open(altered, 'c'))).toBe('forged or damaged');
  });

  it('keeps one purpose from opening another (separate derived keys)', () => {
    const sealed = sealer.seal('x', 'c');
    expect(reasonOf(() => createSealer([KEY], 'signing-key').open(sealed, 'c'))).toBe(
      'unknown key',
    );
  });

  it('rotation: the new key seals, the previous one still opens (and says it is not current)', () => {
    const old = createSealer([OLD], 'session-record');
    const rotated = createSealer([KEY, OLD], 'session-record');
    const byOld = old.seal('before', 'c');
    expect(rotated.open(byOld, 'c')).toEqual({ plaintext: 'before', current: false });
    const byNew = rotated.seal('after', 'c');
    expect(byNew.split('.')[1]).toBe(sealer.keyId);
    expect(sealer.open(byNew, 'c').plaintext).toBe('after');
    expect(reasonOf(() => old.open(byNew, 'c'))).toBe('unknown key');
  });

  it('needs a key', () => {
    expect(() => createSealer([], 'session-record')).toThrow(/SESSION_ENCRYPTION_KEY/);
  });
});
