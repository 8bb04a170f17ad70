/** Scenario (f): an Express hello-world route, the framework's own ceiling on this machine. */
import express from 'express';

const app = express();
app.get('/', (_req, res) => {
  res.send('hello');
});
app.get('/healthz', (_req, res) => {
  res.json({ status: 'ok' });
});
app.listen(Number(process.env.PORT ?? 3200), '127.0.0.1');
