/**
 * Over 300 lines on purpose: one reader of the sources, templates and docs, and every check it feeds.
 *
 * One error model: every code a service answers is in the catalogue (common/src/errors.ts) with
 * the status it is answered with, nothing in the catalogue is stale, and the docs name codes only
 * from the catalogue, with its statuses. The sources are read as text: a code answered from a
 * string literal anywhere in gateway/, session-service/, demo-app/, common/ or the nginx
 * templates is found here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { bearerToken, secretMatches } from '../../common/src/constant-time.js';
import {
  ERRORS,
  type ErrorCode,
  GatehouseError,
  INTERNAL_CODES,
  isErrorCode,
} from '../../common/src/errors.js';
import { errorJson, errorResponseBytes } from '../../common/src/http.js';
import { checkHeaderLimits } from '../../common/src/limits.js';
import { ROOT } from '../helpers/processes.js';

function filesUnder(dir: string, ext: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith(ext))
    .map((f) => join(ROOT, dir, f));
}

const SOURCES = ['gateway/src', 'session-service/src', 'demo-app/src', 'common/src'].flatMap((d) =>
  filesUnder(d, '.ts'),
);
const TEMPLATES = filesUnder('nginx/templates', '.template');
const CODE = "'([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{4,})'";

interface Use {
  code: string;
  status?: number;
  where: string;
}

/** Codes answered from string literals, with the status beside them when there is one. */
function usesIn(file: string): Use[] {
  const text = readFileSync(file, 'utf8');
  const uses: Use[] = [];
  const at = (index: number) =>
    `${relative(ROOT, file)}:${text.slice(0, index).split('\n').length}`;
  const patterns: [RegExp, (m: RegExpExecArray) => { code: string; status?: number }][] = [
    // sendError(req, res, 401, 'CODE'), refuse(401, 'CODE'), fail(…, 429, 'CODE'), [431, 'CODE']
    [
      new RegExp(`\\b([45]\\d\\d),\\s*${CODE}`, 'g'),
      (m) => ({ status: Number(m[1]), code: m[2] ?? '' }),
    ],
    // 'CODE', 403 (a code written before its status)
    [
      new RegExp(`${CODE},\\s*([45]\\d\\d)\\b`, 'g'),
      (m) => ({ code: m[1] ?? '', status: Number(m[2]) }),
    ],
    // { status: 503, code: 'CODE' } (decisions, admissions)
    [
      new RegExp(`status:\\s*([45]\\d\\d),\\s*code:\\s*${CODE}`, 'g'),
      (m) => ({ status: Number(m[1]), code: m[2] ?? '' }),
    ],
    // sendError(req, res, 'CODE'), new GatehouseError('CODE'), errorResponseBytes('CODE'),
    // refuseUpgrade(socket, 'CODE')
    [
      new RegExp(
        `(?:sendError\\(\\s*req,\\s*res,|GatehouseError\\(|errorResponseBytes\\(|refuseUpgrade\\(\\s*socket,)\\s*${CODE}`,
        'g',
      ),
      (m) => ({ code: m[1] ?? '' }),
    ],
    // either code of a choice: cond ? 'CODE' : 'OTHER_CODE'
    [new RegExp(`\\?\\s*${CODE}\\s*:`, 'g'), (m) => ({ code: m[1] ?? '' })],
    [new RegExp(`\\?\\s*'[A-Z_]+'\\s*:\\s*${CODE}`, 'g'), (m) => ({ code: m[1] ?? '' })],
    // { error: 'CODE' }, { code: 'CODE' }
    [new RegExp(`\\b(?:error|code):\\s*${CODE}`, 'g'), (m) => ({ code: m[1] ?? '' })],
  ];
  for (const [pattern, read] of patterns)
    for (const m of text.matchAll(pattern))
      uses.push({ ...read(m as RegExpExecArray), where: at(m.index ?? 0) });
  return uses;
}

/** `return 401 '{"error":"CODE",…}'` in the nginx templates. */
function templateUses(file: string): Use[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/return\s+([45]\d\d)\s+'\{"error":"([A-Z_]+)"/g)].map((m) => ({
    status: Number(m[1]),
    code: m[2] ?? '',
    where: relative(ROOT, file),
  }));
}

/** Codes of error classes (`readonly code = 'CODE'`): causes, answered under another code. */
function classCodes(file: string): Use[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/readonly code = '([A-Z_]+)'/g)].map((m) => ({
    code: m[1] ?? '',
    where: relative(ROOT, file),
  }));
}

const sourceUses = SOURCES.flatMap(usesIn);
const answered = [...sourceUses, ...TEMPLATES.flatMap(templateUses)];

