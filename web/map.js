// The tract map: GeoJSON outlines drawn as SVG paths in a cos(latitude) equirectangular
// projection fitted to the layer, coloured by a per-tract value, with a circle overlay.

const SVG_NS = "http://www.w3.org/2000/svg";
const WIDTH = 1000; // viewBox width; the height follows the layer's shape
const EARTH_KM = 6371.0088;

export function svgElement(name, attributes = {}, parent = null) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (parent) parent.appendChild(element);
  return element;
}

function eachPosition(geometry, visit) {
  const polygons = geometry.type === "Polygon" ? [geometry.coordinates]
    : geometry.type === "MultiPolygon" ? geometry.coordinates : [];
  for (const polygon of polygons) for (const ring of polygon) for (const p of ring) visit(p);
}

/** A projection fitted to the features' bounding box: [lon, lat] -> [x, y] and back. */
export function fitProjection(features) {
  let west = Infinity, east = -Infinity, south = Infinity, north = -Infinity;
  for (const feature of features) {
    eachPosition(feature.geometry, ([lon, lat]) => {
      west = Math.min(west, lon); east = Math.max(east, lon);
      south = Math.min(south, lat); north = Math.max(north, lat);
    });
  }
  const kx = Math.cos(((south + north) / 2) * Math.PI / 180);
  const scale = WIDTH / Math.max((east - west) * kx, 1e-9);
  const height = Math.max((north - south) * scale, 1);
  return {
    width: WIDTH,
    height,
    project: ([lon, lat]) => [(lon - west) * kx * scale, (north - lat) * scale],
    invert: ([x, y]) => [west + x / (kx * scale), north - y / scale],
  };
}

function pathData(geometry, project) {
  const polygons = geometry.type === "Polygon" ? [geometry.coordinates]
    : geometry.type === "MultiPolygon" ? geometry.coordinates : [];
  const parts = [];
  for (const polygon of polygons) {
    for (const ring of polygon) {
      const points = ring.map((p) => project(p).map((v) => v.toFixed(1)).join(","));
      parts.push(`M${points.join("L")}Z`);
    }
  }
  return parts.join("");
}

/** Points of a geodesic circle on the sphere, as [lon, lat]. */
export function circleRing(lat, lon, radiusKm, steps = 96) {
  const phi1 = lat * Math.PI / 180;
  const lambda1 = lon * Math.PI / 180;
  const delta = radiusKm / EARTH_KM;
  const ring = [];
  for (let i = 0; i <= steps; i++) {
    const theta = (2 * Math.PI * i) / steps;
    const phi2 = Math.asin(Math.sin(phi1) * Math.cos(delta)
      + Math.cos(phi1) * Math.sin(delta) * Math.cos(theta));
    const lambda2 = lambda1 + Math.atan2(Math.sin(theta) * Math.sin(delta) * Math.cos(phi1),
      Math.cos(delta) - Math.sin(phi1) * Math.sin(phi2));
    ring.push([lambda2 * 180 / Math.PI, phi2 * 180 / Math.PI]);
  }
  return ring;
}

export class TractMap {
  constructor(svg, { onSelect, onPick }) {
    this.svg = svg;
    this.onSelect = onSelect;
    this.onPick = onPick;
    this.picking = false;
    this.paths = new Map(); // tract id -> path
    this.projection = null;
    this.svg.addEventListener("click", (event) => this.clicked(event));
  }

  /** Draw every feature (in place of what was drawn); properties.id and .name name the tract. */
  draw(collection) {
    const features = collection.features.filter((f) => f.geometry);
    this.projection = fitProjection(features);
    const { width, height, project } = this.projection;
    this.svg.replaceChildren();
    this.paths = new Map();
    this.svg.setAttribute("viewBox", `0 0 ${width} ${height.toFixed(1)}`);
    const tracts = svgElement("g", { class: "tracts" }, this.svg);
    for (const feature of features) {
      const { id, name } = feature.properties;
      const path = svgElement("path", {
        d: pathData(feature.geometry, project),
        class: "tract",
        "data-id": id,
        "data-name": name,
        "fill-rule": "evenodd",
        tabindex: "0",
      }, tracts);
      svgElement("title", {}, path).textContent = name;
      path.addEventListener("keydown", (event) => {
        if (event.key === "Enter") this.onSelect(id);
      });
      this.paths.set(id, path);
    }
    this.overlay = svgElement("g", { class: "overlay" }, this.svg);
  }

  clicked(event) {
    if (this.picking) {
      const point = this.svg.createSVGPoint();
      point.x = event.clientX;
      point.y = event.clientY;
      const { x, y } = point.matrixTransform(this.svg.getScreenCTM().inverse());
      const [lon, lat] = this.projection.invert([x, y]);
      this.onPick(lat, lon);
      return;
    }
    const target = event.target.closest("path.tract");
    if (target) this.onSelect(target.dataset.id);
  }

  /** Fill each tract with colourOf(id) (a CSS colour). */
  colour(colourOf) {
    for (const [id, path] of this.paths) path.setAttribute("fill", colourOf(id));
  }

  /** Add a line to each tract's tooltip (its name, then `describe(id)`). */
  describe(describe) {
    for (const [id, path] of this.paths) {
      const title = path.querySelector("title");
      title.textContent = [path.dataset.name, describe(id)].filter(Boolean).join("\n");
    }
  }

  select(id) {
    for (const path of this.svg.querySelectorAll("path.tract.selected")) {
      path.classList.remove("selected");
    }
    const path = this.paths.get(id);
    if (path) {
      path.classList.add("selected");
      path.parentNode.appendChild(path); // drawn last: its outline stays on top
    }
  }

  markPoint(lat, lon, className = "marker") {
    for (const old of this.overlay.querySelectorAll(`.${className}`)) old.remove();
    const [x, y] = this.projection.project([lon, lat]);
    svgElement("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: "5", class: className },
      this.overlay);
  }

  /** Draw the radius circle and mark the tracts it meets; null clears both. */
  showRadius(lat, lon, radiusKm, ids) {
    this.clearRadius();
    if (lat === null) return;
    const ring = circleRing(lat, lon, radiusKm).map(this.projection.project);
    const d = `M${ring.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join("L")}Z`;
    svgElement("path", { d, class: "radius-circle", id: "radius-circle" }, this.overlay);
    this.markPoint(lat, lon, "radius-centre");
    for (const id of ids) this.paths.get(id)?.classList.add("in-radius");
  }

  clearRadius() {
    for (const old of this.overlay.querySelectorAll(".radius-circle, .radius-centre")) {
      old.remove();
    }
    for (const path of this.svg.querySelectorAll("path.in-radius")) {
      path.classList.remove("in-radius");
    }
  }

  setPicking(on) {
    this.picking = on;
    this.svg.classList.toggle("picking", on);
  }
}
