// tractcast dashboard: map, tract charts, radius statistics, versions, events and admin.
// Everything it reads comes from the same origin; nothing is fetched from anywhere else.

import { getJSON, postAdmin, ApiError } from "./api.js";
import { TractMap } from "./map.js";
import { drawChart, errorAgainst, formatCount, EARLIER_COLOURS } from "./chart.js";

const GROWTH_BINS = [
  { upTo: -0.5, colour: "#2166ac", label: "below −50 %" },
  { upTo: -0.2, colour: "#67a9cf", label: "−50 to −20 %" },
  { upTo: -0.05, colour: "#d1e5f0", label: "−20 to −5 %" },
  { upTo: 0.05, colour: "#f7f7f7", label: "−5 to +5 %" },
  { upTo: 0.2, colour: "#fddbc7", label: "+5 to +20 %" },
  { upTo: 0.5, colour: "#ef8a62", label: "+20 to +50 %" },
  { upTo: Infinity, colour: "#b2182b", label: "above +50 %" },
];
const INCIDENCE_COLOURS = ["#fff5eb", "#fdd0a2", "#fd8d3c", "#d94801", "#7f2704"];
const NO_DATA = "#d9d9d9";
const TOKEN_KEY = "tractcast.admin-token";

const state = {
  names: new Map(), // tract id -> name
  summaries: new Map(), // tract id -> summary row
  summary: null,
  colourBy: "growth",
  selected: null,
  versions: [],
  current: null,
  layer: null, // the tract layer shown, when the deployment serves several (/v1/layers)
};

const $ = (selector) => document.querySelector(selector);

function element(name, attributes = {}, text = null) {
  const node = document.createElement(name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== null) node.textContent = text;
  return node;
}

