/**
 * Headless Chromium for tests: Debian's /usr/bin/chromium driven by playwright-core (which downloads no
 * browser of its own). Tests that need it call chromiumSkipReason() first and skip with that reason
 * when the browser or the package is missing, e.g.
 *   test('page renders', { skip: chromiumSkipReason() }, async () => { const b = await launchChromium(); ... });
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, ConsoleMessage, Page } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Flags for a quiet, offline, sandbox-free headless run (tests run as root in containers). */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
] as const;

/** Why browser tests cannot run here, or undefined when they can. */
export function chromiumSkipReason(): string | undefined {
  if (!existsSync(CHROMIUM_PATH)) return `${CHROMIUM_PATH} not found (apt-get install -y chromium)`;
  try {
    createRequire(import.meta.url).resolve('playwright-core');
  } catch {
    return 'playwright-core is not installed (npm install --save-dev playwright-core)';
  }
  return undefined;
}

export interface ChromiumOptions {
  viewport?: { width: number; height: number };
  colorScheme?: 'light' | 'dark';
  /** Device scale factor of screenshots; default 1. */
  scale?: number;
}

export interface ChromiumSession {
  context: BrowserContext;
  /** The fresh profile directory the browser runs in; removed by close(). */
  userDataDir: string;
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

/**
 * Starts Chromium on a fresh temporary profile. playwright refuses --user-data-dir in args, so the
 * profile directory is passed the way it accepts one (a persistent context) and removed on close().
 */
export async function launchChromium(options: ChromiumOptions = {}): Promise<ChromiumSession> {
  const reason = chromiumSkipReason();
  if (reason) throw new Error(`cannot launch Chromium: ${reason}`);
  const { chromium } = await import('playwright-core');
  const userDataDir = mkdtempSync(join(tmpdir(), 'rebasin-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [...CHROMIUM_ARGS],
      viewport: options.viewport ?? { width: 1280, height: 900 },
      colorScheme: options.colorScheme ?? 'light',
      deviceScaleFactor: options.scale ?? 1,
      timeout: 30_000,
    });
  } catch (e) {
    rmSync(userDataDir, { recursive: true, force: true });
    throw e;
  }
  return {
    context,
    userDataDir,
    newPage: () => context.newPage(),
    close: async () => {
      try {
        await context.close();
      } finally {
        rmSync(userDataDir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * Collects what a page reports as going wrong: console errors, uncaught exceptions, failed requests.
 * Attach before navigating.
 */
export function collectPageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (m: ConsoleMessage) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e: Error) => errors.push(`exception: ${e.message}`));
  page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()} (${r.failure()?.errorText ?? '?'})`));
  return errors;
}
