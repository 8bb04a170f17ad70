/**
 * Usernames: one spelling per account, so that `Alice`, `ＡＬＩＣＥ` and `al<ZWSP>ice` can never be
 * three accounts that backends and people take for `alice`.
 *
 * The canonical form, in the spirit of PRECIS UsernameCaseMapped (RFC 8265) with a narrower
 * repertoire:
 * 1. Unicode NFKC: full-width, ligature and other compatibility forms become their plain letters
 *    (`ＡＬＩＣＥ` → `ALICE`, `ﬁ` → `fi`), combining sequences their precomposed letters.
 * 2. Case folded: upper case, then lower case, then NFKC again, until stable (JavaScript has no
 *    Unicode toCaseFold; this matches it where it matters here: `ß`/`ẞ` → `ss`, Greek `ς`/`σ`/`Σ`
 *    are one letter, Turkish dotless `ı` → `i`).
 * 3. Refused outright, never removed: control (Cc), format (Cf: zero-width space and joiners, BOM,
 *    bidi controls), other default-ignorable (variation selectors, Hangul fillers), whitespace,
 *    unassigned, private-use and lone surrogates. Dropping them silently would let two spellings
 *    that differ in invisible characters reach one account without anyone noticing.
 * 4. The repertoire: letters (any script, `\p{L}`), the digits 0-9, and `.`, `_`, `-`, `@`;
 *    combining marks only after a letter, and not in Latin, Greek or Cyrillic names (every letter
 *    of those has a precomposed form, so a mark left over after NFKC only makes a look-alike, as
 *    `İ` → `i` + U+0307 does); no name mixing Latin, Greek and Cyrillic letters (`аlice` with a
 *    Cyrillic `а`). It starts and ends with a letter, a digit (or a mark).
 * 5. 1 to 64 characters (code points) once canonical; input over 256 UTF-16 units is refused
 *    before any normalisation.
 *
 * Not covered: whole-script confusables (an all-Cyrillic name that reads like a Latin one);
 * Unicode TR39 skeletons would be needed for those.
 */

export const USERNAME_MAX = 64;
/** Longer input is refused before normalising it (NFKC can expand a character 18-fold). */
export const USERNAME_INPUT_MAX = 256;

export type UsernameProblem =
  | 'empty'
  | 'too_long'
  | 'not_unicode'
  | 'control'
  | 'invisible'
  | 'whitespace'
  | 'unassigned'
  | 'character'
  | 'digit'
  | 'edge'
  | 'mark'
  | 'mixed_scripts';

export type CanonicalUsername =
  | { ok: true; username: string }
  | { ok: false; problem: UsernameProblem; message: string };

const LONE_SURROGATE = /\p{Cs}/u;
const CONTROL = /\p{Cc}/u;
/** Format characters and everything else Unicode says to render invisibly. */
const INVISIBLE = /[\p{Cf}\p{Default_Ignorable_Code_Point}]/u;
const WHITESPACE = /[\p{Z}\s]/u;
const UNASSIGNED = /[\p{Cn}\p{Co}]/u;
const ALLOWED = /^[\p{L}\p{M}0-9._@-]$/u;
const LETTER_OR_DIGIT = /^[\p{L}0-9]$/u;
const MARK = /\p{M}/u;
const SCRIPTS = [
  ['Latin', /\p{Script=Latin}/u],
  ['Greek', /\p{Script=Greek}/u],
  ['Cyrillic', /\p{Script=Cyrillic}/u],
] as const;