function setStatus(message, isError = false) {
  const status = $("#status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

function describeError(error) {
  if (error instanceof ApiError) return `${error.status}: ${error.message}`;
  return String(error.message || error);
}

/** Query parameters naming the layer shown, when there is a choice of layers. */
function withLayer(params) {
  return state.layer ? { ...params, layer: state.layer } : params;
}

const percent = (value) => (value === null || value === undefined ? "–"
  : `${value > 0 ? "+" : ""}${(value * 100).toFixed(0)} %`);

// ---- map colouring and legend ---------------------------------------------------------------

function incidenceBins() {
  const values = [...state.summaries.values()]
    .map((s) => s.last_week).filter((v) => v !== null).sort((a, b) => a - b);
  if (!values.length) return [];
  const cuts = [0.2, 0.4, 0.6, 0.8].map((q) => values[Math.floor(q * (values.length - 1))]);
  const bounds = [...new Set(cuts)];
  const bins = [];
  let low = values[0];
  bounds.forEach((upTo, i) => {
    bins.push({ upTo, colour: INCIDENCE_COLOURS[i], label: `${formatCount(low)} – ${formatCount(upTo)}` });
    low = upTo;
  });
  bins.push({ upTo: Infinity, colour: INCIDENCE_COLOURS[bins.length], label: `above ${formatCount(low)}` });
  return bins;
}

function colourBins() {
  return state.colourBy === "growth" ? GROWTH_BINS : incidenceBins();
}

function valueOf(id) {
  const summary = state.summaries.get(id);
  if (!summary) return null;
  return state.colourBy === "growth" ? summary.growth : summary.last_week;
}

function recolour() {
  const bins = colourBins();
  map.colour((id) => {
    const value = valueOf(id);
    if (value === null || value === undefined) return NO_DATA;
    return (bins.find((bin) => value <= bin.upTo) || bins[bins.length - 1]).colour;
  });
  map.describe((id) => {
    const s = state.summaries.get(id);
    if (!s) return "no forecast";
    return `last 7 days: ${formatCount(s.last_week)} · next 7 days: ${formatCount(s.next_week)}`
      + ` · growth ${percent(s.growth)}`;
  });
  const legend = $("#legend");
  legend.replaceChildren(element("span", { class: "legend-title" },
    state.colourBy === "growth" ? "forecast next 7 days vs last 7 days"
      : "new cases in the last 7 days"));
  for (const bin of [...bins, { colour: NO_DATA, label: "no data" }]) {
    const item = element("span", { class: "legend-item" });
    const swatch = element("span", { class: "swatch" });
    swatch.style.background = bin.colour;
    item.append(swatch, document.createTextNode(bin.label));
    legend.append(item);
  }
}

// ---- data loading ---------------------------------------------------------------------------

async function loadSummaries(pending = null) {
  const summary = await (pending || getJSON("/v1/dashboard/tracts", withLayer()));
  state.summary = summary;
  state.summaries = new Map(summary.tracts.map((row) => [row.id, row]));
  $("#map-caption").textContent = `Forecasts of ${summary.model_version} from data as of `
    + `${summary.as_of} (data version ${summary.data_version}); weeks of ${summary.window_days} days.`;
  recolour();
  return summary;
}

async function loadVersions() {
  const [models, current] = await Promise.all([
    getJSON("/v1/models", withLayer()),
    getJSON("/v1/models/current", withLayer()).catch((error) => {
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    }),
  ]);
  state.versions = models.versions;
  state.current = current ? current.version : models.current;
  $("#serving-version").textContent = state.current || "nothing yet";
  $("#serving-details").textContent = current
    ? `(${current.family}, data as of ${current.as_of}, bundle ${current.bundle_id})` : "";
  renderVersions();
  renderLiveSkill(current ? current.live_skill : null);
}

// The serving model's live MAE over the weekly seasonal naive's on the same days: one row of
// ratios per horizon (below 1: the model beats the naive forecast).
function renderLiveSkill(skill) {
  const head = $("#live-skill thead tr");
  const body = $("#live-skill tbody");
  head.replaceChildren(element("th", {}, "horizon (days)"));
  body.replaceChildren();
  if (!skill || !skill.points || skill.relative_mae === null) {
    $("#live-skill-summary").textContent = "no actuals yet to score the serving model on";
    return;
  }
  $("#live-skill-summary").textContent = `${skill.version}: live MAE ${metric(skill, "mae")} vs `
    + `${metric(skill, "naive_mae")} for the seasonal naive, ratio ${metric(skill, "relative_mae")}`
    + ` over ${skill.days} days (${skill.start} to ${skill.end}), ${skill.points} forecasts`;
  const row = element("tr");
  row.append(element("th", {}, "MAE / naive MAE"));
  for (const entry of skill.per_horizon) {
    head.append(element("th", {}, String(entry.horizon)));
    const cell = element("td", {}, metric(entry, "relative_mae"));
    if (typeof entry.relative_mae === "number" && entry.relative_mae > 1) cell.classList.add("worse");
    row.append(cell);
  }
  body.append(row);
}

const metric = (metrics, key) => {
  const value = metrics ? metrics[key] : undefined;
  if (typeof value !== "number") return "–";
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3);
};

function renderVersions() {
  const body = $("#versions tbody");
  body.replaceChildren();
  const newestFirst = [...state.versions].reverse();
  for (const v of newestFirst) {
    const row = element("tr", { "data-version": v.version });
    if (v.version === state.current) row.classList.add("serving");
    const cells = [v.version, v.family, (v.created_at || "").replace("T", " ").slice(0, 16),
      (v.data_version || "").slice(0, 12), metric(v.metrics, "mae"), metric(v.metrics, "wape"),
      metric(v.metrics, "wis"), metric(v.metrics, "robust_relative_wis"),
      metric(v.metrics, "coverage")];
    for (const text of cells) row.append(element("td", {}, text));
    const mark = element("td");
    if (v.version === state.current) mark.append(element("span", { class: "badge" }, "serving"));
    row.append(mark);
    body.append(row);
  }
  for (const [selectId, keepFirst] of [["#rollback-to", true], ["#promote-version", false]]) {
    const select = $(selectId);
    const chosen = select.value;
    const first = keepFirst ? select.options[0] : null;
    select.replaceChildren(...(first ? [first] : []));
    for (const v of newestFirst) {
      if (v.version === state.current) continue;
      select.append(element("option", { value: v.version }, `${v.version} (${v.family})`));
    }
    if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
  }
}

async function loadEvents() {
  const { events } = await getJSON("/v1/events", withLayer());
  const list = $("#events");
  list.replaceChildren();
  if (!events.length) list.append(element("li", { class: "muted" }, "no events yet"));
  for (const event of events) {
    const item = element("li", { class: `event ${event.kind}` });
    item.append(
      element("span", { class: `kind ${event.kind}` }, event.kind.replace("_", " ")),
      element("strong", {}, ` ${event.version}`),
      element("span", { class: "muted" },
        event.from_version ? ` (from ${event.from_version})` : ""),
      element("time", { datetime: event.at }, ` ${event.at.replace("T", " ").slice(0, 19)}`),
      element("span", { class: "muted" }, ` · ${event.trigger}`),
    );
    if (event.reason) item.append(element("p", { class: "reason" }, event.reason));
    list.append(item);
  }
}

// ---- one tract ------------------------------------------------------------------------------

async function selectTract(id) {
  state.selected = id;
  map.select(id);
  const panel = $("#tract-panel");
  panel.hidden = false;
  $("#tract-title").textContent = `${state.names.get(id) || id} (${id})`;
  try {
    const answer = await getJSON(`/v1/tracts/${encodeURIComponent(id)}/history`, withLayer());
    if (state.selected !== id) return; // another tract was clicked meanwhile
    showTract(id, answer);
  } catch (error) {
    $("#tract-facts").replaceChildren(element("dd", { class: "error" }, describeError(error)));
    $("#tract-chart").replaceChildren();
  }
}

function showTract(id, answer) {
  const summary = state.summaries.get(id) || {};
  const facts = [
    ["as of", answer.as_of],
    ["total cases", answer.total_cases.toLocaleString("en")],
    ["new cases that day", answer.new_cases.toLocaleString("en")],
    ["last 7 days", formatCount(summary.last_week)],
    ["next 7 days (forecast)", formatCount(summary.next_week)],
    ["growth", percent(summary.growth)],
    ["model", `${answer.model_version}`],
  ];
  const list = $("#tract-facts");
  list.replaceChildren();
  for (const [term, value] of facts) list.append(element("dt", {}, term), element("dd", {}, value));

  const { earlier } = drawChart($("#tract-chart"), answer);
  const key = $("#chart-key");
  key.replaceChildren(
    element("li", { class: "key history" }, "daily new cases"),
    element("li", { class: "key forecast" }, `forecast (${answer.model_version}) with interval`),
  );
  const earlierList = $("#earlier-list");
  earlierList.replaceChildren();
  earlier.forEach((other, i) => {
    const item = element("li", { class: "key earlier" });
    const swatch = element("span", { class: "line-swatch" });
    swatch.style.background = EARLIER_COLOURS[i % EARLIER_COLOURS.length];
    const error = errorAgainst(answer.history, other.forecast);
    const versus = error
      ? `: off by ${error.mae.toFixed(1)} cases a day on average over the ${error.days} days since`
      : ": no actuals yet for its days";
    item.append(swatch,
      document.createTextNode(`${other.model_version}, data as of ${other.as_of}${versus}`));
    earlierList.append(item);
  });
}

// ---- search and radius ----------------------------------------------------------------------

function numberField(form, name) {
  return Number.parseFloat(form.elements[name].value);
}

async function findPlace(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const lat = numberField(form, "lat");
  const lon = numberField(form, "lon");
  try {
    const answer = await getJSON("/v1/forecast", withLayer({ lat, lon }));
    map.markPoint(lat, lon);
    setStatus(`${lat}, ${lon} is in ${answer.tract.name}`);
    await selectTract(answer.tract.id);
  } catch (error) {
    setStatus(error.status === 404 ? `${lat}, ${lon} lies outside every tract`
      : `search failed: ${describeError(error)}`, true);
  }
}

function findName(event) {
  event.preventDefault();
  const wanted = event.currentTarget.elements.name.value.trim().toLowerCase();
  const entries = [...state.names.entries()];
  const found = entries.find(([, name]) => name.toLowerCase() === wanted)
    || entries.find(([id]) => id.toLowerCase() === wanted)
    || entries.find(([, name]) => name.toLowerCase().startsWith(wanted))
    || entries.find(([, name]) => name.toLowerCase().includes(wanted));
  if (!found) {
    setStatus(`no tract is named like “${wanted}”`, true);
    return;
  }
  setStatus("");
  selectTract(found[0]);
}

async function showRadius(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const lat = numberField(form, "lat");
  const lon = numberField(form, "lon");
  const radiusKm = numberField(form, "radius_km");
  map.setPicking(false);
  $("#radius-pick").setAttribute("aria-pressed", "false");
  try {
    const stats = await getJSON("/v1/stats/radius",
      withLayer({ lat, lon, radius_km: radiusKm }));
    map.showRadius(lat, lon, radiusKm, stats.tracts.map((t) => t.id));
    renderRadius(stats);
  } catch (error) {
    setStatus(`radius failed: ${describeError(error)}`, true);
  }
}

function renderRadius(stats) {
  $("#radius-panel").hidden = false;
  $("#radius-title").textContent =
    `Within ${stats.radius_km} km of ${stats.center.lat}, ${stats.center.lon}`;
  const table = element("table", { id: "radius-table" });
  const head = element("tr");
  for (const title of ["tract", "km", "total", "new", "next day"]) head.append(element("th", {}, title));
  table.append(element("thead"), element("tbody"), element("tfoot"));
  table.tHead.append(head);
  for (const t of stats.tracts) {
    const row = element("tr", { "data-id": t.id });
    row.append(element("td", {}, t.name), element("td", {}, t.distance_km.toFixed(1)),
      element("td", {}, t.total_cases.toLocaleString("en")),
      element("td", {}, t.new_cases.toLocaleString("en")),
      element("td", {}, t.next_day.new_cases.toFixed(1)));
    row.addEventListener("click", () => selectTract(t.id));
    table.tBodies[0].append(row);
  }
  const totals = element("tr", { class: "totals" });
  totals.append(element("td", {}, `${stats.totals.tracts} tracts`), element("td"),
    element("td", {}, stats.totals.total_cases.toLocaleString("en")),
    element("td", {}, stats.totals.new_cases.toLocaleString("en")),
    element("td", {}, Number(stats.totals.next_day).toFixed(1)));
  table.tFoot.append(totals);
  const results = $("#radius-results");
  results.replaceChildren(table);
  if (stats.without_data.length) {
    results.append(element("p", { class: "muted" },
      `without data: ${stats.without_data.map((t) => t.name).join(", ")}`));
  }
}

function pickCentre(lat, lon) {
  const form = $("#radius-form");
  form.elements.lat.value = lat.toFixed(4);
  form.elements.lon.value = lon.toFixed(4);
  form.requestSubmit();
}

// ---- admin ----------------------------------------------------------------------------------

function token() {
  const value = $("#admin-token").value.trim();
  if ($("#admin-remember").checked && value) sessionStorage.setItem(TOKEN_KEY, value);
  return value;
}

/** One line saying what an admin answer means, above its JSON. */
function headline(body) {
  if (!body) return "no answer body";
  if (body.error) return body.message || body.error;
  if (body.event) {
    const { kind, version, from_version: from, reason } = body.event;
    return `${kind.replace("_", " ")}: ${version} serves now`
      + `${from ? ` (was ${from})` : ""}${reason ? `: ${reason}` : ""}`;
  }
  if (body.status) return `retrain ${body.status}${body.task_id ? ` (task ${body.task_id})` : ""}`;
  return "done";
}

async function runAdmin(label, path, body) {
  const result = $("#admin-result");
  const bearer = token();
  if (!bearer) {
    result.textContent = "enter the admin token first";
    result.className = "result error";
    return;
  }
  result.textContent = `${label} …`;
  result.className = "result";
  try {
    const answer = await postAdmin(path, bearer, body);
    result.textContent = `${label}: HTTP ${answer.status} — ${headline(answer.body)}\n\n`
      + JSON.stringify(answer.body, null, 2);
    result.className = answer.ok ? "result ok" : "result error";
    await refreshAfterChange();
  } catch (error) {
    result.textContent = `${label} failed: ${describeError(error)}`;
    result.className = "result error";
  }
}

/** After an admin action: versions and events now, the map once the api serves the change. */
async function refreshAfterChange() {
  await Promise.all([loadVersions(), loadEvents()]).catch((error) =>
    setStatus(`refresh failed: ${describeError(error)}`, true));
  for (let attempt = 0; attempt < 20; attempt++) {
    const summary = await loadSummaries().catch(() => null);
    if (!summary || summary.model_version === state.current) break;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  if (state.selected) await selectTract(state.selected);
}

// ---- start ----------------------------------------------------------------------------------

const map = new TractMap($("#map"), {
  onSelect: (id) => selectTract(id),
  onPick: pickCentre,
});

function wire() {
  for (const input of document.querySelectorAll("#colour-by input")) {
    input.addEventListener("change", () => {
      state.colourBy = input.value;
      recolour();
    });
  }
  $("#coord-search").addEventListener("submit", findPlace);
  $("#name-search").addEventListener("submit", findName);
  $("#radius-form").addEventListener("submit", showRadius);
  $("#radius-pick").addEventListener("click", () => {
    const on = !map.picking;
    map.setPicking(on);
    $("#radius-pick").setAttribute("aria-pressed", String(on));
    setStatus(on ? "click the map to put the radius's centre there" : "");
  });
  $("#radius-clear").addEventListener("click", () => {
    map.clearRadius();
    $("#radius-panel").hidden = true;
  });
  $("#admin-token-form").addEventListener("submit", (event) => event.preventDefault());
  $("#admin-remember").addEventListener("change", (event) => {
    if (!event.currentTarget.checked) sessionStorage.removeItem(TOKEN_KEY);
    else token();
  });
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) {
    $("#admin-token").value = saved;
    $("#admin-remember").checked = true;
  }
  $("#rollback-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const to = $("#rollback-to").value;
    runAdmin("roll back", "/v1/admin/rollback", withLayer(to ? { to_version: to } : {}));
  });
  $("#promote-form").addEventListener("submit", (event) => {
    event.preventDefault();
    runAdmin("promote", "/v1/admin/promote", withLayer({ version: $("#promote-version").value }));
  });
  $("#retrain-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const layer = state.layer ? `?${new URLSearchParams({ layer: state.layer })}` : "";
    runAdmin("retrain", `/v1/admin/retrain${layer}`);
  });
}

