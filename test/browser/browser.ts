import { accessSync, constants, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { ROOT } from '../helpers/processes.js';

/** Debian's Chromium (apt-get install chromium); a browser is never downloaded. */
export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** The switches of Playwright's defaults that turn the back/forward cache off. */
export const BFCACHE_OFF_SWITCHES = ['--disable-back-forward-cache'];

/**
 * Where screenshots go: docs/screenshots (linked from README.md) with UPDATE_SCREENSHOTS=1,
 * else a temporary folder, so a test run leaves the working tree as it was.
 */
export const SCREENSHOTS =
  process.env.UPDATE_SCREENSHOTS === '1'
    ? join(ROOT, 'docs', 'screenshots')
    : join(tmpdir(), 'gatehouse-screenshots');
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/** A console message or an uncaught page error, from any page of a browser. */
export interface Noted {
  kind: 'console' | 'pageerror';
  /** console: 'error', 'warning', 'info', 'log'...; pageerror: 'error'. */
  type: string;
  text: string;
  /** The resource the message is about (console) or the page it happened on (pageerror). */
  url: string;
}

export interface TestBrowser {
  context: BrowserContext;
  page: Page;
  /** Everything every page of this browser printed and threw, minus what take() removed. */
  noted: Noted[];
  /** Removes and returns the noted messages that `match` accepts (the ones a step expects). */
  take(match: (noted: Noted) => boolean): Noted[];
  /** take(), once at least one matches or `timeoutMs` has passed (for messages that come late). */
  takeWhenNoted(match: (noted: Noted) => boolean, timeoutMs?: number): Promise<Noted[]>;
  close(): Promise<void>;
}

/**
 * One browser: Debian's Chromium, headless, with a fresh user-data directory of its own (so two
 * of them share nothing, like two people's browsers). Every page's console messages and page
 * errors are noted, for the tests to assert that there are none (a CSP violation is a console
 * error).
 */
export async function launchBrowser(
  options: {
    viewport?: { width: number; height: number };
    phone?: boolean;
    /** More Chromium switches, e.g. `--host-resolver-rules=MAP intranet.test 127.0.0.1`. */
    args?: readonly string[];
    /** false: Playwright's default, back/forward cache off (only to show that it matters). */
    bfcache?: boolean;
  } = {},
): Promise<TestBrowser> {
  try {
    accessSync(CHROMIUM, constants.X_OK);
  } catch {
    throw new Error(
      `Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_BIN)`,
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-chromium-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, ...(options.args ?? [])],
    // Back/forward cache on, as in every real browser: Playwright turns it off by default
    // (playwright-core's chromiumSwitches), which would hide a private page that Back restores
    // from memory after sign-out (bfcache.test.ts proves it is on).
    ...(options.bfcache === false ? {} : { ignoreDefaultArgs: BFCACHE_OFF_SWITCHES }),
    viewport: options.viewport ?? DESKTOP,
    colorScheme: 'light',
    // No transitions: colour checks and screenshots see the final colours.
    reducedMotion: 'reduce',
    locale: 'en-GB',
    ...(options.phone ? { isMobile: true, hasTouch: true, deviceScaleFactor: 1 } : {}),
  });
  context.setDefaultTimeout(10_000);
  context.setDefaultNavigationTimeout(15_000);

  const noted: Noted[] = [];
  const watch = (page: Page) => {
    page.on('console', (message) =>
      noted.push({
        kind: 'console',
        type: message.type(),
        text: message.text(),
        url: message.location().url || page.url(),
      }),
    );
    page.on('pageerror', (error) =>
      noted.push({ kind: 'pageerror', type: 'error', text: error.message, url: page.url() }),
    );
  };
  for (const page of context.pages()) watch(page);
  context.on('page', watch);
  const page = context.pages()[0] ?? (await context.newPage());
  const take = (match: (n: Noted) => boolean) => {
    const taken = noted.filter(match);
    for (const n of taken) noted.splice(noted.indexOf(n), 1);
    return taken;
  };

  return {
    context,
    page,
    noted,
    take,
    async takeWhenNoted(match, timeoutMs = 3_000) {
      const deadline = Date.now() + timeoutMs;
      while (!noted.some(match) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 25));
      return take(match);
    },
    async close() {
      await context.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Waits for every promise to settle (none is left running unobserved), then throws the first failure. */
export async function settleAll(promises: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** Chromium's console line for a document answered with an HTTP error status (not a page fault). */
export const httpStatusMessage = (status: number, url: string) => (n: Noted) =>
  n.kind === 'console' &&
  n.type === 'error' &&
  n.text.startsWith(`Failed to load resource: the server responded with a status of ${status} `) &&
  n.url === url;

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), animations: 'disabled' });
}

