// Drives the dashboard of a deployment serving two tract layers: the page offers the layers,
// shows the first (finest), and the map, forecasts, versions and a tract's chart follow the
// layer picked. Run by tests/web/test_dashboard_layers.py; prints one JSON line with what it
// saw, exits 1 on a failed expectation. Environment: DASHBOARD_URL, CHROMIUM, EXPECTED (JSON:
// per layer, in order, its name, tracts and champion).

import { expect, finish, launchChromium, watchedPage } from "./browser.mjs";

const url = process.env.DASHBOARD_URL;
const expected = JSON.parse(process.env.EXPECTED);
const seen = { foreignRequests: [], pageErrors: [], consoleErrors: [], layers: {} };

const text = async (page, selector) => (await page.locator(selector).textContent()).trim();

/** The map drawn with `layer`'s tracts and forecasts, the serving version its champion. */
async function sawLayer(page, layer) {
  await page.waitForFunction((count) =>
    document.querySelectorAll("#map path.tract").length === count, layer.tracts);
  await page.waitForFunction((version) =>
    document.querySelector("#map-caption").textContent.includes(version), layer.champion);
  await page.waitForFunction((version) =>
    document.querySelector("#serving-version").textContent.trim() === version, layer.champion);
  await page.waitForFunction(() => // events too: the status says what failed, if anything
    !document.querySelector("#status").textContent.startsWith("loading"));
  await page.locator(`#map path.tract[data-id='${layer.tract}']`).click();
  // attached, not visible: a flat forecast (a moving average's) draws a line without height
  await page.waitForSelector("#tract-chart path.forecast-line", { state: "attached" });
  seen.layers[layer.name] = {
    tracts: await page.locator("#map path.tract").count(),
    coloured: await page.locator("#map path.tract[fill]").count(),
    title: await text(page, "#tract-title"),
    chartKey: await text(page, "#chart-key"),
    versionRows: await page.locator("#versions tbody tr").count(),
    status: await text(page, "#status"),
  };
}

const browser = await launchChromium();
let failure = null;
try {
  const { context, page } = await watchedPage(browser, url, seen);
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector("body[data-ready='true']");
  expect(await page.locator("#layer-pick").isVisible(), "a choice of layer");
  seen.options = await page.locator("#layer option").evaluateAll(
    (options) => options.map((option) => option.value));
  seen.chosen = await page.locator("#layer").inputValue();
  await sawLayer(page, expected[0]);
  for (const layer of expected.slice(1)) {
    await page.selectOption("#layer", layer.name);
    await sawLayer(page, layer);
  }
  await context.close();
} catch (error) {
  failure = error;
}
await finish(browser, seen, failure);
