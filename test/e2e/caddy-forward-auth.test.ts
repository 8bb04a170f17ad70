/**
 * examples/caddy/Caddyfile, as it is, in a real Caddy (Debian's) in front of a real
 * session-service, Redis and a recording upstream: held to the policy every way in is held to.
 */
import { startCaddy } from '../helpers/proxies.js';
import { describeRecipePolicy } from '../helpers/recipe-policy.js';

describeRecipePolicy('Caddy forward_auth (examples/caddy/Caddyfile)', async (deps) => {
  const caddy = await startCaddy({
    sessionService: `127.0.0.1:${deps.sessionService.port}`,
    protectedUpstream: deps.upstream.address,
    audience: 'default',
    internalToken: deps.internalToken,
  });
  return { ...caddy, audience: 'default' };
});
