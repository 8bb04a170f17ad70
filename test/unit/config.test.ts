import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../common/src/config.js';
import { loadGatewayConfig } from '../../gateway/src/config.js';
import { loadSessionServiceConfig } from '../../session-service/src/config.js';

const problemsOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
};

describe('session-service configuration', () => {
  it('lists every problem at once', () => {
    const problems = problemsOf(() =>
      loadSessionServiceConfig({
        SESSION_SECRET: 'short',
        REDIS_URL: 'not a url',
        SESSION_IDLE_TIMEOUT: 'soon',
        SESSION_SERVICE_PORT: '99999',
      }),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^SESSION_SECRET: must be at least 32 characters/),
        expect.stringMatching(/^REDIS_URL: is not a URL/),
        expect.stringMatching(/^SESSION_IDLE_TIMEOUT: must be a whole number of seconds/),
        expect.stringMatching(/^SESSION_SERVICE_PORT:/),
      ]),
    );
  });

  it('refuses to start in production without SESSION_SECRET, or with a published example secret', () => {
    expect(
      problemsOf(() => loadSessionServiceConfig({ NODE_ENV: 'production' }, 'x'.repeat(40))),
    ).toContain('SESSION_SECRET: is required when NODE_ENV=production');
    expect(
      problemsOf(() =>
        loadSessionServiceConfig({
          NODE_ENV: 'production',
          SESSION_SECRET: 'change-me-to-a-long-random-string-of-at-least-32-characters',
        }),
      ),
    ).toContain(
      'SESSION_SECRET: is a published example value; generate your own (openssl rand -base64 48)',
    );
  });

  it('requires SESSION_ENCRYPTION_KEY in production (not the example value, not SESSION_SECRET), and keeps previous keys for reading', () => {
    const secret = 's'.repeat(40);
    expect(
      problemsOf(() =>
        loadSessionServiceConfig({ NODE_ENV: 'production', SESSION_SECRET: secret }),
      ),
    ).toContain('SESSION_ENCRYPTION_KEY: is required when NODE_ENV=production');
    expect(
      problemsOf(() =>
        loadSessionServiceConfig({
          NODE_ENV: 'production',
          SESSION_SECRET: secret,
          SESSION_ENCRYPTION_KEY:
            'change-me-to-a-third-long-random-string-of-32-characters-or-more',
        }),
      ),
    ).toContain(
      'SESSION_ENCRYPTION_KEY: is a published example value; generate your own (openssl rand -base64 32)',
    );
    expect(
      problemsOf(() =>
        loadSessionServiceConfig({
          SESSION_SECRET: secret,
          SESSION_ENCRYPTION_KEY: secret,
          SESSION_ENCRYPTION_KEY_PREVIOUS: 'too-short',
        }),
      ),
    ).toEqual(
      expect.arrayContaining([
        'SESSION_ENCRYPTION_KEY: must differ from SESSION_SECRET',
        expect.stringMatching(/^SESSION_ENCRYPTION_KEY_PREVIOUS: .*at least 32 characters/),
      ]),
    );
    const config = loadSessionServiceConfig({
      SESSION_SECRET: secret,
      SESSION_ENCRYPTION_KEY: 'n'.repeat(40),
      SESSION_ENCRYPTION_KEY_PREVIOUS: `${'o'.repeat(40)}, ${'p'.repeat(40)}`,
    });
    expect(config.encryptionKeys).toEqual(['n'.repeat(40), 'o'.repeat(40), 'p'.repeat(40)]);
    // Outside production with none set, main.ts supplies the development key.
    expect(loadSessionServiceConfig({ SESSION_SECRET: secret }).encryptionKeys).toEqual([]);
  });

  it('uses the __Host- cookie prefix over HTTPS, and not with a cookie domain', () => {
    const secret = 's'.repeat(40);
    expect(
      loadSessionServiceConfig({ SESSION_SECRET: secret, PUBLIC_URL: 'https://gatehouse.example' })
        .cookieName,
    ).toBe('__Host-gatehouse');
    expect(
      loadSessionServiceConfig({
        SESSION_SECRET: secret,
        PUBLIC_URL: 'https://a.example',
        COOKIE_DOMAIN: 'example.com',
      }).cookieName,
    ).toBe('gatehouse');
    expect(loadSessionServiceConfig({ SESSION_SECRET: secret }).cookieName).toBe('gatehouse');
  });

  it('returns a frozen configuration', () => {
    const config = loadSessionServiceConfig({ SESSION_SECRET: 's'.repeat(40) });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.env)).toBe(true);
  });
});

describe('gateway configuration', () => {
  it('lists every problem at once', () => {
    const problems = problemsOf(() =>
      loadGatewayConfig({ GATEWAY_PORT: 'eighty', SESSION_SERVICE_URL: 'nope' }),
    );
    expect(problems.length).toBeGreaterThanOrEqual(2);
  });
});
