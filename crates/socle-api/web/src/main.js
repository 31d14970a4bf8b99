// The hypervisor's only script. Pages are complete without it (server-rendered
// HTML, forms, tables); it adds the map, the charts and live values.
import { initMap } from "./map.js";
import { initChart } from "./chart.js";
import { initDatasetMap } from "./datamap.js";
import { initLiveAlerts, initLiveValues } from "./live.js";
import { initPush } from "./push.js";
import { initRuleForm } from "./rules.js";

function boot() {
  const map = document.getElementById("carte");
  if (map) initMap(map);
  const datasetMap = document.getElementById("carte-donnees");
  if (datasetMap) initDatasetMap(datasetMap);
  const chart = document.getElementById("graphique");
  if (chart) initChart(chart);
  initLiveValues(document);
  initPush(document);
  initLiveAlerts(document);
  initRuleForm(document);
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
