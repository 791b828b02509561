// Drives the dashboard in Debian's headless Chromium through playwright-core, as a planner
// would: the map, a tract's chart, searches, a radius, and a rollback from the admin panel.
// Run by tests/web/test_dashboard.py; prints one JSON line with what it saw, exits 1 on a
// failed expectation. Environment: DASHBOARD_URL, ADMIN_TOKEN, ARTIFACTS_DIR, CHROMIUM,
// EXPECTED_TRACTS.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { expect, finish, launchChromium, watchedPage } from "./browser.mjs";

const url = process.env.DASHBOARD_URL;
const token = process.env.ADMIN_TOKEN;
const artifacts = process.env.ARTIFACTS_DIR;
const expectedTracts = Number(process.env.EXPECTED_TRACTS);

const seen = { screenshots: [], foreignRequests: [], pageErrors: [], consoleErrors: [] };

async function shot(page, name) {
  const path = join(artifacts, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  seen.screenshots.push(path);
}

const browser = await launchChromium();
let failure = null;
try {
  mkdirSync(artifacts, { recursive: true });
  const { context, page } = await watchedPage(browser, url, seen);

  // The map: every tract of the layer, coloured, with a legend.
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector("body[data-ready='true']");
  seen.tracts = await page.locator("#map path.tract").count();
  expect(seen.tracts === expectedTracts, `${seen.tracts} tract paths, expected ${expectedTracts}`);
  const filled = await page.locator("#map path.tract[fill]").count();
  expect(filled === expectedTracts, `${filled} tracts coloured`);
  seen.legendItems = await page.locator("#legend .legend-item").count();
  expect(seen.legendItems >= 3, "a legend with several classes");
  seen.statusText = await page.locator("#status").textContent();
  expect(!seen.statusText.trim(), `no load problem reported, got: ${seen.statusText}`);
  seen.layerPickHidden = await page.locator("#layer-pick").isHidden();
  expect(seen.layerPickHidden, "one layer served: no choice of layer");
  await shot(page, "01-map-growth");
  await page.check("#colour-by input[value='incidence']");
  seen.incidenceLegend = await page.locator("#legend .legend-title").textContent();
  expect(seen.incidenceLegend.includes("last 7 days"), "the legend follows the colour toggle");
  await page.check("#colour-by input[value='growth']");

  // Click Milano: its chart with history bars, the forecast line and band, earlier forecasts.
  await page.locator("#map path.tract[data-id='015']").click();
  await page.waitForSelector("#tract-chart rect.history-bar");
  await page.waitForSelector("#tract-chart path.forecast-line");
  seen.tractTitle = await page.locator("#tract-title").textContent();
  expect(seen.tractTitle.includes("Milano"), `panel titled ${seen.tractTitle}`);
  seen.historyBars = await page.locator("#tract-chart rect.history-bar").count();
  seen.forecastBands = await page.locator("#tract-chart path.forecast-band").count();
  seen.earlierLines = await page.locator("#tract-chart path.earlier-line").count();
  seen.earlierText = await page.locator("#earlier-list").textContent();
  expect(seen.historyBars >= 30, `${seen.historyBars} history bars`);
  expect(seen.forecastBands === 1, "one forecast interval band");
  expect(seen.earlierLines >= 1, "earlier forecasts drawn against what happened");
  await shot(page, "02-milano-chart");

  // Search by coordinates (Rome) and by name (Napoli).
  await page.fill("#coord-search input[name='lat']", "41.9028");
  await page.fill("#coord-search input[name='lon']", "12.4964");
  await page.click("#coord-search button[type='submit']");
  await page.waitForFunction(() => document.querySelector("#tract-title").textContent.includes("Roma"));
  await page.waitForSelector("#map path.tract.selected[data-id='058']");
  await page.fill("#name-search input[name='name']", "napoli");
  await page.click("#name-search button[type='submit']");
  await page.waitForFunction(() => document.querySelector("#tract-title").textContent.includes("Napoli"));

  // A 50 km radius around Milan: the circle on the map and the tracts with their totals.
  await page.fill("#radius-form input[name='lat']", "45.4642");
  await page.fill("#radius-form input[name='lon']", "9.19");
  await page.fill("#radius-form input[name='radius_km']", "50");
  await page.click("#radius-form button[type='submit']");
  await page.waitForSelector("#map #radius-circle");
  await page.waitForSelector("#radius-table tbody tr[data-id='015']");
  seen.radiusRows = await page.locator("#radius-table tbody tr").count();
  seen.radiusTotals = await page.locator("#radius-table tr.totals").textContent();
  seen.inRadius = await page.locator("#map path.tract.in-radius").count();
  expect(seen.radiusRows >= 4, `${seen.radiusRows} tracts within 50 km of Milan`);
  expect(seen.inRadius === seen.radiusRows, "the tracts in the table are marked on the map");
  await shot(page, "03-radius");

  // Versions and events; then a rollback from the admin panel changes what serves.
  seen.versionRows = await page.locator("#versions tbody tr").count();
  seen.servingRows = await page.locator("#versions tbody tr.serving").count();
  seen.eventItems = await page.locator("#events li.event").count();
  expect(seen.servingRows === 1, "exactly one version marked as serving");
  seen.servingBefore = (await page.locator("#serving-version").textContent()).trim();
  seen.mapVersionBefore = await page.locator("#map-caption").textContent();

  await page.fill("#admin-token", "not-the-token");
  await page.click("#rollback-button");
  await page.waitForFunction(() => document.querySelector("#admin-result").textContent.includes("HTTP 403"));
  seen.refusedText = await page.locator("#admin-result").textContent();
  expect((await page.locator("#serving-version").textContent()).trim() === seen.servingBefore,
    "a refused rollback changes nothing");

  await page.fill("#admin-token", token);
  await page.click("#rollback-button");
  await page.waitForFunction(() => document.querySelector("#admin-result").textContent.includes("HTTP 200"));
  await page.waitForFunction(
    (before) => document.querySelector("#serving-version").textContent.trim() !== before,
    seen.servingBefore,
  );
  seen.servingAfter = (await page.locator("#serving-version").textContent()).trim();
  await page.waitForFunction(
    (version) => document.querySelector("#map-caption").textContent.includes(version),
    seen.servingAfter,
  );
  seen.adminResult = await page.locator("#admin-result").textContent();
  seen.servingRowAfter = await page.locator("#versions tbody tr.serving").getAttribute("data-version");
  seen.firstEvent = await page.locator("#events li.event").first().textContent();
  expect(seen.servingRowAfter === seen.servingAfter, "the versions table marks the new version");
  expect(seen.firstEvent.includes("rolled back"), `newest event: ${seen.firstEvent}`);
  await page.locator("#admin").scrollIntoViewIfNeeded();
  await shot(page, "04-after-rollback");

  expect(seen.foreignRequests.length === 0, `requests off the origin: ${seen.foreignRequests}`);
  expect(seen.pageErrors.length === 0, `page errors: ${seen.pageErrors}`);
  await context.close();
} catch (error) {
  failure = error;
}
await finish(browser, seen, failure);
