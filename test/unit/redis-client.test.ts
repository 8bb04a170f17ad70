import { describe, expect, it } from 'vitest';
import { type Backend, createGatehouseRedis } from '../../common/src/redis/client.js';
import type { RedisCommands } from '../../common/src/redis/commands.js';
import type { RedisSubscriber } from '../../common/src/redis/subscriber.js';
import {
  createRedisSubscriber,
  observeRedis,
  pingRedis,
  type RedisClient,
  RedisTimeoutError,
  RedisUnavailableError,
} from '../../common/src/redis.js';
import { silentLogger } from '../helpers/logger.js';

/** A Backend over a fake connection: `reply` decides what each command answers. */
function fakeBackend(reply: (name: string) => Promise<unknown>) {
  const state = {
    ready: true,
    refusal: null as string | null,
    errors: [] as Array<(e: Error) => void>,
  };
  const commands = new Proxy(
    {},
    { get: (_target, name) => () => reply(String(name)) },
  ) as unknown as RedisCommands;
  const backend: Backend = {
    commands,
    isOpen: true,
    isReady: () => state.ready,
    refusal: () => state.refusal,
    connect: async () => {},
    reset: () => {},
    close: async () => {},
    destroy: () => {},
    onError: (listener) => state.errors.push(listener),
    scanSteps: async () => [async () => ({ cursor: '0', keys: ['a', 'b'] })],
  };
  return { backend, state };
}

const subscriber = {} as RedisSubscriber;

describe('the client createRedis builds, over any topology', () => {
  it('refuses a command at once with RedisUnavailableError while the backend refuses, and says so to observers', async () => {
    const { backend, state } = fakeBackend(async () => 'OK');
    const client = createGatehouseRedis(backend, {
      timeoutMs: 1000,
      reconnect: true,
      subscriber: () => subscriber,
    });
    const seen: string[] = [];
    client.observe({ command: (name, _seconds, outcome) => seen.push(`${name} ${outcome}`) });
    state.refusal = 'not connected';
    await expect(client.get('k')).rejects.toBeInstanceOf(RedisUnavailableError);
    state.refusal = null;
    expect(await client.get('k')).toBe('OK');
    expect(seen).toEqual(['get unavailable', 'get ok']);
  });

  it('fails a command that does not answer within the deadline as a timeout', async () => {
    const { backend } = fakeBackend(() => new Promise(() => {}));
    const client = createGatehouseRedis(backend, {
      timeoutMs: 5,
      reconnect: true,
      subscriber: () => subscriber,
    });
    const seen: string[] = [];
    const stop = observeRedis(client, { command: (_n, _s, outcome) => seen.push(outcome) });
    await expect(client.set('k', 'v')).rejects.toBeInstanceOf(RedisTimeoutError);
    stop();
    await expect(client.set('k', 'v')).rejects.toBeInstanceOf(RedisTimeoutError);
    expect(seen).toEqual(['timeout']);
  });

  it('tells observers about connection errors, and refuses everything once closed', async () => {
    const { backend, state } = fakeBackend(async () => 'PONG');
    const client = createGatehouseRedis(backend, {
      timeoutMs: 1000,
      reconnect: true,
      subscriber: () => subscriber,
    });
    const errors: string[] = [];
    client.observe({ connectionError: (err) => errors.push(err.message) });
    for (const listener of state.errors) listener(new Error('ECONNRESET'));
    expect(errors).toEqual(['ECONNRESET']);
    expect(await pingRedis(client)).toBe(true);
    await client.close();
    expect(client.isReady).toBe(false);
    expect(await pingRedis(client)).toBe(false);
    await expect(client.get('k')).rejects.toBeInstanceOf(RedisUnavailableError);
  });

  it('scans while ready, and stops with RedisUnavailableError when it is not', async () => {
    const { backend, state } = fakeBackend(async () => 'OK');
    const client = createGatehouseRedis(backend, {
      timeoutMs: 1000,
      reconnect: true,
      subscriber: () => subscriber,
    });
    const batches: string[][] = [];
    for await (const keys of client.scan('*')) batches.push(keys);
    expect(batches).toEqual([['a', 'b']]);
    state.ready = false;
    await expect(client.scan('*').next()).rejects.toBeInstanceOf(RedisUnavailableError);
    expect(createRedisSubscriber(client, silentLogger)).toBe(subscriber);
  });
});

describe('a plain node-redis client (as tests pass one)', () => {
  const plain = (ping: () => Promise<string>, isReady = true) =>
    ({ isReady, ping }) as unknown as RedisClient;

  it('is pinged with the given deadline', async () => {
    const silent = plain(() => new Promise(() => {}));
    expect(await pingRedis(plain(async () => 'PONG'))).toBe(true);
    expect(await pingRedis(silent, 5)).toBe(false);
    expect(await pingRedis(plain(async () => 'PONG', false))).toBe(false);
  });

  it('reports nothing to observers, and cannot make a subscriber without duplicate()', () => {
    const client = plain(async () => 'PONG');
    expect(observeRedis(client, {})).toBeTypeOf('function');
    expect(() => createRedisSubscriber(client, silentLogger)).toThrow(/cannot make a subscriber/);
  });
});
