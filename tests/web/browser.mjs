// What the dashboard's browser tests share: Debian's headless Chromium through playwright-core,
// and a page that records requests off the origin and page errors into `seen`.

import { chromium } from "playwright-core";

export const TIMEOUT = 20000;

export function expect(condition, message) {
  if (!condition) throw new Error(`expectation failed: ${message}`);
}

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--disable-dev-shm-usage",
    ],
    timeout: 60000,
  });
}

/** A page of `browser` at 1400 x 1000 that notes in `seen` what it fetches off `url`'s origin,
 * its page errors and console errors. */
export async function watchedPage(browser, url, seen) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const origin = new URL(url).origin;
  page.on("request", (request) => {
    const requested = request.url();
    if (!requested.startsWith(origin) && !requested.startsWith("data:")) {
      seen.foreignRequests.push(requested);
    }
  });
  page.on("pageerror", (error) => seen.pageErrors.push(String(error)));
  page.on("console", (message) => {
    if (message.type() === "error") seen.consoleErrors.push(message.text());
  });
  return { context, page };
}

/** Close `browser`, print `seen` (with the failure, if any) as the last line for the Python
 * side, and exit 1 on a failure. */
export async function finish(browser, seen, failure) {
  await browser.close();
  if (failure) seen.failure = String(failure.stack || failure);
  console.log(JSON.stringify(seen));
  process.exit(failure ? 1 : 0);
}
