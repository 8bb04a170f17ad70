/** What a browser test runs against, started in one call. */
import { type System, startSystem } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { type TestUser, writeTestUsers } from '../helpers/users.js';
import { launchBrowser, settleAll, type TestBrowser } from './browser.js';

export interface BrowserSystem {
  redis: RedisServer;
  system: System;
  /** One per entry of `browsers`, in that order. */
  browsers: TestBrowser[];
  /** Closes the browsers, stops the services and Redis. */
  stop(): Promise<void>;
}

/**
 * What a browser test runs against: Redis, a users file of `users`, the three services
 * (startSystem with `system`'s environments) and one Chromium per entry of `browsers` (one by
 * default), the services and browsers started side by side. If any part fails to start, what did
 * start is stopped before the error is thrown.
 */
export async function startBrowserSystem(options: {
  users: TestUser[];
  system?: Omit<Parameters<typeof startSystem>[0], 'redisUrl' | 'usersFile'>;
  browsers?: Parameters<typeof launchBrowser>[0][];
}): Promise<BrowserSystem> {
  const redis = await startRedis();
  let system: System | undefined;
  const browsers: TestBrowser[] = [];
  const stop = async () => {
    await Promise.all(browsers.map((b) => b?.close()));
    await system?.stop();
    await redis.stop();
  };
  try {
    const users = await writeTestUsers(options.users);
    await settleAll([
      startSystem({ redisUrl: redis.url, usersFile: users.path, ...options.system }).then((s) => {
        system = s;
      }),
      ...(options.browsers ?? [{}]).map((o, i) =>
        launchBrowser(o).then((b) => {
          browsers[i] = b;
        }),
      ),
    ]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { redis, system: system as System, browsers, stop };
}