describe('the error catalogue', () => {
  it('gives every code a 4xx or 5xx status, a message and a log level', () => {
    for (const [code, spec] of Object.entries(ERRORS)) {
      expect(code).toMatch(/^[A-Z]+(_[A-Z]+)*$/); // docs/openapi.yaml: "^[A-Z_]+$"
      expect(spec.status, code).toBeGreaterThanOrEqual(400);
      expect(spec.status, code).toBeLessThan(600);
      expect(spec.message.length, code).toBeGreaterThan(0);
      expect(spec.message, code).toMatch(/[.]$/);
      expect(['error', 'warn', 'info', 'debug']).toContain(spec.log);
    }
  });

  it('maps each internal cause to a catalogue code (or to nothing answered)', () => {
    for (const [cause, code] of Object.entries(INTERNAL_CODES)) {
      expect(isErrorCode(cause), `${cause} is a cause, not an answer`).toBe(false);
      if (code !== null) expect(isErrorCode(code), cause).toBe(true);
    }
  });

  it('finds codes in the sources (the scan works)', () => {
    expect(sourceUses.length).toBeGreaterThan(30);
    expect(sourceUses.map((u) => u.code)).toContain('SESSION_SERVICE_UNAVAILABLE');
  });

  it('holds every code the services answer, with the status they answer it with', () => {
    const problems = answered.flatMap(({ code, status, where }) => {
      if (!isErrorCode(code)) return [`${where}: ${code} is not in the catalogue`];
      if (status !== undefined && status !== ERRORS[code].status)
        return [`${where}: ${code} answered ${status}, the catalogue says ${ERRORS[code].status}`];
      return [];
    });
    expect(problems).toEqual([]);
  });

  it('holds no code that nothing answers', () => {
    const used = new Set(answered.map((u) => u.code));
    const stale = Object.keys(ERRORS).filter((code) => !used.has(code));
    expect(stale).toEqual([]);
  });

  it('knows the code of every error class, as an answer or as a cause', () => {
    const unknown = SOURCES.flatMap(classCodes).filter(
      ({ code }) => !isErrorCode(code) && !Object.hasOwn(INTERNAL_CODES, code),
    );
    expect(unknown).toEqual([]);
  });
});

describe('GatehouseError', () => {
  it('takes its status from the catalogue and keeps message, cause and headers', () => {
    const cause = new Error('redis down');
    const err = new GatehouseError('BUSY', { cause, headers: { 'Retry-After': '1' } });
    expect(err).toMatchObject({ code: 'BUSY', status: 503, message: ERRORS.BUSY.message });
    expect(err.cause).toBe(cause);
    expect(err.headers).toEqual({ 'Retry-After': '1' });
    expect(new GatehouseError('NOT_FOUND', { message: 'No such thing.' }).message).toBe(
      'No such thing.',
    );
  });
});

describe('errorResponseBytes', () => {
  it('is a complete HTTP/1.1 answer with the JSON body, its length, no-store and close', () => {
    const raw = errorResponseBytes('ORIGIN_NOT_ALLOWED', { headers: { 'X-Request-Id': 'r1' } });
    const [head, body] = raw.split('\r\n\r\n');
    expect(head?.split('\r\n')).toEqual([
      'HTTP/1.1 403 Forbidden',
      'Content-Type: application/json; charset=utf-8',
      `Content-Length: ${Buffer.byteLength(body ?? '')}`,
      'Cache-Control: no-store',
      'X-Request-Id: r1',
      'Connection: close',
    ]);
    expect(JSON.parse(body ?? '')).toEqual({
      error: 'ORIGIN_NOT_ALLOWED',
      message: ERRORS.ORIGIN_NOT_ALLOWED.message,
    });
  });

  it("adds a code's own fields after error and message, never in their place", () => {
    const raw = errorResponseBytes('STEP_UP_REQUIRED', {
      fields: { need: 'webauthn', error: 'OTHER', message: 'other' },
    });
    const body = raw.split('\r\n\r\n')[1] ?? '';
    expect(body).toBe(
      errorJson('STEP_UP_REQUIRED', ERRORS.STEP_UP_REQUIRED.message, { need: 'webauthn' }),
    );
    expect(Object.entries(JSON.parse(body))).toEqual([
      ['error', 'STEP_UP_REQUIRED'],
      ['message', ERRORS.STEP_UP_REQUIRED.message],
      ['need', 'webauthn'],
    ]);
  });
});

