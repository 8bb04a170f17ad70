/**
 * Scenario (e): a faithful reference of the origin article's design (../shared/docs/origin-article.txt):
 * ONE Express process with express-session + connect-redis, the session read from Redis on every
 * request, serving the same home page after login. Kept only as the benchmark's baseline. Unlike
 * the article it stores no password and escapes the name: those defects cost nothing to fix and
 * would only make the baseline look different, not faster.
 */
// connect-redis on purpose: this app models the tutorial's store as it is (a plain SET per save,
// no conditional writes), the baseline Gatehouse is measured against, not a store Gatehouse uses.
import { RedisStore } from 'connect-redis';
import express from 'express';
import session from 'express-session';
import { createClient } from 'redis';
import { homePage } from '../demo-app/src/views.js';

declare module 'express-session' {
  interface SessionData {
    username: string;
  }
}

const port = Number(process.env.PORT ?? 3100);
const redis = createClient({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' });
redis.on('error', () => {});
await redis.connect();

const app = express();
// As the article: both body parsers on every request, and trust the proxy in front.
app.use(express.json());
app.use(express.urlencoded({ extended: true }));
app.set('trust proxy', 1);
app.use(
  session({
    store: new RedisStore({ client: redis, prefix: 'baseline:' }),
    secret: process.env.SESSION_SECRET ?? 'baseline-secret-baseline-secret-0000',
    resave: false,
    saveUninitialized: false,
    cookie: { httpOnly: true, sameSite: 'lax', maxAge: 1000 * 60 * 10 },
  }),
);
app.post('/login', (req, res) => {
  req.session.username = String((req.body as { username?: string }).username ?? '');
  res.end('success');
});
app.get('/', (req, res) => {
  if (!req.session.username) {
    res.status(401).end('login first');
    return;
  }
  res.type('html').send(
    homePage({
      username: req.session.username,
      groups: ['bench'],
      email: '',
      expiresAt: '',
      // As the gateway's page shows it (the same page, the same work).
      amr: ['pwd'],
    }),
  );
});
app.get('/healthz', (_req, res) => {
  res.json({ status: 'ok' });
});
// The line test/helpers/processes.ts reads the port from (PORT may be 0: any free port).
const server = app.listen(port, '127.0.0.1', () => {
  const address = server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  console.log(`baseline listening on http://127.0.0.1:${bound}`);
});
