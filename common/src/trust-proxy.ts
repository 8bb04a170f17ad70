import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import proxyaddr from 'proxy-addr';

/** Is the peer at `address` (hop `hop`, 0 = the connection's peer) a trusted proxy? */
export type TrustFn = (address: string, hop: number) => boolean;

/**
 * TRUST_PROXY compiled as Express compiles `trust proxy` (true, a hop count, or a list of
 * addresses, subnets and the names loopback/linklocal/uniquelocal), with the verdict on the
 * peer kept per connection (it is the same peer throughout).
 */
export function createTrust(setting: boolean | number | string | string[]) {
  let fn: TrustFn;
  if (setting === true) fn = () => true;
  else if (setting === false) fn = () => false;
  else if (typeof setting === 'number') fn = (_addr, hop) => hop < setting;
  else
    fn = proxyaddr.compile(
      typeof setting === 'string' ? setting.split(',').map((s) => s.trim()) : setting,
    );
  const peers = new WeakMap<Socket, boolean>();
  return {
    fn,
    /** Is the peer of this request a trusted proxy? */
    peer(req: IncomingMessage): boolean {
      const known = peers.get(req.socket);
      if (known !== undefined) return known;
      const verdict = fn(req.socket.remoteAddress ?? '', 0);
      peers.set(req.socket, verdict);
      return verdict;
    },
    /**
     * The client's address as Express computes `req.ip` (proxy-addr): the X-Forwarded-For chain,
     * right to left, up to the first untrusted hop; the peer itself when it is not trusted.
     */
    clientIp(req: IncomingMessage, peerTrusted: boolean): string {
      if (!peerTrusted || !req.headers['x-forwarded-for']) return req.socket.remoteAddress ?? '';
      return proxyaddr(req, fn);
    },
  };
}
export type Trust = ReturnType<typeof createTrust>;
