// A dataset's map on the open-data portal (and in its map widget): the
// filtered records, given by the page as GeoJSON in `data-geojson` (the same
// features as the GeoJSON export), as points and shapes on the configured
// basemap. The preview table is the text alternative.
import * as maplibregl from "maplibre-gl/dist/maplibre-gl-csp.js";

const BLUE = "#000091";

export function initDatasetMap(el) {
  const d = el.dataset;
  let fc;
  try {
    fc = JSON.parse(d.geojson || "null");
  } catch {
    fc = null;
  }
  const features = (fc && Array.isArray(fc.features) ? fc.features : []).filter((f) => f && f.geometry);
  maplibregl.setWorkerUrl(d.worker);
  const sources = { donnees: { type: "geojson", data: { type: "FeatureCollection", features } } };
  const layers = [{ id: "fond", type: "background", paint: { "background-color": "#f3f1ea" } }];
  if (d.tiles) {
    sources.tuiles = { type: "raster", tiles: [d.tiles], tileSize: 256, attribution: d.attribution || "", maxzoom: Number(d.maxZoom) || 19 };
    layers.push({ id: "tuiles", type: "raster", source: "tuiles" });
  }
  const polygon = ["match", ["geometry-type"], ["Polygon", "MultiPolygon"], true, false];
  const line = ["match", ["geometry-type"], ["LineString", "MultiLineString"], true, false];
  const point = ["match", ["geometry-type"], ["Point", "MultiPoint"], true, false];
  layers.push(
    { id: "surfaces", type: "fill", source: "donnees", filter: polygon, paint: { "fill-color": BLUE, "fill-opacity": 0.2 } },
    { id: "contours", type: "line", source: "donnees", filter: ["any", polygon, line], paint: { "line-color": BLUE, "line-width": 2 } },
    {
      id: "points",
      type: "circle",
      source: "donnees",
      filter: point,
      paint: { "circle-color": BLUE, "circle-radius": 6, "circle-stroke-color": "#fff", "circle-stroke-width": 1.5 },
    },
  );
  const box = bounds(features);
  const map = new maplibregl.Map({
    container: el,
    style: { version: 8, sources, layers },
    ...(box ? { bounds: box, fitBoundsOptions: { padding: 32, maxZoom: 16 } } : { center: [2.5, 46.5], zoom: 5 }),
    maxZoom: Number(d.maxZoom) || 19,
    attributionControl: d.tiles ? { compact: true } : false,
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }));
  const canvas = map.getCanvas();
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", d.label || "");
  // A click shows the record's fields, written as text (never as HTML).
  map.on("click", (e) => {
    const hit = map.queryRenderedFeatures(e.point, { layers: ["points", "surfaces"] })[0];
    if (!hit) return;
    const dl = document.createElement("dl");
    for (const [k, v] of Object.entries(hit.properties || {})) {
      if (v === null || v === undefined || v === "") continue;
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = typeof v === "object" ? JSON.stringify(v) : String(v);
      dl.append(dt, dd);
    }
    new maplibregl.Popup({ maxWidth: "20rem" }).setLngLat(e.lngLat).setDOMContent(dl).addTo(map);
  });
  for (const l of ["points", "surfaces"]) {
    map.on("mouseenter", l, () => (canvas.style.cursor = "pointer"));
    map.on("mouseleave", l, () => (canvas.style.cursor = ""));
  }
  map.on("load", () => {
    el.dataset.ready = String(features.length);
  });
}

function bounds(features) {
  let box = null;
  const visit = (c) => {
    if (!Array.isArray(c)) return;
    if (typeof c[0] === "number") {
      if (!box) box = [c[0], c[1], c[0], c[1]];
      else box = [Math.min(box[0], c[0]), Math.min(box[1], c[1]), Math.max(box[2], c[0]), Math.max(box[3], c[1])];
    } else for (const x of c) visit(x);
  };
  for (const f of features) visit(f.geometry.coordinates);
  return box && [[box[0], box[1]], [box[2], box[3]]];
}
