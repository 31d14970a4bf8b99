// The entity page's chart: one series over the chosen period and step,
// optionally against the previous period, zoomable (drag to zoom,
// double-click to reset). The CSV link follows the zoom so the download is
// what the chart shows.
import uPlot from "uplot";
import { onLive, formatValue } from "./live.js";

export async function initChart(el) {
  const d = el.dataset;
  const from = new Date(d.from);
  const to = new Date(d.to);
  const span = to - from;
  const lang = document.documentElement.lang || "fr";
  const url = (f, t) =>
    `/api/v1/entities/${encodeURIComponent(d.entity)}/series/${encodeURIComponent(d.attribute)}` +
    `?from=${encodeURIComponent(f.toISOString())}&to=${encodeURIComponent(t.toISOString())}&step=${d.step}` +
    (d.step === "raw" ? "" : "&fn=avg");
  const get = async (f, t) => {
    const r = await fetch(url(f, t), { headers: { accept: "application/json" } });
    if (!r.ok) return [];
    const body = await r.json();
    return body.points
      .map((p) => [new Date(p.t).getTime() / 1000, d.step === "raw" ? p.value : p.avg])
      .filter((p) => typeof p[1] === "number");
  };
  const current = await get(from, to);
  let previous = [];
  if (d.compare === "1") {
    previous = (await get(new Date(from - span), from)).map(([t, v]) => [t + span / 1000, v]);
  }
  // uPlot wants one x axis: merge both series on the union of instants.
  const xs = [...new Set([...current.map((p) => p[0]), ...previous.map((p) => p[0])])].sort((a, b) => a - b);
  const cur = new Map(current);
  const prev = new Map(previous);
  const data = [xs, xs.map((x) => cur.get(x) ?? null)];
  const series = [{}, { label: d.label, stroke: "#000091", width: 2, spanGaps: true, value: (u, v) => (v == null ? "—" : formatValue(v, d.unit, lang)) }];
  if (d.compare === "1") {
    data.push(xs.map((x) => prev.get(x) ?? null));
    series.push({ label: d.previousLabel, stroke: "#b34000", width: 1.5, dash: [6, 4], spanGaps: true });
  }
  el.replaceChildren();
  const csv = document.getElementById("csv");
  const plot = new uPlot(
    {
      width: Math.max(280, el.clientWidth),
      height: 320,
      series,
      scales: { x: { time: true } },
      axes: [{}, { size: 60 }],
      hooks: {
        setScale: [
          (u, key) => {
            if (key !== "x" || !csv) return;
            const { min, max } = u.scales.x;
            if (min == null || max == null) return;
            const link = new URL(csv.href, window.location.href);
            link.searchParams.set("du", new Date(min * 1000).toISOString());
            link.searchParams.set("au", new Date(max * 1000).toISOString());
            csv.href = link.pathname + link.search;
          },
        ],
      },
    },
    data,
    el,
  );
  el.dataset.ready = String(xs.length);
  new ResizeObserver(() => plot.setSize({ width: Math.max(280, el.clientWidth), height: 320 })).observe(el);

  if (d.step === "raw" && d.live === "1") {
    onLive((batch) => {
      for (const o of batch) {
        if (o.entity !== d.entity || o.attribute !== d.attribute || typeof o.value !== "number") continue;
        const t = new Date(o.observedAt).getTime() / 1000;
        data[0].push(t);
        data[1].push(o.value);
        if (data[2]) data[2].push(null);
      }
      plot.setData(data);
    }, d.entity);
  }
}
