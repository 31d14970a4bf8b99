// One EventSource per page on /api/v1/live: the server sends only what the
// visitor may see. Subscribers get each batch of observations.
const subscribers = new Set();
const alertSubscribers = new Set();
let source = null;

/** Changes of the alerts the visitor may see (members only). */
export function onAlert(callback) {
  alertSubscribers.add(callback);
  onLive(() => {});
}

export function onLive(callback, entity) {
  subscribers.add(callback);
  if (!source) {
    const url = entity ? `/api/v1/live?entity=${encodeURIComponent(entity)}` : "/api/v1/live";
    source = new EventSource(url);
    source.addEventListener("alert", (ev) => {
      let change;
      try {
        change = JSON.parse(ev.data);
      } catch {
        return;
      }
      for (const s of alertSubscribers) s(change);
    });
    source.addEventListener("observations", (ev) => {
      let batch;
      try {
        batch = JSON.parse(ev.data);
      } catch {
        return;
      }
      for (const s of subscribers) s(batch);
    });
  }
}

/** Elements `[data-live-entity][data-live-attribute]` show the latest value. */
export function initLiveValues(root) {
  const cells = root.querySelectorAll("[data-live-entity][data-live-attribute]");
  if (!cells.length) return;
  const index = new Map();
  const entities = new Set();
  for (const c of cells) {
    const key = `${c.dataset.liveEntity}|${c.dataset.liveAttribute}`;
    if (!index.has(key)) index.set(key, []);
    index.get(key).push(c);
    entities.add(c.dataset.liveEntity);
  }
  const only = entities.size === 1 ? [...entities][0] : undefined;
  const lang = document.documentElement.lang || "fr";
  onLive((batch) => {
    for (const o of batch) {
      const targets = index.get(`${o.entity}|${o.attribute}`);
      if (!targets) continue;
      for (const c of targets) {
        c.textContent = formatValue(o.value, o.unitCode, lang);
        c.classList.add("updated");
        setTimeout(() => c.classList.remove("updated"), 1500);
        const age = document.getElementById(c.dataset.liveAge || "");
        if (age) {
          age.textContent = new Date(o.observedAt).toLocaleString(lang);
          age.setAttribute("datetime", o.observedAt);
        }
      }
    }
  }, only);
}

const UNITS = { CEL: "°C", KWH: "kWh", KWT: "kW", MTQ: "m³", MQH: "m³/h", MTR: "m", C62: "%", P1: "%", GQ: "µg/m³", LTR: "L", VLT: "V" };

export function formatValue(value, unit, lang) {
  const u = unit ? UNITS[unit] ?? unit : "";
  if (typeof value === "number") {
    // Ratios (C62) read as percentages, as on the server-rendered page.
    if (unit === "C62") value *= 100;
    const n = value.toLocaleString(lang, { maximumFractionDigits: Math.abs(value) < 10 ? 2 : 1 });
    return u ? `${n} ${u}` : n;
  }
  return String(value);
}

/** The alert list (`#liste-alertes`) is read again when an alert changes. */
export function initLiveAlerts(root) {
  const list = root.getElementById("liste-alertes");
  if (!list) return;
  let pending = null;
  onAlert(() => {
    if (pending) return;
    // Several changes in a burst (an engine batch): one reload.
    pending = setTimeout(async () => {
      pending = null;
      try {
        const res = await fetch(location.href, { credentials: "same-origin" });
        if (!res.ok) return;
        const doc = new DOMParser().parseFromString(await res.text(), "text/html");
        const fresh = doc.getElementById("liste-alertes");
        if (fresh) {
          list.innerHTML = fresh.innerHTML;
          list.dataset.updated = String(Number(list.dataset.updated || 0) + 1);
        }
      } catch {
        /* the next change tries again */
      }
    }, 300);
  });
}
