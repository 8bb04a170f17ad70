/**
 * No resurrection of a logged-out session: a request that loaded the session before a logout
 * must not write it back when it ends (express-session saves at the end of every request). The
 * Redis store only ever updates (SET XX); the same race run against connect-redis as the tutorial
 * uses it shows the session coming back, so the harness is known to catch it.
 */
// connect-redis on purpose: PlainStore below is the plain store as the tutorial uses it, to show
// the logout race it loses (a slow request writes a logged-out session back) and ours does not.
import { RedisStore } from 'connect-redis';
import express, { type Express } from 'express';
import session, { type SessionData } from 'express-session';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisClient, type RedisClient } from '../../common/src/redis.js';
import type { SessionServiceConfig } from '../../session-service/src/config.js';
import { createRedisSessionRepository } from '../../session-service/src/domain/session-repository-redis.js';
import type { Lifetimes } from '../../session-service/src/domain/sessions.js';
import {
  createSessionMiddleware,
  SessionRepositoryStore,
} from '../../session-service/src/session-middleware.js';
import { silentLogger } from '../helpers/logger.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import {
  buildSessionService,
  cookiePairOf,
  jsonLogout,
  NO_THROTTLE,
  type SessionServiceApp,
  sidOf,
  TEST_SECRET,
} from '../helpers/session-service.js';
import {
  sealedRecordOf,
  sessionKeyOf,
  storedRecordAt,
  storedSessionId,
  testRecords,
} from '../helpers/stored-sessions.js';
import { writeTestUsers } from '../helpers/users.js';

type Service = SessionServiceApp;

const PASSWORD = 'correct horse battery';

let redis: RedisServer;
let aliceId: string;
/** Default lifetimes. */
let plain: Service;

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeTestUsers([{ username: 'alice', password: PASSWORD }]);
  aliceId = users.users[0]?.id ?? '';
  plain = await buildSessionService({
    redisUrl: redis.url,
    usersFile: users.path,
    throttleLimits: NO_THROTTLE,
  });
});

afterAll(async () => {
  await plain?.close();
  await redis?.stop();
});

const sessionKey = (sid: string) => sessionKeyOf(sid);
const userIndex = () => `gh:user:{${aliceId}}:sessions`;

/** Logs alice in with JSON and returns the cookie pair (`gatehouse=...`) and the session id. */
async function loggedIn(service: Service) {
  const res = await request(service.app)
    .post('/auth/login')
    .set('content-type', 'application/json')
    .send(JSON.stringify({ username: 'alice', password: PASSWORD }));
  expect(res.status).toBe(200);
  return { pair: cookiePairOf(res.headers['set-cookie']), sid: sidOf(res.headers['set-cookie']) };
}

const validate = (service: Service, cookie: string) =>
  request(service.app).get('/auth/validate').set('cookie', cookie);

