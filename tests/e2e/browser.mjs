// What the browser tests share: Debian's Chromium through playwright-core,
// and a page that records its uncaught errors (tests assert there are none).
// Not a test file: `node --test` runs only *.test.mjs here.
import { chromium } from 'playwright-core';

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

export async function openPage(browser, url) {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const p = await ctx.newPage();
  p.errors = [];
  p.on('pageerror', (e) => p.errors.push(e));
  await p.goto(url);
  return p;
}
