import { describe, expect, it } from 'vitest';
import {
  canonicalUsername,
  USERNAME_INPUT_MAX,
  USERNAME_MAX,
  type UsernameProblem,
  usernameKey,
  visibleUsername,
} from '../../session-service/src/domain/usernames.js';

/**
 * Every code point except surrogates, planes 4-13 (unassigned) and planes 15-16 (private use):
 * the characters that canonicalUsername could meet and normalise.
 */
const ALL_CHARS: string[] = [];
for (let cp = 0; cp <= 0xeffff; cp++) {
  if ((cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x40000 && cp <= 0xdffff)) continue;
  ALL_CHARS.push(String.fromCodePoint(cp));
}

/** Every code point of a general category (or other property), from Unicode's own tables. */
const codePoints = (pattern: RegExp) => ALL_CHARS.filter((c) => pattern.test(c));

/** ASCII → full-width forms (U+FF01..U+FF5E). */
const fullWidth = (s: string) =>
  s.replace(/[!-~]/g, (c) => String.fromCodePoint((c.codePointAt(0) as number) + 0xfee0));
/** a-z → mathematical bold letters (U+1D41A..). */
const mathBold = (s: string) =>
  s.replace(/[a-z]/g, (c) => String.fromCodePoint((c.codePointAt(0) as number) - 97 + 0x1d41a));
/** a-z → circled letters (U+24D0..). */
const circled = (s: string) =>
  s.replace(/[a-z]/g, (c) => String.fromCodePoint((c.codePointAt(0) as number) - 97 + 0x24d0));
const alternateCase = (s: string) =>
  [...s].map((c, i) => (i % 2 ? c.toUpperCase() : c.toLowerCase())).join('');

const ok = (input: string) => canonicalUsername(input);
function canonical(input: string): string | UsernameProblem {
  const result = canonicalUsername(input);
  return result.ok ? result.username : result.problem;
}

/** Spellings of one canonical name: every one must come out as it. */
const ASCII_NAMES = ['alice', 'bob.smith', 'carol_1', 'dave-x', 'erin@example.com', 'a', '007'];
const SPELLINGS: Array<[string, string]> = ASCII_NAMES.flatMap((name) => [
  [name, name],
  [name.toUpperCase(), name],
  [alternateCase(name), name],
  [fullWidth(name), name],
  [fullWidth(name.toUpperCase()), name],
  [mathBold(name), name],
  [circled(name), name],
]);

const UNICODE_SPELLINGS: Array<[string, string, string]> = [
  // compatibility forms
  ['ligature fi', 'ﬁona', 'fiona'],
  ['ligature ffl', 'waﬄe', 'waffle'],
  ['ligature st', 'ﬆar', 'star'],
  ['roman numeral', 'louisⅫ', 'louisxii'],
  ['superscript digit', 'user²', 'user2'],
  ['full-width digits', 'user１２３', 'user123'],
  ['full-width at and dot', 'erin＠example．com', 'erin@example.com'],
  ['square katakana', '㌔', 'キロ'],
  ['half-width katakana', 'ｶﾀｶﾅ', 'カタカナ'],
  ['long s', 'ſam', 'sam'],
  ['kelvin sign', 'Kelvin', 'kelvin'],
  ['angstrom sign', 'Ångström', 'ångström'],
  // combining sequences and precomposed letters
  ['precomposed', 'josé', 'josé'],
  ['combining acute', 'jose\u0301', 'josé'],
  ['upper, combining', 'JOSE\u0301', 'josé'],
  ['two marks, one order', 'a\u0323\u0302', 'ậ'],
  ['two marks, other order', 'a\u0302\u0323', 'ậ'],
  ['precomposed two marks', 'Ậ', 'ậ'],
  ['hangul jamo', '\u1100\u1161', '가'],
  // case folding beyond toLowerCase
  ['German sharp s', 'straße', 'strasse'],
  ['German capital sharp s', 'STRAẞE', 'strasse'],
  ['German ss', 'STRASSE', 'strasse'],
  ['Greek capital sigma', 'ΟΔΟΣ', 'οδος'],
  ['Greek medial sigma at the end', 'οδοσ', 'οδος'],
  ['Greek final sigma', 'οδος', 'οδος'],
  ['Greek title case', 'Οδος', 'οδος'],
  ['Turkish dotless i', 'ılker', 'ilker'],
  ['Turkish capital I', 'ILKER', 'ilker'],
  ['title-case digraph', 'ǅemal', 'džemal'],
  ['Cherokee', 'ᏣᎳᎩ', 'ꮳꮃꭹ'],
  ['Georgian Mtavruli', 'ᲒᲘᲝᲠᲒᲘ', 'გიორგი'],
  // other scripts as they are
  ['Cyrillic', 'Иван', 'иван'],
  ['Japanese', '日本語', '日本語'],
  ['Devanagari with marks', 'हिन्दी', 'हिन्दी'],
  ['Arabic', 'محمد', 'محمد'],
  ['longest', 'x'.repeat(USERNAME_MAX), 'x'.repeat(USERNAME_MAX)],
  ['longest, full-width', fullWidth('X'.repeat(USERNAME_MAX)), 'x'.repeat(USERNAME_MAX)],
];

