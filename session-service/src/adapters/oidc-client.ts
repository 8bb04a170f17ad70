/**
 * One OpenID Connect provider, as Gatehouse the relying party talks to it: discovery, the
 * authorization request (code flow, PKCE S256, state, nonce), the code exchange with the ID
 * token checked, refresh, RP-initiated logout and back-channel logout tokens. openid-client
 * (oauth4webapi) does the protocol; jose checks signatures against the provider's JWKS, fetched
 * again when a token names a key it does not have yet (the provider rotated), at most once a
 * second.
 *
 * Failures are of three kinds, never mixed up:
 * - the provider could not be asked (down, timed out, answered 5xx): IDENTITY_PROVIDER_UNAVAILABLE;
 * - the provider refused (invalid_grant for a used or forged code, a revoked refresh token):
 *   `OidcRefused`;
 * - what came back does not hold up (state, nonce, iss, aud, exp, iat, signature): SIGN_IN_INVALID.
 */
import { createPrivateKey } from 'node:crypto';
import {
  createRemoteJWKSet,
  importJWK,
  importPKCS8,
  type JWK,
  type JWTPayload,
  jwtVerify,
} from 'jose';
import * as oidc from 'openid-client';
import { GatehouseError } from '../../../common/src/errors.js';
import type { IdentitySources } from '../identity-sources.js';

export type ProviderConfig = IdentitySources['oidc'][number];

/** The provider said no to a grant (OAuth error answer): the sign-in or refresh is over. */
export class OidcRefused extends Error {
  constructor(
    readonly error: string,
    options?: ErrorOptions,
  ) {
    super(`the provider refused: ${error}`, options);
  }
}

export interface AuthorizationRequest {
  state: string;
  nonce: string;
  codeVerifier: string;
  /** prompt=login and max_age=0: the provider must ask for the password again (step-up). */
  reauthenticate?: boolean;
}

export interface ProviderTokens {
  /** The ID token's claims, checked. */
  claims: JWTPayload & Record<string, unknown>;
  refreshToken?: string;
}

/** Discovery and JWKS are cached; a failed discovery is tried again at the next request. */
const DISCOVERY_RETRY_MS = 5_000;
const JWKS_COOLDOWN_MS = 1_000;
/** How far ahead of our clock a token's iat may be (openid-client's tolerance for exp). */
const CLOCK_TOLERANCE_S = 30;

export interface OidcClient {
  readonly config: ProviderConfig;
  readonly redirectUri: string;
  authorizationUrl(request: AuthorizationRequest): Promise<URL>;
  /** The callback's URL (its query as received) in, the checked ID token's claims out. */
  exchange(callback: URL, request: AuthorizationRequest): Promise<ProviderTokens>;
  /** A refresh grant: the new ID token's claims when it sends one (else null claims). */
  refresh(
    refreshToken: string,
  ): Promise<{ claims: ProviderTokens['claims'] | null; refreshToken?: string }>;
  /** Where to send the browser to sign out at the provider too, or null when it has no endpoint. */
  endSessionUrl(postLogoutRedirectUri: string): Promise<URL | null>;
  /** A back-channel logout token, verified (OIDC Back-Channel Logout 1.0, section 2.6). */
  verifyLogoutToken(
    token: string,
  ): Promise<{ sub?: string; sid?: string; jti: string; iat: number }>;
  /** Fetch the discovery document now (doctor). */
  ping(): Promise<void>;
}

const unavailable = (cause: unknown) =>
  new GatehouseError('IDENTITY_PROVIDER_UNAVAILABLE', { cause });
const invalid = (cause: unknown) => new GatehouseError('SIGN_IN_INVALID', { cause });

/** Sort an openid-client failure into the three kinds (see the top of this file). */
function classify(err: unknown): Error {
  if (err instanceof GatehouseError || err instanceof OidcRefused) return err;
  if (err instanceof oidc.ResponseBodyError)
    return err.status >= 500 ? unavailable(err) : new OidcRefused(err.error, { cause: err });
  if (err instanceof TypeError) return unavailable(err); // fetch failed: refused, reset, DNS
  const code = (err as { code?: string }).code ?? '';
  if (
    [
      'OAUTH_TIMEOUT',
      'OAUTH_ABORT',
      'OAUTH_RESPONSE_IS_NOT_CONFORM',
      'OAUTH_RESPONSE_IS_NOT_JSON',
    ].includes(code)
  )
    return unavailable(err);
  return invalid(err);
}