/** `U+200B` */
export function codePointName(char: string): string {
  return `U+${(char.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/** NFKC and case folding, repeated until stable (`ẞ` needs two rounds: `ẞ` → `ß` → `ss`). */
function fold(value: string): string {
  let current = value;
  for (let round = 0; round < 4; round++) {
    const next = current.normalize('NFKC').toUpperCase().toLowerCase().normalize('NFKC');
    if (next === current) break;
    current = next;
  }
  return current;
}

function refuse(problem: UsernameProblem, message: string): CanonicalUsername {
  return { ok: false, problem, message };
}

/** The first character of `value` matching `pattern`, for the message. */
function first(value: string, pattern: RegExp): string {
  return [...value].find((c) => pattern.test(c)) ?? '';
}

/**
 * The canonical spelling of a username, or why there is none. Pure and total: any string in, no
 * exceptions out. `canonicalUsername(c.username)` gives `c.username` back.
 */
export function canonicalUsername(input: string): CanonicalUsername {
  if (input.length === 0) return refuse('empty', 'username must not be empty');
  if (input.length > USERNAME_INPUT_MAX)
    return refuse('too_long', `username must be at most ${USERNAME_MAX} characters`);
  if (LONE_SURROGATE.test(input))
    return refuse('not_unicode', 'username is not valid Unicode (it holds a lone surrogate)');
  const name = fold(input);
  const found = (pattern: RegExp) => codePointName(first(name, pattern));
  if (CONTROL.test(name))
    return refuse('control', `username must not contain control characters (${found(CONTROL)})`);
  if (INVISIBLE.test(name))
    return refuse(
      'invisible',
      `username must not contain invisible characters such as zero-width spaces, joiners or direction marks (${found(INVISIBLE)})`,
    );
  if (WHITESPACE.test(name))
    return refuse('whitespace', `username must not contain spaces (${found(WHITESPACE)})`);
  if (UNASSIGNED.test(name))
    return refuse(
      'unassigned',
      `username must not contain unassigned or private-use characters (${found(UNASSIGNED)})`,
    );
  const chars = [...name];
  const bad = chars.find((c) => !ALLOWED.test(c));
  if (bad !== undefined) {
    return /\p{Nd}/u.test(bad)
      ? refuse('digit', `username may use the digits 0-9 only, not ${JSON.stringify(bad)}`)
      : refuse(
          'character',
          `username must not contain ${JSON.stringify(bad)} (${codePointName(bad)}); use letters, digits 0-9, ".", "_", "-" or "@"`,
        );
  }
  if (chars.length > USERNAME_MAX)
    return refuse('too_long', `username must be at most ${USERNAME_MAX} characters`);
  const last = chars[chars.length - 1] as string;
  if (!LETTER_OR_DIGIT.test(chars[0] as string) || !(LETTER_OR_DIGIT.test(last) || MARK.test(last)))
    return refuse('edge', 'username must start and end with a letter or a digit');
  const scripts = SCRIPTS.filter(([, pattern]) => pattern.test(name)).map(([script]) => script);
  if (scripts.length > 1)
    return refuse(
      'mixed_scripts',
      `username must not mix ${scripts.join(' and ')} letters (they hold look-alikes of each other)`,
    );
  if (scripts.length === 1 && MARK.test(name))
    return refuse(
      'mark',
      `username must not contain a combining mark (${found(MARK)}) in ${scripts[0]} letters; write the letter without it (e.g. "i" for "İ")`,
    );
  return { ok: true, username: name };
}

/**
 * The look-alike key of any string: two names with the same key are one account to a person
 * reading them. Canonical names are their own key; for anything else (a hand-edited users file,
 * a login attempt) the key is the folded name without the invisible characters, whitespace and
 * left-over combining marks that canonicalUsername refuses. Used to refuse adding a look-alike,
 * to find clashes in a users file and to throttle all spellings of an account as one.
 */
export function usernameKey(input: string): string {
  let key = fold(input.slice(0, USERNAME_INPUT_MAX * 4).replace(/\p{Cs}/gu, '\uFFFD'));
  key = key.replace(/[\p{Cc}\p{Cf}\p{Default_Ignorable_Code_Point}\p{Z}\s]/gu, '');
  if (SCRIPTS.some(([, pattern]) => pattern.test(key))) key = key.replace(/\p{M}/gu, '');
  return fold(key);
}

/** A name for a log line or a terminal: quoted, with invisible and control characters spelled out. */
export function visibleUsername(name: string): string {
  return JSON.stringify(
    name.replace(/[\p{Cc}\p{Cf}\p{Default_Ignorable_Code_Point}\p{Z}\p{Cs}]/gu, (c) =>
      c === ' ' ? c : `\\u{${(c.codePointAt(0) ?? 0).toString(16)}}`,
    ),
  ).replaceAll('\\\\u{', '\\u{');
}