describe('secretMatches', () => {
  it('matches the same secret only, whatever the lengths', () => {
    expect(secretMatches('s3cret-token', 's3cret-token')).toBe(true);
    expect(secretMatches('s3cret-toke', 's3cret-token')).toBe(false);
    expect(secretMatches('s3cret-token-and-more', 's3cret-token')).toBe(false);
    expect(secretMatches('S3cret-token', 's3cret-token')).toBe(false);
  });

  it('never matches when either side is empty or missing', () => {
    expect(secretMatches('', '')).toBe(false);
    expect(secretMatches(undefined, undefined)).toBe(false);
    expect(secretMatches('x', undefined)).toBe(false);
    expect(secretMatches(undefined, 'x')).toBe(false);
  });

  it('reads the token of a Bearer authorization only', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('bearer abc')).toBeUndefined();
    expect(bearerToken('Basic abc')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
});

// Codes named in the docs: `"error":"CODE"` and `<status> CODE` (with or without backticks).
const DOCS = [
  join(ROOT, 'README.md'),
  join(ROOT, 'docs', 'openapi.yaml'),
  ...filesUnder('docs', '.md'),
];

describe('the docs', () => {
  it('name error codes only from the catalogue, with its statuses', () => {
    const problems: string[] = [];
    let named = 0;
    for (const file of DOCS) {
      const text = readFileSync(file, 'utf8');
      const where = relative(ROOT, file);
      for (const m of text.matchAll(/"error":\s*"([A-Z_]+)"/g)) {
        named += 1;
        if (!isErrorCode(m[1]) && m[1] !== 'CODE' && m[1] !== 'MFA_REQUIRED')
          problems.push(`${where}: ${m[1]} is not in the catalogue`);
      }
      for (const m of text.matchAll(/\b([45]\d\d) (?:\{"error":"|`)?([A-Z]+(?:_[A-Z]+)+)\b/g)) {
        named += 1;
        const code = m[2] as ErrorCode;
        if (!isErrorCode(code)) problems.push(`${where}: ${m[1]} ${code} is not in the catalogue`);
        else if (ERRORS[code].status !== Number(m[1]))
          problems.push(`${where}: ${code} is ${ERRORS[code].status}, the docs say ${m[1]}`);
      }
    }
    expect(named).toBeGreaterThan(10);
    expect(problems).toEqual([]);
  });
});

describe('README.md "Error codes"', () => {
  it('lists every catalogue code once, with its status', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const start = readme.indexOf('\n### Error codes\n');
    expect(start).toBeGreaterThan(0);
    const end = readme.indexOf('\n## ', start);
    const rows = [
      ...readme.slice(start, end < 0 ? undefined : end).matchAll(/^\| (\d{3}) \| `([A-Z_]+)` \|/gm),
    ].map((m) => `${m[1]} ${m[2]}`);
    const catalogue = Object.entries(ERRORS).map(([code, spec]) => `${spec.status} ${code}`);
    expect(rows.toSorted()).toEqual(catalogue.toSorted());
  });
});

describe('docs/openapi.yaml', () => {
  it("lists as the Error schema's codes exactly those the session-service answers", () => {
    const spec = parse(readFileSync(join(ROOT, 'docs', 'openapi.yaml'), 'utf8')) as {
      components: { schemas: { Error: { properties: { error: { enum: string[] } } } } };
    };
    const listed = spec.components.schemas.Error.properties.error.enum;
    const answered = new Set(
      sourceUses.filter((u) => u.where.startsWith('session-service/')).map((u) => u.code),
    );
    expect(listed.toSorted()).toEqual([...answered].toSorted());
  });
});

describe('bodies written outside sendError', () => {
  it('the nginx templates answer each code with the catalogue body, byte for byte', () => {
    const bodies = TEMPLATES.flatMap((file) =>
      [
        ...readFileSync(file, 'utf8').matchAll(/return\s+([45]\d\d)\s+'(\{"error":"[^']*)\\n';/g),
      ].map((m) => ({ where: relative(ROOT, file), body: m[2] ?? '' })),
    );
    expect(bodies.length).toBeGreaterThanOrEqual(5);
    for (const { where, body } of bodies) {
      const { error } = JSON.parse(body) as { error: ErrorCode };
      expect(body, where).toBe(errorJson(error, ERRORS[error].message));
    }
  });

  it('the header limits (common/src/limits.ts) refuse with the catalogue messages', () => {
    const many = checkHeaderLimits(Array.from({ length: 2 * 101 }, (_, i) => `x-${i >> 1}`));
    const cookies = checkHeaderLimits(['Cookie', 'a='.padEnd(9000, 'x')]);
    for (const check of [many, cookies]) {
      expect(check.ok).toBe(false);
      if (!check.ok) expect(check.message).toBe(ERRORS[check.code as ErrorCode].message);
    }
  });
});
