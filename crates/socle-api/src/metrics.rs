//! Prometheus metrics, declared next to what they measure and exposed at
//! `/metrics` in the text exposition format.

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The route template (`/api/v1/entities/{id}`), never the raw path, so
    /// label cardinality stays bounded whatever clients send.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IngestLabels {
    /// `chirpstack`, `chirpstack-mqtt`, `ttn`, `ttn-mqtt`, `generic`, `generic-mqtt`.
    pub source: String,
    /// `stored`, `duplicate`, `recorded`, `ignored`, or the refusal's code
    /// (`unknown-device`, `invalid-json`, `overloaded`…): a bounded set.
    pub result: String,
}

pub struct Metrics {
    pub registry: Registry,
    pub ingested: Family<IngestLabels, Counter>,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub observations_written: Counter,
    pub observations_duplicate: Counter,
    pub storage_bytes: Gauge<u64, AtomicU64>,
    pub entities: Gauge<u64, AtomicU64>,
    pub series: Gauge<u64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("socle");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
        });
        registry.register("http_request_duration_seconds", "HTTP request latency", latency.clone());
        let ingested = Family::<IngestLabels, Counter>::default();
        registry.register("ingest_bodies", "Bodies received by ingestion (HTTP and MQTT), by result", ingested.clone());
        let observations_written = Counter::default();
        registry.register("observations_written", "Observations stored", observations_written.clone());
        let observations_duplicate = Counter::default();
        registry.register(
            "observations_duplicate",
            "Observations received again and not stored twice",
            observations_duplicate.clone(),
        );
        let storage_bytes = Gauge::<u64, AtomicU64>::default();
        registry.register("storage_bytes", "Size of the database on disk", storage_bytes.clone());
        let entities = Gauge::<u64, AtomicU64>::default();
        registry.register("entities", "Entities stored", entities.clone());
        let series = Gauge::<u64, AtomicU64>::default();
        registry.register("series", "Time series stored", series.clone());
        Self {
            registry,
            ingested,
            requests,
            latency,
            observations_written,
            observations_duplicate,
            storage_bytes,
            entities,
            series,
        }
    }
}

impl Metrics {
    pub fn record_write(&self, outcome: socle_domain::WriteOutcome) {
        self.observations_written.inc_by(outcome.stored);
        self.observations_duplicate.inc_by(outcome.duplicates);
    }
}

/// Ingestion results, whichever way the body came (HTTP, MQTT).
pub struct IngestMetrics(pub std::sync::Arc<Metrics>);

impl socle_ingestion::IngestObserver for IngestMetrics {
    fn observed(&self, source: &'static str, result: &Result<socle_ingestion::Accepted, socle_ingestion::Rejection>) {
        let label = match result {
            Ok(a) => a.outcome.as_str(),
            Err(r) => r.code(),
        };
        self.0.ingested.get_or_create(&IngestLabels { source: source.into(), result: label.into() }).inc();
        if let Ok(a) = result {
            self.0.record_write(socle_domain::WriteOutcome {
                stored: a.observations,
                duplicates: a.duplicate_observations,
            });
        }
    }
}

/// Middleware counting requests and timing them per route.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let started = Instant::now();
    let res = next.run(req).await;
    let m = &state.metrics;
    m.latency.get_or_create(&RouteLabels { route: route.clone() }).observe(started.elapsed().as_secs_f64());
    m.requests.get_or_create(&RequestLabels { method, route, status: res.status().as_u16() }).inc();
    res
}
