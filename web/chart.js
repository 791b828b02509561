// A tract's chart: daily new cases as bars, the forecast as a line in its interval band, and
// earlier forecasts as thin lines over the days that have happened since.

import { svgElement } from "./map.js";

const WIDTH = 640;
const HEIGHT = 280;
const MARGIN = { top: 14, right: 14, bottom: 30, left: 52 };
const SHOWN_HISTORY_DAYS = 56; // eight weeks before as_of, then the forecast
const DAY_MS = 86400000;
export const EARLIER_COLOURS = ["#6a3d9a", "#33a02c", "#b15928", "#1f78b4", "#e31a1c"];

export const dayNumber = (iso) => Math.round(Date.parse(`${iso}T00:00:00Z`) / DAY_MS);
const isoOf = (day) => new Date(day * DAY_MS).toISOString().slice(0, 10);

function niceStep(max, ticks) {
  const raw = max / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = [1, 2, 2.5, 5, 10].find((m) => m * power >= raw) * power;
  return unit;
}

export function formatCount(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (abs >= 1e4) return `${(value / 1e3).toFixed(0)}k`;
  if (abs >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  return `${Math.round(value)}`;
}

/** Mean absolute error of a forecast over the days history has actuals for. */
export function errorAgainst(history, forecast) {
  const actual = new Map(history.map((d) => [d.date, d.new_cases]));
  const pairs = forecast.filter((d) => actual.has(d.date));
  if (!pairs.length) return null;
  const total = pairs.reduce((sum, d) => sum + Math.abs(d.new_cases - actual.get(d.date)), 0);
  return { days: pairs.length, mae: total / pairs.length };
}

/** Draw the chart of one /v1/tracts/<id>/history answer into svg. */
export function drawChart(svg, answer) {
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  const asOf = dayNumber(answer.as_of);
  const lastDay = Math.max(asOf, ...answer.forecast.map((d) => dayNumber(d.date)));
  let firstDay = asOf - SHOWN_HISTORY_DAYS + 1;
  for (const other of answer.earlier) {
    if (other.forecast.length) firstDay = Math.min(firstDay, dayNumber(other.forecast[0].date));
  }
  if (answer.history.length) firstDay = Math.max(firstDay, dayNumber(answer.history[0].date));
  firstDay = Math.min(firstDay, asOf);
  const history = answer.history.filter((d) => dayNumber(d.date) >= firstDay);
  const earlier = answer.earlier
    .map((other) => ({
      ...other,
      forecast: other.forecast.filter((d) => dayNumber(d.date) >= firstDay),
    }))
    .filter((other) => other.forecast.length);

  const values = [
    ...history.map((d) => d.new_cases),
    ...answer.forecast.map((d) => d.upper),
    ...earlier.flatMap((o) => o.forecast.map((d) => d.new_cases)),
  ];
  const step = niceStep(Math.max(1, ...values), 4);
  const top = Math.ceil(Math.max(1, ...values) / step) * step;
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const days = lastDay - firstDay + 1;
  const dayW = plotW / days;
  const x = (day) => MARGIN.left + (day - firstDay + 0.5) * dayW;
  const y = (value) => MARGIN.top + plotH * (1 - Math.max(0, value) / top);

  const axes = svgElement("g", { class: "axes" }, svg);
  for (let value = 0; value <= top + 1e-9; value += step) {
    svgElement("line", {
      x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(value), y2: y(value), class: "grid",
    }, axes);
    svgElement("text", { x: MARGIN.left - 6, y: y(value) + 4, class: "tick y" }, axes)
      .textContent = formatCount(value);
  }
  for (let day = firstDay; day <= lastDay; day++) {
    const iso = isoOf(day);
    if (iso.endsWith("-01") || (days <= 40 && new Date(day * DAY_MS).getUTCDay() === 1)) {
      svgElement("text", { x: x(day), y: HEIGHT - 10, class: "tick x" }, axes)
        .textContent = iso.slice(5);
    }
  }

  const bars = svgElement("g", { class: "history" }, svg);
  for (const d of history) {
    const day = dayNumber(d.date);
    const bar = svgElement("rect", {
      x: (x(day) - dayW * 0.4).toFixed(2),
      y: y(d.new_cases).toFixed(2),
      width: Math.max(dayW * 0.8, 0.5).toFixed(2),
      height: Math.max(y(0) - y(d.new_cases), 0).toFixed(2),
      class: "history-bar",
    }, bars);
    svgElement("title", {}, bar).textContent = `${d.date}: ${d.new_cases} new cases`;
  }

  svgElement("line", {
    x1: x(asOf + 0.5), x2: x(asOf + 0.5), y1: MARGIN.top, y2: y(0), class: "as-of",
  }, svg);
  svgElement("text", { x: x(asOf + 0.5) + 4, y: MARGIN.top + 10, class: "as-of-label" }, svg)
    .textContent = `as of ${answer.as_of}`;

  const points = (rows, key) => rows.map((d) => `${x(dayNumber(d.date)).toFixed(1)},${y(d[key]).toFixed(1)}`);
  if (answer.forecast.length) {
    const upper = points(answer.forecast, "upper");
    const lower = points(answer.forecast, "lower").reverse();
    svgElement("path", { d: `M${upper.join("L")}L${lower.join("L")}Z`, class: "forecast-band" }, svg);
    svgElement("path", { d: `M${points(answer.forecast, "new_cases").join("L")}`, class: "forecast-line" }, svg);
    const dots = svgElement("g", { class: "forecast-points" }, svg);
    for (const d of answer.forecast) {
      const dot = svgElement("circle", {
        cx: x(dayNumber(d.date)).toFixed(1), cy: y(d.new_cases).toFixed(1), r: 2.5,
      }, dots);
      svgElement("title", {}, dot).textContent =
        `${d.date}: ${d.new_cases.toFixed(1)} (${d.lower.toFixed(1)}–${d.upper.toFixed(1)})`;
    }
  }
  earlier.forEach((other, i) => {
    const line = svgElement("path", {
      d: `M${points(other.forecast, "new_cases").join("L")}`,
      class: "earlier-line",
      stroke: EARLIER_COLOURS[i % EARLIER_COLOURS.length],
      "data-version": other.model_version,
    }, svg);
    svgElement("title", {}, line).textContent =
      `${other.model_version}, data as of ${other.as_of}`;
  });
  return { earlier };
}
