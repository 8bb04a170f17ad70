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