function deferred<T = void>() {
  let resolve: (value: T) => void = () => {};
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function lifetimesOf(config: SessionServiceConfig): Lifetimes {
  const env = config.env;
  return {
    idleSeconds: env.SESSION_IDLE_TIMEOUT,
    absoluteSeconds: env.SESSION_ABSOLUTE_TIMEOUT,
    rememberIdleSeconds: env.SESSION_IDLE_TIMEOUT,
    rememberAbsoluteSeconds: env.SESSION_ABSOLUTE_TIMEOUT,
  };
}

/**
 * Another instance of the session-service's HTTP layer on the same Redis and secret: a slow
 * route loads the session, waits until the test releases it, changes the session and ends,
 * after which express-session saves it.
 */
function slowApp(sessionMiddleware: express.RequestHandler) {
  const loaded = deferred<string>();
  const release = deferred();
  const app: Express = express();
  app.get('/slow', sessionMiddleware, async (req, res) => {
    loaded.resolve(req.session.auth?.userId ?? '');
    await release.promise;
    const auth = req.session.auth;
    if (auth) req.session.auth = { ...auth, ua: 'written-by-slow-request' };
    res.json({ saved: true });
  });
  return { app, loaded: loaded.promise, release: release.resolve };
}

/**
 * connect-redis as it is (a plain SET), keyed and sealed as the Redis session repository does, so
 * that only the conditional writes differ.
 */
class PlainStore extends RedisStore {
  override async get(sid: string, cb?: (err: unknown, data?: SessionData | null) => void) {
    const record = await storedRecordAt(this.client, sessionKeyOf(sid));
    const data = record === null ? null : (JSON.parse(record) as SessionData);
    cb?.(null, data);
    return data;
  }
  override async set(sid: string, sess: SessionData, cb?: (err?: unknown) => void) {
    await this.client.set(sessionKeyOf(sid), sealedRecordOf(sid, sess), {
      expiration: { type: 'EX', value: 60 },
    });
    cb?.();
  }
  override touch(sid: string, sess: SessionData, cb?: () => void) {
    return super.touch(storedSessionId(sid), sess, cb);
  }
  override destroy(sid: string, cb?: (err?: unknown) => void) {
    return super.destroy(storedSessionId(sid), cb);
  }
}

describe('no resurrection of a logged-out session (connect-redis race)', () => {
  let client: RedisClient;
  beforeAll(async () => {
    client = createRedisClient({ url: redis.url }, silentLogger);
    await client.connect();
  });
  afterAll(async () => {
    await client?.close();
  });

  /** Start the slow request, log out through the real service meanwhile, then release it. */
  async function raceLogout(app: Express, loaded: Promise<string>, release: () => void) {
    const { pair, sid } = await loggedIn(plain);
    const slow = request(app)
      .get('/slow')
      .set('cookie', pair)
      .then((r) => r);
    expect(await loaded).toBe(aliceId);
    const out = await jsonLogout(plain.app, pair);
    expect(out.status).toBe(204);
    expect(await redis.client.exists(sessionKey(sid))).toBe(0);
    release();
    expect((await slow).status).toBe(200);
    return { pair, sid };
  }

  it('a request that loaded the session before a logout cannot write it back', async () => {
    const store = new SessionRepositoryStore(
      createRedisSessionRepository({
        redis: client,
        prefix: 'gh:',
        lifetimes: lifetimesOf(plain.config),
        records: testRecords,
      }),
    );
    const middleware = createSessionMiddleware({
      store,
      secrets: [TEST_SECRET],
      cookie: { name: 'gatehouse', secure: 'auto' },
    });
    const { app, loaded, release } = slowApp(middleware);
    const { pair, sid } = await raceLogout(app, loaded, release);
    expect(await redis.client.exists(sessionKey(sid))).toBe(0);
    expect((await validate(plain, pair)).status).toBe(401);
    expect(await redis.client.zScore(userIndex(), storedSessionId(sid))).toBeNull();

    // The create path (SET NX) still works: a fresh login makes its key.
    const again = await loggedIn(plain);
    expect(await redis.client.exists(sessionKey(again.sid))).toBe(1);
    expect(await redis.client.pTTL(sessionKey(again.sid))).toBeGreaterThan(0);
    expect((await validate(plain, again.pair)).status).toBe(200);
  });

  it('the harness reproduces the race: with a plain connect-redis store the session comes back', async () => {
    // Why SessionRepositoryStore only ever updates: connect-redis writes with a plain SET.
    const plainStore = new PlainStore({ client, prefix: 'gh:sess:' });
    const middleware = session({
      name: 'gatehouse',
      secret: [TEST_SECRET],
      store: plainStore,
      resave: false,
      saveUninitialized: false,
    });
    const { app, loaded, release } = slowApp(middleware);
    const { pair, sid } = await raceLogout(app, loaded, release);
    try {
      expect(await redis.client.exists(sessionKey(sid))).toBe(1);
      expect((await validate(plain, pair)).status).toBe(200);
    } finally {
      await redis.client.del(sessionKey(sid));
    }
  });
});
