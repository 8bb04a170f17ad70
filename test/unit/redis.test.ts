import { ClientOfflineError } from 'redis';
import { describe, expect, it } from 'vitest';
import { backoff, withDeadline } from '../../common/src/redis/deadline.js';
import {
  outcomeOf,
  RedisTimeoutError,
  RedisUnavailableError,
} from '../../common/src/redis/errors.js';
import { clusterOptions, socketTimeoutFor } from '../../common/src/redis/node-options.js';
import { clusterNodeUrl, describeRedis, parseHostPort } from '../../common/src/redis/options.js';
import { type ScanStep, scanAll } from '../../common/src/redis/scan.js';
import { countKeys, escapeGlob, type RedisClient } from '../../common/src/redis.js';

describe('Redis addresses (REDIS_SENTINELS and REDIS_CLUSTER_NODES entries)', () => {
  it.each([
    ['10.0.0.1:26379', { host: '10.0.0.1', port: 26379 }],
    [' redis.internal:6379 ', { host: 'redis.internal', port: 6379 }],
    ['[::1]:26380', { host: '::1', port: 26380 }],
    ['[2001:db8::7]:1', { host: '2001:db8::7', port: 1 }],
    ['host:65535', { host: 'host', port: 65535 }],
  ])('reads %j as host and port', (text, node) => {
    expect(parseHostPort(text)).toEqual(node);
  });

  it.each([
    'nope',
    'host:',
    ':6379',
    'host:0',
    'host:65536',
    'host:70000',
    '::1:6379',
    '[::1]',
    'a b:6379',
    'redis://host:6379',
  ])('refuses %j', (text) => {
    expect(parseHostPort(text)).toBeNull();
  });

  it('turns cluster entries into redis:// URLs and keeps URLs as given', () => {
    expect(clusterNodeUrl('a:7000')).toBe('redis://a:7000');
    expect(clusterNodeUrl('[::1]:7000')).toBe('redis://[::1]:7000');
    expect(clusterNodeUrl('rediss://b.example:7001')).toBe('rediss://b.example:7001');
    expect(clusterNodeUrl('redis://u:p@c:7002')).toBe('redis://u:p@c:7002');
  });

  it('refuses cluster entries without a port, or not URLs or host:port', () => {
    expect(clusterNodeUrl('redis://a')).toBeNull();
    expect(clusterNodeUrl('b:70000')).toBeNull();
    expect(clusterNodeUrl('http://a:7000')).toBeNull();
    expect(clusterNodeUrl('redis://[nope:7000')).toBeNull();
  });
});

describe('describing the topology for logs', () => {
  it('never shows a password', () => {
    expect(describeRedis({ url: 'redis://gatehouse:s3cret@redis:6379/2' })).toBe(
      'redis://gatehouse:***@redis:6379/2',
    );
    expect(
      describeRedis({ cluster: { nodes: ['redis://:s3cret@a:7000', 'redis://b:7001'] } }),
    ).toBe('cluster redis://:***@a:7000,redis://b:7001');
  });

  it('names the sentinels and the master they watch', () => {
    expect(
      describeRedis({
        sentinel: {
          name: 'main',
          nodes: [
            { host: '10.0.0.1', port: 26379 },
            { host: '10.0.0.2', port: 26379 },
          ],
        },
      }),
    ).toBe('sentinels 10.0.0.1:26379,10.0.0.2:26379 (master main)');
  });

  it('shows a URL it cannot parse as given', () => {
    expect(describeRedis({ url: 'not a url' })).toBe('not a url');
  });
});

describe('reconnect backoff', () => {
  it('doubles from 50 ms and stops growing at 2 s, plus up to 100 ms of jitter', () => {
    const none = () => 0;
    expect([0, 1, 2, 3, 4, 5, 6, 7, 50].map((n) => backoff(n, none))).toEqual([
      50, 100, 200, 400, 800, 1600, 2000, 2000, 2000,
    ]);
    expect(backoff(0, () => 0.999)).toBe(149);
    expect(backoff(100, () => 0.999)).toBe(2099);
  });
});