/** Fill the login form and submit it; resolves with the answer to the POST. */
export async function submitLogin(page: Page, username: string, password: string) {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  const [answer] = await Promise.all([
    page.waitForResponse(
      (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/auth/login',
    ),
    page.getByRole('button', { name: 'Sign in', exact: true }).click(),
  ]);
  await page.waitForLoadState('load');
  return answer;
}

/** The text of the page's body, hidden parts included. */
export const bodyText = async (page: Page) => (await page.locator('body').textContent()) ?? '';

/*
 * In-page checks. They are strings, not functions, so that no transpiler helper (such as
 * esbuild's __name) ends up in code that runs in the browser.
 */

/** Whether the page scrolls sideways: [scrollWidth, innerWidth]. */
export const HORIZONTAL_OVERFLOW = '[document.documentElement.scrollWidth, window.innerWidth]';

/** Colour arithmetic for the checks below (WCAG 2 relative luminance and contrast ratio). */
const COLOUR = `
  const parse = (c) => {
    const m = c.match(/[\\d.]+/g);
    if (!m) return null;
    const [r, g, b, a] = m.map(Number);
    return { r, g, b, a: m.length > 3 ? a : 1 };
  };
  const channel = (v) => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const luminance = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const ratio = (x, y) => {
    const [hi, lo] = [luminance(x), luminance(y)].sort((p, q) => q - p);
    return (hi + 0.05) / (lo + 0.05);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a >= 1) return c;
    }
    return { r: 255, g: 255, b: 255, a: 1 };
  };
`;

/** The focused element, described, with its outline as computed and the outline's contrast. */
export const FOCUSED = `(() => {
  ${COLOUR}
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const name = (el.getAttribute('aria-label') || el.textContent || el.getAttribute('name') || '').trim();
  const rect = el.getBoundingClientRect();
  return {
    key: el.tagName + ' ' + Math.round(rect.top + scrollY) + ' ' + Math.round(rect.left + scrollX),
    what: el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (name ? ' "' + name.slice(0, 40) + '"' : ''),
    outlineStyle: style.outlineStyle,
    outlineWidth: parseFloat(style.outlineWidth) || 0,
    outlineContrast: ratio(parse(style.outlineColor), background(el.parentElement)),
  };
})()`;

/** Every form control that a user fills in or ticks, and whether it has a label. */
export const UNLABELLED_INPUTS = `[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
  .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
  .map((el) => el.outerHTML)`;

/**
 * WCAG AA contrast of every piece of text on the page (4.5:1, 3:1 for large text) and of every
 * text field's border (3:1, non-text contrast), against the background it sits on. Returns the
 * failures.
 */
export const CONTRAST_FAILURES = `(() => {
  ${COLOUR}
  const failures = [];
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || seen.has(el) || !node.textContent.trim()) continue;
    seen.add(el);
    const rect = el.getBoundingClientRect();
    if (rect.width <= 1 || rect.height <= 1) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden') continue;
    const got = ratio(parse(style.color), background(el));
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    const need = large ? 3 : 4.5;
    if (got < need)
      failures.push(el.tagName.toLowerCase() + ' "' + node.textContent.trim().slice(0, 30) + '": ' + got.toFixed(2) + ' < ' + need);
  }
  for (const el of document.querySelectorAll('input:not([type=hidden]):not([type=checkbox])')) {
    const got = ratio(parse(getComputedStyle(el).borderTopColor), background(el.parentElement));
    if (got < 3) failures.push('border of ' + el.outerHTML.slice(0, 40) + ': ' + got.toFixed(2) + ' < 3');
  }
  return failures;
})()`;

export interface Focused {
  /** Where it is (tells apart two elements that read the same). */
  key: string;
  what: string;
  outlineStyle: string;
  outlineWidth: number;
  outlineContrast: number;
}

/**
 * Tab through the page from where focus is now, once round, and describe every element that
 * takes the focus (a keyboard user's path through the page).
 */
export async function tabThrough(page: Page, max = 25): Promise<Focused[]> {
  const path: Focused[] = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const focused = (await page.evaluate(FOCUSED)) as Focused | null;
    if (!focused) break;
    if (path.some((f) => f.key === focused.key)) break;
    path.push(focused);
  }
  return path;
}
