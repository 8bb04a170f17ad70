/** Scenario (f): an Express hello-world route, the framework's own ceiling on this machine. */
import express from 'express';

const app = express();
app.get('/', (_req, res) => {
  res.send('hello');
});
app.get('/healthz', (_req, res) => {
  res.json({ status: 'ok' });
});
// The line test/helpers/processes.ts reads the port from (PORT may be 0: any free port).
const server = app.listen(Number(process.env.PORT ?? 3200), '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : '';
  console.log(`hello-world listening on http://127.0.0.1:${port}`);
});