describe('connection settings', () => {
  it('replaces a silent connection after 3 command deadlines, never sooner than 3 s', () => {
    expect(socketTimeoutFor(500)).toBe(3000);
    expect(socketTimeoutFor(1000)).toBe(3000);
    expect(socketTimeoutFor(2000)).toBe(6000);
  });

  it('gives every cluster node the credentials and TLS of the first root URL, unless set', () => {
    const fromUrl = clusterOptions(
      { cluster: { nodes: ['rediss://gh:p%40ss@a:7000', 'rediss://b:7001'] } },
      1000,
    );
    expect(fromUrl.defaults).toMatchObject({
      username: 'gh',
      password: 'p@ss',
      disableOfflineQueue: true,
      socket: { tls: true, keepAlive: true },
    });
    expect(fromUrl.rootNodes).toEqual([
      { url: 'rediss://gh:p%40ss@a:7000' },
      { url: 'rediss://b:7001' },
    ]);
    const explicit = clusterOptions(
      { cluster: { nodes: ['redis://gh:old@a:7000'] }, username: 'u', password: 'new' },
      1000,
    );
    expect(explicit.defaults).toMatchObject({ username: 'u', password: 'new' });
    expect(explicit.defaults.socket).not.toHaveProperty('tls');
  });

  it('does not reconnect one-shot connections (reconnect: false)', () => {
    const once = clusterOptions({ cluster: { nodes: ['redis://a:7000'] }, reconnect: false }, 1000);
    expect(once.defaults.socket.reconnectStrategy).toBe(false);
  });
});

describe('how a command ended, for metrics', () => {
  it('counts refusals without a send as unavailable, deadlines as timeout, the rest as error', () => {
    expect(outcomeOf(new RedisTimeoutError('slow'))).toBe('timeout');
    expect(outcomeOf(new RedisUnavailableError('down'))).toBe('unavailable');
    expect(outcomeOf(new ClientOfflineError())).toBe('unavailable');
    expect(outcomeOf(new Error('The queue is full'))).toBe('unavailable');
    expect(outcomeOf(new Error('WRONGTYPE'))).toBe('error');
  });
});

describe('command deadlines', () => {
  it('rejects with RedisTimeoutError when the work does not settle in time', async () => {
    const never = new Promise<string>(() => {});
    await expect(withDeadline(never, 5, 'GET')).rejects.toBeInstanceOf(RedisTimeoutError);
  });

  it('passes the reply or the error of work that settles in time', async () => {
    await expect(withDeadline(Promise.resolve('PONG'), 1000, 'PING')).resolves.toBe('PONG');
    await expect(withDeadline(Promise.reject(new Error('ERR')), 1000, 'GET')).rejects.toThrow(
      'ERR',
    );
  });
});

describe('SCAN', () => {
  it('escapes glob characters so a prefix matches literally', () => {
    expect(escapeGlob('app*[1]?\\:')).toBe('app\\*\\[1\\]\\?\\\\:');
  });

  it('walks every node to the end of its cursor, checking readiness before each step', async () => {
    const node =
      (pages: string[][]): ScanStep =>
      async (cursor) => {
        const i = Number(cursor);
        return { cursor: i + 1 < pages.length ? String(i + 1) : '0', keys: pages[i] ?? [] };
      };
    let checks = 0;
    const batches: string[][] = [];
    for await (const keys of scanAll([node([['a'], ['b', 'c']]), node([['d']])], '*', 10, () => {
      checks++;
    }))
      batches.push(keys);
    expect(batches).toEqual([['a'], ['b', 'c'], ['d']]);
    expect(checks).toBe(3);
  });

  it('counts nothing on a connection not made by createRedis', async () => {
    const plain = { isReady: true } as unknown as RedisClient;
    expect(await countKeys(plain, '*')).toBeNull();
  });
});
