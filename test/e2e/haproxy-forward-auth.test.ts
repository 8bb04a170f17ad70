/**
 * examples/haproxy/haproxy.cfg and gatehouse.lua, as they are, in a real HAProxy (Debian's, with
 * its Lua HTTP client) in front of a real session-service, Redis and a recording upstream: held
 * to the policy every way in is held to.
 */
import { startHaproxy } from '../helpers/proxies.js';
import { describeRecipePolicy } from '../helpers/recipe-policy.js';

describeRecipePolicy('HAProxy with Lua (examples/haproxy/haproxy.cfg)', async (deps) => {
  const haproxy = await startHaproxy({
    sessionService: `127.0.0.1:${deps.sessionService.port}`,
    protectedUpstream: deps.upstream.address,
    audience: 'default',
    internalToken: deps.internalToken,
  });
  return { ...haproxy, audience: 'default' };
});