const REFUSED: Array<[string, string, UsernameProblem]> = [
  ['empty', '', 'empty'],
  ['over-long', 'x'.repeat(USERNAME_MAX + 1), 'too_long'],
  ['over-long once NFKC expands it', '㍿'.repeat(17), 'too_long'],
  ['over-long input', 'x'.repeat(USERNAME_INPUT_MAX + 1), 'too_long'],
  ['lone high surrogate', 'al\uD800ice', 'not_unicode'],
  ['lone low surrogate', '\uDC00', 'not_unicode'],
  ['high surrogate at the end', 'alice\uD83D', 'not_unicode'],
  ['swapped surrogates', '\uDE00\uD83D', 'not_unicode'],
  ['emoji', 'alice😀', 'character'],
  ['space', 'alice smith', 'whitespace'],
  ['leading space', ' alice', 'whitespace'],
  ['ideographic space', 'alice\u3000smith', 'whitespace'],
  ['no-break space', 'alice\u00a0', 'whitespace'],
  ['slash', 'a/b', 'character'],
  ['colon', 'a:b', 'character'],
  ['plus', 'a+b', 'character'],
  ['apostrophe', "o'neil", 'character'],
  ['markup', '<b>alice</b>', 'character'],
  ['comma', 'a,b', 'character'],
  ['Arabic-Indic digit', 'user٣', 'digit'],
  ['Bengali digit', 'user৪', 'digit'],
  ['leading dot', '.alice', 'edge'],
  ['trailing dot', 'alice.', 'edge'],
  ['leading hyphen', '-alice', 'edge'],
  ['leading at', '@alice', 'edge'],
  ['leading combining mark', '\u0301alice', 'edge'],
  ['Turkish capital dotted I (i + U+0307)', 'İlker', 'mark'],
  ['i with a combining dot', 'i\u0307lker', 'mark'],
  ['Latin with an overlay mark', 'alice\u0338', 'mark'],
  ['Cyrillic a in a Latin name', '\u0430lice', 'mixed_scripts'],
  ['Greek alpha in a Latin name', '\u03b1lice', 'mixed_scripts'],
  ['Cyrillic o in a Latin name', 'b\u043eb', 'mixed_scripts'],
];

describe('canonicalUsername on spellings of the same name', () => {
  it.each(SPELLINGS)('%s is %s', (input, expected) => {
    expect(canonical(input)).toBe(expected);
    expect(usernameKey(input)).toBe(expected);
  });

  it.each(UNICODE_SPELLINGS)('%s: %s is %s', (_, input, expected) => {
    expect(canonical(input)).toBe(expected);
    expect(usernameKey(input)).toBe(expected);
  });
});

