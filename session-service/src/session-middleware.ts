import { randomBytes } from 'node:crypto';
import { RedisStore } from 'connect-redis';
import session, { type SessionData } from 'express-session';
import { StoreUnavailableError } from '../../common/src/errors.js';
import type { Logger } from '../../common/src/logger.js';
import type { RedisClient } from '../../common/src/redis.js';
import { storedSessionId } from '../../common/src/session-id.js';
import { publishRevocations } from './domain/revocations.js';
import type { Sealer } from './domain/sealing.js';
import {
  type Lifetimes,
  logUnreadable,
  openRecord,
  remainingMs,
  type SessionAuth,
} from './domain/sessions.js';

declare module 'express-session' {
  interface SessionData {
    auth: SessionAuth;
  }
}

type Callback = (err?: unknown, data?: SessionData | null) => void;

/**
 * connect-redis with four changes:
 * - keyed by the stored id (storedSessionId: the SHA-256 of the cookie's id), so the id the
 *   cookie carries is never written to Redis;
 * - records sealed (AES-256-GCM, domain/sealing.ts) with the stored id as context: Redis holds
 *   no username, address or user agent in clear, and a record that does not open (forged, moved
 *   under another id, sealed with a key no longer configured) is no session, and logged;
 * - the TTL is what is left of the idle allowance, capped by the absolute lifetime;
 * - no resurrection: connect-redis writes with a plain SET, so a request that loaded a session
 *   before a logout could write it back afterwards (connect-redis #286, express-session #793).
 *   Here only a login creates a key (SET NX); every other write is SET XX and is dropped when the
 *   session is gone. Store failures surface as StoreUnavailableError (503), never as "no session".
 */
export class GatehouseRedisStore extends RedisStore {
  private readonly creating = new Set<string>();
  private readonly redis: RedisClient;
  private readonly basePrefix: string;
  private readonly ttlOf: (sess: SessionData) => number;
  private readonly records: Sealer;
  private readonly onUnreadable: ReturnType<typeof logUnreadable>;

  constructor(
    redis: RedisClient,
    prefix: string,
    lifetimes: Lifetimes,
    options: { records: Sealer; logger?: Pick<Logger, 'warn'> },
  ) {
    const ttlOf = (sess: SessionData) =>
      sess.auth
        ? Math.ceil(remainingMs(sess.auth, lifetimes, Date.now()) / 1000)
        : lifetimes.idleSeconds;
    super({ client: redis, prefix: `${prefix}sess:`, ttl: ttlOf });
    this.redis = redis;
    this.basePrefix = prefix;
    this.ttlOf = ttlOf;
    this.records = options.records;
    this.onUnreadable = logUnreadable(options.logger);
  }

  /** The next save of `sid` creates it (a login). */
  expectCreate(sid: string): void {
    this.creating.add(sid);
  }

  override async get(sid: string, cb?: Callback) {
    const id = storedSessionId(sid);
    try {
      const raw = await this.redis.get(this.prefix + id);
      const json = openRecord(this.records, id, raw, this.onUnreadable);
      const data = json === null ? null : (JSON.parse(json) as SessionData);
      return cb ? cb(null, data) : data;
    } catch (err) {
      const wrapped = new StoreUnavailableError(err);
      if (cb) return cb(wrapped);
      throw wrapped;
    }
  }

  override async set(sid: string, sess: SessionData, cb?: Callback) {
    const creating = this.creating.delete(sid);
    const id = storedSessionId(sid);
    const key = this.prefix + id;
    try {
      const ttl = this.ttlOf(sess);
      if (ttl <= 0) {
        await this.redis.del(key);
      } else {
        const reply = await this.redis.set(key, this.records.seal(JSON.stringify(sess), id), {
          expiration: { type: 'EX', value: ttl },
          condition: creating ? 'NX' : 'XX',
        });
        // NX refused: an id collision (never with 256 random bits) must not become a login.
        if (creating && reply === null) throw new Error('session id already exists');
      }
      return cb?.();
    } catch (err) {
      const wrapped = new StoreUnavailableError(err);
      if (cb) return cb(wrapped);
      throw wrapped;
    }
  }

  override async touch(sid: string, sess: SessionData, cb?: () => void) {
    return super.touch(storedSessionId(sid), sess, cb);
  }

  override async destroy(sid: string, cb?: Callback) {
    const id = storedSessionId(sid);
    try {
      // A login over an existing session ends the old one here: tell the gateways' caches too.
      if ((await this.redis.del(this.prefix + id)) > 0) {
        await publishRevocations(this.redis, this.basePrefix, [id]);
      }
      return cb?.();
    } catch (err) {
      const wrapped = new StoreUnavailableError(err);
      if (cb) return cb(wrapped);
      throw wrapped;
    }
  }
}

export interface CookieSettings {
  name: string;
  secure: boolean | 'auto';
  domain?: string;
}

/** Secure defaults in one object (lucia's habit); Secure follows the request when not forced. */
export function cookieAttributes(settings: CookieSettings) {
  return {
    httpOnly: true,
    sameSite: 'lax' as const,
    path: '/',
    secure: settings.secure,
    ...(settings.domain ? { domain: settings.domain } : {}),
  };
}

export function createSessionMiddleware(options: {
  store: GatehouseRedisStore;
  secrets: string[];
  cookie: CookieSettings;
}) {
  const middleware = session({
    name: options.cookie.name,
    secret: options.secrets,
    store: options.store,
    // 256 random bits (express-session's default has 192): what Redis holds is its SHA-256.
    genid: () => randomBytes(32).toString('base64url'),
    resave: false,
    saveUninitialized: false,
    rolling: false,
    unset: 'destroy',
    // A browser-session cookie by default; "remember me" gives it a Max-Age at login.
    cookie: { ...cookieAttributes(options.cookie), maxAge: undefined },
  });
  // When loading the session fails (Redis down), express-session has already called next(err);
  // with a sessionID left on the request, its end-of-response hook tries to destroy that
  // session and calls next(err) a second time after our 503 went out, and Express then destroys
  // the keep-alive connection the gateway reuses (a 502 on the gateway's next /auth request).
  return ((req, res, next) =>
    middleware(req, res, (err?: unknown) => {
      if (err) Reflect.deleteProperty(req, 'sessionID');
      next(err);
    })) as typeof middleware;
}