const isLocalHttp = (url: URL) =>
  url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);

export function createOidcClient(options: {
  config: ProviderConfig;
  /** PUBLIC_URL: callbacks are <publicUrl>/auth/oidc/<id>/callback. */
  publicUrl: string;
  timeoutMs?: number;
}): OidcClient {
  const { config } = options;
  const base = options.publicUrl.replace(/\/+$/, '');
  const redirectUri = `${base}/auth/oidc/${config.id}/callback`;
  const issuer = new URL(config.issuer);
  const timeout = Math.ceil((options.timeoutMs ?? 5000) / 1000);
  let discovered: Promise<oidc.Configuration> | null = null;
  let failedAt = 0;
  let jwks: ReturnType<typeof createRemoteJWKSet> | null = null;

  /** client_secret_basic, or private_key_jwt with the key file (a PKCS#8 PEM or a JWK). */
  async function clientAuth(): Promise<oidc.ClientAuth> {
    if (!config.privateKey) return oidc.ClientSecretBasic(config.clientSecret);
    const text = config.privateKey.trim();
    if (text.startsWith('{')) {
      const jwk = JSON.parse(text) as JWK;
      const alg = jwk.alg ?? (jwk.kty === 'EC' ? 'ES256' : 'RS256');
      const key = (await importJWK(jwk, alg)) as CryptoKey;
      return oidc.PrivateKeyJwt({ key, ...(jwk.kid ? { kid: jwk.kid } : {}) });
    }
    const type = createPrivateKey(text).asymmetricKeyType;
    const key = await importPKCS8(text, type === 'ec' ? 'ES256' : 'RS256');
    return oidc.PrivateKeyJwt(key);
  }

  function configuration(): Promise<oidc.Configuration> {
    if (discovered) return discovered;
    if (Date.now() - failedAt < DISCOVERY_RETRY_MS && failedAt > 0)
      return Promise.reject(unavailable(new Error('discovery failed moments ago')));
    const attempt = clientAuth()
      .then((auth) =>
        oidc.discovery(issuer, config.clientId, undefined, auth, {
          timeout,
          ...(isLocalHttp(issuer) ? { execute: [oidc.allowInsecureRequests] } : {}),
        }),
      )
      .then((found) => {
        found.timeout = timeout;
        const uri = found.serverMetadata().jwks_uri;
        if (!uri) throw invalid(new Error('the provider publishes no jwks_uri'));
        jwks = createRemoteJWKSet(new URL(uri), {
          cooldownDuration: JWKS_COOLDOWN_MS,
          timeoutDuration: timeout * 1000,
        });
        return found;
      })
      .catch((err: unknown) => {
        discovered = null;
        failedAt = Date.now();
        throw err instanceof GatehouseError ? err : unavailable(err);
      });
    discovered = attempt;
    return attempt;
  }

  /** The ID token's signature against the provider's JWKS (refetched for a new kid). */
  async function verifySignature(token: string, found: oidc.Configuration) {
    if (!jwks) throw unavailable(new Error('no JWKS'));
    const algorithms = found
      .serverMetadata()
      .id_token_signing_alg_values_supported?.filter((alg) => alg !== 'none');
    let verified: Awaited<ReturnType<typeof jwtVerify>>;
    try {
      verified = await jwtVerify(token, jwks, {
        issuer: found.serverMetadata().issuer,
        audience: config.clientId,
        ...(algorithms && algorithms.length > 0 ? { algorithms } : {}),
      });
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      if (code === 'ERR_JWKS_TIMEOUT' || (err as Error).name === 'TypeError')
        throw unavailable(err);
      throw invalid(err);
    }
    // Neither openid-client nor jose (without maxTokenAge) refuses a token issued in the future.
    const { iat } = verified.payload;
    if (typeof iat === 'number' && iat > Date.now() / 1000 + CLOCK_TOLERANCE_S)
      throw invalid(new Error('the token was issued in the future (iat)'));
    return verified;
  }

  return {
    config,
    redirectUri,
    async authorizationUrl(request) {
      const found = await configuration();
      const params: Record<string, string> = {
        redirect_uri: redirectUri,
        scope: config.scopes.join(' '),
        response_type: 'code',
        code_challenge: await oidc.calculatePKCECodeChallenge(request.codeVerifier),
        code_challenge_method: 'S256',
        state: request.state,
        nonce: request.nonce,
      };
      if (config.scopes.includes('offline_access')) params.prompt = 'consent';
      if (request.reauthenticate) {
        params.prompt = 'login';
        params.max_age = '0';
      }
      return oidc.buildAuthorizationUrl(found, params);
    },

    async exchange(callback, request) {
      const found = await configuration();
      let tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
      try {
        tokens = await oidc.authorizationCodeGrant(found, callback, {
          pkceCodeVerifier: request.codeVerifier,
          expectedState: request.state,
          expectedNonce: request.nonce,
          idTokenExpected: true,
          ...(request.reauthenticate ? { maxAge: 0 } : {}),
        });
      } catch (err) {
        const sorted = classify(err);
        // A refused code (used, forged, for another client) is a sign-in that cannot complete.
        throw sorted instanceof OidcRefused ? invalid(err) : sorted;
      }
      if (!tokens.id_token) throw invalid(new Error('no ID token'));
      // openid-client checked iss, aud, azp, exp, nonce and the state (iat only as a number);
      // verifySignature the signature, and that iat is not in the future.
      await verifySignature(tokens.id_token, found);
      const claims = tokens.claims();
      if (!claims) throw invalid(new Error('no ID token claims'));
      return {
        claims: claims as ProviderTokens['claims'],
        ...(tokens.refresh_token ? { refreshToken: tokens.refresh_token } : {}),
      };
    },

    async refresh(refreshToken) {
      const found = await configuration();
      try {
        const tokens = await oidc.refreshTokenGrant(found, refreshToken);
        if (tokens.id_token) await verifySignature(tokens.id_token, found);
        return {
          claims: (tokens.claims() as ProviderTokens['claims'] | undefined) ?? null,
          ...(tokens.refresh_token ? { refreshToken: tokens.refresh_token } : {}),
        };
      } catch (err) {
        throw classify(err);
      }
    },

    async endSessionUrl(postLogoutRedirectUri) {
      const found = await configuration();
      if (!found.serverMetadata().end_session_endpoint) return null;
      return oidc.buildEndSessionUrl(found, {
        client_id: config.clientId,
        post_logout_redirect_uri: postLogoutRedirectUri,
      });
    },

    async verifyLogoutToken(token) {
      const found = await configuration();
      let payload: JWTPayload;
      try {
        ({ payload } = await verifySignature(token, found));
      } catch (err) {
        if (err instanceof GatehouseError && err.code === 'IDENTITY_PROVIDER_UNAVAILABLE')
          throw err;
        throw invalid(err);
      }
      const events = payload.events as Record<string, unknown> | undefined;
      const sub = typeof payload.sub === 'string' ? payload.sub : undefined;
      const sid = typeof payload.sid === 'string' ? payload.sid : undefined;
      const problems = [
        typeof payload.iat !== 'number' && 'no iat',
        typeof payload.jti !== 'string' && 'no jti',
        (typeof events !== 'object' ||
          events === null ||
          typeof events['http://schemas.openid.net/event/backchannel-logout'] !== 'object') &&
          'no back-channel logout event',
        !sub && !sid && 'neither sub nor sid',
        'nonce' in payload && 'a nonce (forbidden in logout tokens)',
      ].filter(Boolean);
      if (problems.length > 0) throw invalid(new Error(`logout token: ${problems.join(', ')}`));
      return {
        ...(sub ? { sub } : {}),
        ...(sid ? { sid } : {}),
        jti: payload.jti as string,
        iat: payload.iat as number,
      };
    },

    async ping() {
      await configuration();
      // Asked now, not answered from the cached discovery: a provider that went down since is
      // named (503) before the sign-in is stored and the browser sent to it.
      const url = `${issuer.href.replace(/\/+$/, '')}/.well-known/openid-configuration`;
      let res: Response;
      try {
        res = await fetch(url, { signal: AbortSignal.timeout(timeout * 1000), redirect: 'manual' });
      } catch (err) {
        throw unavailable(err);
      }
      await res.body?.cancel();
      if (res.status !== 200) throw unavailable(new Error(`discovery answered ${res.status}`));
    },
  };
}