describe('canonicalUsername on names it refuses', () => {
  it.each(REFUSED)('refuses %s (%s) as %s', (_, input, problem) => {
    const result = canonicalUsername(input);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.problem).toBe(problem);
      expect(result.message).toMatch(/^username /);
      expect(result.message.length).toBeLessThan(200);
    }
  });

  it('says which look-alike device it found', () => {
    expect(ok('İlker')).toMatchObject({ message: expect.stringContaining('"i" for "İ"') });
    expect(ok('al\u200bice')).toMatchObject({ message: expect.stringContaining('U+200B') });
    expect(ok('\u0430lice')).toMatchObject({ message: expect.stringContaining('Cyrillic') });
  });

  it.each([
    ['İlker', 'ilker'],
    ['i\u0307lker', 'ilker'],
    ['alice\u0338', 'alice'],
    [' alice ', 'alice'],
    ['ALICE\u200d', 'alice'],
    ['\ufeffAlice', 'alice'],
    ['a\u202elice', 'alice'],
    ['Al\uD800ice', 'al\ufffdice'],
  ])('keys the refused %s as %s, the name it looks like', (input, key) => {
    expect(usernameKey(input)).toBe(key);
  });

  it('keeps a letter that NFKC composes with its mark (ȧ is a letter of its own)', () => {
    expect(canonical('a\u0307lice')).toBe('ȧlice');
  });
});

/** Every invisible or spacing code point, generated from Unicode's own tables. */
const INVISIBLE_CLASSES: Array<[string, RegExp]> = [
  ['Cc (control)', /\p{Cc}/u],
  ['Cf (format: ZWSP, ZWJ, ZWNJ, BOM, bidi controls, tags)', /\p{Cf}/u],
  ['Zs (space separator)', /\p{Zs}/u],
  ['Zl (line separator)', /\p{Zl}/u],
  ['Zp (paragraph separator)', /\p{Zp}/u],
  ['other default-ignorable (variation selectors, fillers)', /\p{Default_Ignorable_Code_Point}/u],
];

describe.each(INVISIBLE_CLASSES)('every %s code point', (_, pattern) => {
  const chars = codePoints(pattern);

  it('is refused inside, before and after a name, and keyed as that name', () => {
    expect(chars.length).toBeGreaterThan(0);
    const wrong: string[] = [];
    for (const c of chars) {
      for (const input of [`al${c}ice`, `${c}alice`, `alice${c}`]) {
        const result = canonicalUsername(input);
        const refused =
          !result.ok && ['control', 'invisible', 'whitespace'].includes(result.problem);
        if (!refused || usernameKey(input) !== 'alice') wrong.push(visibleUsername(input));
      }
    }
    expect(wrong).toEqual([]);
  });
});

describe('canonicalUsername over every code point', () => {
  it('never throws, is idempotent, and a canonical name is its own key', () => {
    const wrong: string[] = [];
    for (const c of ALL_CHARS) {
      const input = `a${c}b`;
      const result = canonicalUsername(input);
      if (!result.ok) continue;
      const again = canonicalUsername(result.username);
      if (!again.ok || again.username !== result.username || usernameKey(input) !== result.username)
        wrong.push(visibleUsername(c));
    }
    expect(wrong).toEqual([]);
  });

  it('keeps every name that is already canonical as it is', () => {
    for (const [, , expected] of UNICODE_SPELLINGS) expect(canonical(expected)).toBe(expected);
    for (const name of ASCII_NAMES) expect(canonical(name)).toBe(name);
  });
});

describe('visibleUsername', () => {
  it('spells out what a terminal or log would hide', () => {
    expect(visibleUsername('al\u200bice')).toBe('"al\\u{200b}ice"');
    expect(visibleUsername('a\u202eb')).toBe('"a\\u{202e}b"');
    expect(visibleUsername('a\nb')).toBe('"a\\u{a}b"');
    expect(visibleUsername('alice smith')).toBe('"alice smith"');
  });
});
