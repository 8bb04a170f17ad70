/** POST /auth/logout at the session-service, as a same-origin script would. */
import { JSON_HEADERS } from '../../test/helpers/login.js';

export async function logout(serviceUrl: string, cookie: string): Promise<void> {
  const res = await fetch(`${serviceUrl}/auth/logout`, {
    method: 'POST',
    headers: { ...JSON_HEADERS, cookie },
    body: '{}',
    redirect: 'manual',
  });
  await res.arrayBuffer();
  if (res.status >= 400) throw new Error(`logout answered ${res.status}`);
}
