/** What `npm run users` prints: results on stdout, refusals and warnings on stderr. */
import type { User } from '../domain/users.js';

/** A value quoted for a message: `"alice"`. */
export function quote(value: string): string {
  return JSON.stringify(value);
}

export function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

export function complain(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Terminal output must not carry control characters from a hand-edited file. */
function printable(value: string): string {
  return value.replace(
    /[\p{Cc}\p{Cf}]/gu,
    (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`,
  );
}

function listLine(user: User): string {
  const groups = user.groups.length > 0 ? user.groups.join(',') : '-';
  const state = user.disabled ? 'disabled' : 'enabled';
  const fields = [user.username, `groups=${groups}`, `email=${user.email || '-'}`, state];
  return fields.map(printable).join('\t');
}

/** One tab-separated line per user, or a JSON array; never a password hash. */
export function printUsers(users: User[], options: { json: boolean; usersFile: string }): void {
  if (options.json) {
    const out = users.map(({ id, username, groups, email, disabled }) => {
      return { id, username, groups, email, disabled };
    });
    say(JSON.stringify(out, null, 2));
    return;
  }
  if (users.length === 0) complain(`no users in ${options.usersFile}`);
  for (const user of users) say(listLine(user));
}

export function printSessionsEnded(username: string, ended: number): void {
  say(`ended ${ended} session${ended === 1 ? '' : 's'} of ${quote(username)}`);
}

export function printTokensEnded(username: string, ended: number): void {
  say(`ended ${ended} access token${ended === 1 ? '' : 's'} of ${quote(username)}`);
}
