// The territory map: commune outlines, one clustered GeoJSON source of the
// entities the visitor may see, coloured by current state; the raster
// basemap only when a tile server is configured. The table beside it is the
// text alternative and works without this script.
import * as maplibregl from "maplibre-gl/dist/maplibre-gl-csp.js";
import { onLive } from "./live.js";

export const STATE_COLOURS = {
  ok: "#18753c",
  on: "#9c6e00",
  off: "#3a3a3a",
  warn: "#b34000",
  alert: "#ce0500",
  fault: "#6e445a",
  unknown: "#6a6a6a",
};

const colourExpr = ["match", ["get", "state"], ...Object.entries(STATE_COLOURS).flat(), STATE_COLOURS.unknown];

export function initMap(el) {
  const d = el.dataset;
  // The data is asked for first, so it travels while MapLibre starts its
  // worker and style (the two took turns before: 0.5 s lost at 10,000 entities).
  const data = d.features && !d.point ? fetch(d.features).then((r) => (r.ok ? r.json() : null)).catch(() => null) : null;
  maplibregl.setWorkerUrl(d.worker);
  const sources = {};
  const layers = [{ id: "fond", type: "background", paint: { "background-color": "#f3f1ea" } }];
  if (d.tiles) {
    sources.tuiles = { type: "raster", tiles: [d.tiles], tileSize: 256, attribution: d.attribution || "", maxzoom: Number(d.maxZoom) || 19 };
    layers.push({ id: "tuiles", type: "raster", source: "tuiles" });
  }
  sources.communes = { type: "geojson", data: { type: "FeatureCollection", features: [] } };
  sources.entites = {
    type: "geojson",
    data: { type: "FeatureCollection", features: [] },
    cluster: true,
    clusterRadius: 40,
    clusterMaxZoom: 15,
  };
  layers.push(
    { id: "communes-fond", type: "fill", source: "communes", paint: { "fill-color": "#000091", "fill-opacity": 0.04 } },
    { id: "communes-contour", type: "line", source: "communes", paint: { "line-color": "#000091", "line-width": 2 } },
    {
      id: "grappes",
      type: "circle",
      source: "entites",
      filter: ["has", "point_count"],
      paint: {
        "circle-color": "#000091",
        "circle-opacity": 0.75,
        "circle-stroke-color": "#fff",
        "circle-stroke-width": 2,
        "circle-radius": ["step", ["get", "point_count"], 12, 20, 16, 100, 22, 500, 28],
      },
    },
    {
      id: "points",
      type: "circle",
      source: "entites",
      filter: ["!", ["has", "point_count"]],
      paint: { "circle-color": colourExpr, "circle-radius": 7, "circle-stroke-color": "#fff", "circle-stroke-width": 1.5 },
    },
  );
  const box = d.bounds ? d.bounds.split(",").map(Number) : null;
  const opening = box && box.length === 4 && box.every(Number.isFinite)
    ? { bounds: [[box[0], box[1]], [box[2], box[3]]], fitBoundsOptions: { padding: 24 } }
    : { center: [Number(d.lon) || 2.5, Number(d.lat) || 46.5], zoom: Number(d.zoom) || 5 };
  const map = new maplibregl.Map({
    container: el,
    style: { version: 8, sources, layers },
    ...opening,
    maxZoom: Number(d.maxZoom) || 19,
    attributionControl: d.tiles ? { compact: true } : false,
    cooperativeGestures: false,
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }));
  // The canvas is a picture for screen readers: the table below says the same.
  const canvas = map.getCanvas();
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", d.label || "");

  let all = [];
  const byId = new Map();
  // Search text beside the features, not in them: whatever is in a feature
  // is copied to MapLibre's worker on every setData.
  const words = new Map();
  const visibleLayers = () =>
    new Set([...document.querySelectorAll("input[name=couche]")].filter((c) => c.checked).map((c) => c.value));
  const search = document.getElementById("recherche");
  let dirty = false;
  const refresh = () => {
    const wanted = visibleLayers();
    const q = (search?.value || "").trim().toLowerCase();
    const features = all.filter(
      (f) => (wanted.size === 0 || wanted.has(f.properties.layer)) && (!q || words.get(f)?.includes(q)),
    );
    map.getSource("entites")?.setData({ type: "FeatureCollection", features });
    return features;
  };

  if (d.point) {
    // An entity page: its place only, no data to fetch.
    const [lon, lat] = d.point.split(",").map(Number);
    map.on("load", () => {
      map.getSource("entites").setData({
        type: "FeatureCollection",
        features: [{ type: "Feature", geometry: { type: "Point", coordinates: [lon, lat] }, properties: { state: d.state || "unknown" } }],
      });
      map.jumpTo({ center: [lon, lat], zoom: 15 });
      el.dataset.ready = "1";
    });
    return;
  }

  map.on("load", async () => {
    performance.mark("socle-map-load");
    const fc = await data;
    performance.mark("socle-map-data");
    if (!fc) return;
    const areas = fc.features.filter((f) => f.geometry && f.geometry.type !== "Point");
    all = fc.features.filter((f) => f.geometry && f.geometry.type === "Point");
    for (const f of all) {
      words.set(f, `${f.properties.name || ""} ${f.properties.address || ""}`.toLowerCase());
      byId.set(f.properties.id, f);
    }
    map.getSource("communes").setData({ type: "FeatureCollection", features: areas });
    refresh();
    if (!opening.bounds) {
      const around = bounds(areas.length ? areas : all);
      if (around) map.fitBounds(around, { padding: 24, animate: false });
    }
    // Time to interactive, read by the benchmark: the entities' source is
    // clustered and drawn, and the click handlers (attached before `load`)
    // answer. `idle` is MapLibre's "every source loaded, nothing left to draw".
    map.once("idle", () => {
      performance.mark("socle-map-ready");
      el.dataset.interactiveMs = String(Math.round(performance.now()));
    });
    el.dataset.ready = String(all.length);
    el.dispatchEvent(new CustomEvent("socle:map-ready", { bubbles: true }));
  });

  for (const c of document.querySelectorAll("input[name=couche]")) c.addEventListener("change", refresh);
  search?.addEventListener("input", () => {
    const found = refresh();
    const q = search.value.trim();
    if (q && found.length > 0 && found.length <= 50) {
      const box = bounds(found);
      if (box) map.fitBounds(box, { padding: 48, maxZoom: 17 });
    }
  });

  map.on("click", "grappes", async (e) => {
    const f = e.features[0];
    const zoom = await map.getSource("entites").getClusterExpansionZoom(f.properties.cluster_id);
    map.easeTo({ center: f.geometry.coordinates, zoom });
  });
  map.on("click", "points", (e) => {
    const id = e.features[0].properties.id;
    window.location.assign(`/entites/${encodeURIComponent(id)}`);
  });
  for (const l of ["grappes", "points"]) {
    map.on("mouseenter", l, () => (canvas.style.cursor = "pointer"));
    map.on("mouseleave", l, () => (canvas.style.cursor = ""));
  }

  // Live: new states change the colours; the source is rebuilt at most every 2 s.
  onLive((batch) => {
    for (const o of batch) {
      const f = byId.get(o.entity);
      if (f && o.state) {
        f.properties.state = o.state;
        dirty = true;
      }
    }
  });
  setInterval(() => {
    if (dirty) {
      dirty = false;
      refresh();
    }
  }, 2000);
}

function bounds(features) {
  let box = null;
  const visit = (c) => {
    if (typeof c[0] === "number") {
      if (!box) box = [c[0], c[1], c[0], c[1]];
      else box = [Math.min(box[0], c[0]), Math.min(box[1], c[1]), Math.max(box[2], c[0]), Math.max(box[3], c[1])];
    } else for (const x of c) visit(x);
  };
  for (const f of features) visit(f.geometry.coordinates);
  return box && [[box[0], box[1]], [box[2], box[3]]];
}