/** With several layers, a choice of layer (the layers file's first shown first); else none. */
async function loadLayers() {
  const { layers } = await getJSON("/v1/layers");
  if (layers.length < 2) return;
  const select = $("#layer");
  select.replaceChildren(...layers.map((layer) => element("option", { value: layer.name },
    `${layer.name} (${layer.tracts ?? "?"} tracts)`)));
  state.layer = layers[0].name;
  $("#layer-pick").hidden = false;
}

/** Everything the page shows of one layer: outlines, forecasts, versions and events. */
async function loadLayer() {
  const problems = [];
  const outlines = getJSON("/v1/tracts/geojson", withLayer()).then((collection) => {
    state.names = new Map();
    for (const feature of collection.features) {
      state.names.set(feature.properties.id, feature.properties.name);
    }
    $("#tract-names").replaceChildren(...[...state.names.values()].sort()
      .map((name) => element("option", { value: name })));
    map.draw(collection);
    document.body.dataset.tracts = String(collection.features.length);
  });
  const summaries = getJSON("/v1/dashboard/tracts", withLayer());
  summaries.catch(() => {}); // reported below, once the outlines are drawn
  try {
    await outlines;
  } catch (error) {
    problems.push(`tract outlines: ${describeError(error)}`);
  }
  await loadSummaries(summaries).catch((error) =>
    problems.push(`forecasts: ${describeError(error)}`));
  await Promise.all([
    loadVersions().catch((error) => problems.push(`versions: ${describeError(error)}`)),
    loadEvents().catch((error) => problems.push(`events: ${describeError(error)}`)),
  ]);
  setStatus(problems.join("; "), problems.length > 0);
}

async function changeLayer(event) {
  state.layer = event.currentTarget.value;
  state.selected = null;
  $("#tract-panel").hidden = true; // and emptied: its tract is of the other layer
  for (const part of ["#tract-facts", "#tract-chart", "#chart-key", "#earlier-list"]) {
    $(part).replaceChildren();
  }
  $("#radius-panel").hidden = true; // the map is drawn again, without the radius
  setStatus("loading …");
  await loadLayer();
}

async function start() {
  wire();
  setStatus("loading …");
  await loadLayers().catch(() => {}); // one layer, or an api without /v1/layers: no choice
  $("#layer").addEventListener("change", changeLayer);
  await loadLayer();
  document.body.dataset.ready = "true";
}

start();
