//! The pipeline itself: parse, find the device, decode, map, store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use serde_json::{Map, Value};
use socle_domain::{Entity, Observation, OrganisationId};
use socle_ingest::downlink::{self, from_ttn as ttn_down, DownlinkUpdate};
use socle_ingest::mapping::{self, FieldProblem};
use socle_ingest::{
    chirpstack, generic, ttn, Codec, CodecLimits, DevEui, DeviceKey, IngestError, MappingContext, NetworkEvent, Uplink,
    UplinkInput, MAX_BODY_BYTES,
};
use socle_storage::{
    CommitFeed, DeadLetter, DeviceRecord, DeviceRoute, Downlink, DownlinkChange, DynStore, FrameWrite, FramesOutcome,
    HealthUpdate, NewDeadLetter, NewDownlink, StoreError,
};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::downlinks::{DownlinkRefused, DownlinkRequest};

use crate::outcome::{Accepted, IngestObserver, Outcome, Refusal, Rejection};
use crate::registry;
use crate::source::{Input, Source};

/// Bytes of an oversized body kept in its dead letter, for inspection.
const OVERSIZED_KEPT_BYTES: usize = 4096;

/// Bodies of one batch prepared at once (reads of devices and entities, codecs).
const PREPARE_CONCURRENCY: usize = 8;

/// Limits and resources of a pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Ingests running at once. Each holds at most one storage connection
    /// and one codec call; beyond this, requests wait up to `queue_wait`.
    pub max_concurrent: usize,
    /// How long an ingest waits for a free slot before being refused as
    /// overloaded. Short, so a sender's own timeout is not reached first.
    pub queue_wait: Duration,
    /// The delay given to refused senders (HTTP `Retry-After`).
    pub retry_after: Duration,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    pub codec_limits: CodecLimits,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 32,
            queue_wait: Duration::from_secs(2),
            retry_after: Duration::from_secs(5),
            max_body_bytes: MAX_BODY_BYTES,
            codec_limits: CodecLimits::default(),
        }
    }
}

/// The ingestion pipeline. Cheap to clone; clones share their slots.
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

struct Inner {
    store: DynStore,
    config: PipelineConfig,
    codecs: HashMap<String, Codec>,
    permits: Arc<Semaphore>,
    /// Where committed observations are announced (alert rules, live pages).
    feed: CommitFeed,
    /// Routes already recorded, so an uplink writes its device's route only when it changed.
    routes: Mutex<HashMap<String, DeviceRoute>>,
    /// Wakes the downlink sender when a downlink is queued.
    downlinks_queued: Notify,
    /// Told of every result (metrics); shared by all clones, set once.
    observer: OnceLock<Arc<dyn IngestObserver>>,
}

/// A failure before anything is committed.
enum Fail {
    Refuse { kind: Refusal, code: &'static str, message: String, dev_eui: Option<String> },
    Store(StoreError),
}

fn refuse(kind: Refusal, code: &'static str, message: impl Into<String>, dev_eui: Option<&DevEui>) -> Fail {
    Fail::Refuse { kind, code, message: message.into(), dev_eui: dev_eui.map(ToString::to_string) }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// What a body turns into once parsed, decoded and mapped: what to commit.
enum Prepared {
    Frames {
        frames: Vec<FrameWrite>,
        missing: Vec<String>,
    },
    Health {
        dev_eui: String,
        update: HealthUpdate,
    },
    /// News of a downlink Socle sent.
    Downlink(DownlinkUpdate),
    Ignored,
}

fn ttn_downlink(body: &[u8]) -> Result<Prepared, Fail> {
    Ok(ttn_down(body).map_err(parse_error)?.map_or(Prepared::Ignored, Prepared::Downlink))
}

/// How the device of an uplink can be reached for downlinks: through the
/// network server that delivered it. The Things Stack's tenant is only in
/// MQTT topics; a webhook uplink gives the application alone (enough on a
/// single-tenant deployment).
fn route_of(source: &Source, u: &Uplink, ttn_topic: Option<&ttn::Topic>) -> Option<DeviceRoute> {
    match source {
        Source::ChirpStack { .. } | Source::ChirpStackMqtt { .. } => {
            Some(DeviceRoute { network: "chirpstack".into(), application: u.application_id.clone()?, device_id: None })
        }
        Source::TtnMqtt { .. } => ttn_topic.map(|t| DeviceRoute {
            network: "ttn".into(),
            application: match &t.tenant {
                Some(tenant) => format!("{}@{tenant}", t.application_id),
                None => t.application_id.clone(),
            },
            device_id: Some(t.device_id.clone()),
        }),
        Source::Ttn => Some(DeviceRoute {
            network: "ttn".into(),
            application: u.application_id.clone()?,
            device_id: Some(u.device_name.clone()?),
        }),
        Source::Generic | Source::GenericMqtt { .. } => None,
    }
}

fn parse_error(e: IngestError) -> Fail {
    let kind = if matches!(e, IngestError::BodyTooLarge { .. }) { Refusal::TooLarge } else { Refusal::Malformed };
    Fail::Refuse { kind, code: e.code(), message: e.to_string(), dev_eui: None }
}

impl Pipeline {
    /// A pipeline with the built-in codecs.
    pub fn new(store: DynStore, config: PipelineConfig) -> Self {
        let codecs = socle_ingest::codec::builtins().into_iter().map(|c| (c.model().to_string(), c)).collect();
        let permits = Arc::new(Semaphore::new(config.max_concurrent.max(1)));
        Self {
            inner: Arc::new(Inner {
                store,
                config,
                codecs,
                permits,
                feed: CommitFeed::new(),
                routes: Mutex::default(),
                downlinks_queued: Notify::new(),
                observer: OnceLock::new(),
            }),
        }
    }

    /// Announces committed observations on `feed` instead of a private one.
    pub fn with_feed(self, feed: CommitFeed) -> Self {
        self.rebuild(|inner| inner.feed = feed)
    }

    /// The feed committed observations are announced on.
    pub fn feed(&self) -> &CommitFeed {
        &self.inner.feed
    }

    /// Adds (or replaces) a codec, for device models not shipped with Socle.
    pub fn with_codec(self, codec: Codec) -> Self {
        self.rebuild(|inner| {
            inner.codecs.insert(codec.model().to_string(), codec);
        })
    }

    /// Builder step; a pipeline already shared keeps its own slots.
    fn rebuild(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            store: shared.store.clone(),
            config: shared.config.clone(),
            codecs: shared.codecs.clone(),
            permits: Arc::new(Semaphore::new(shared.config.max_concurrent.max(1))),
            feed: shared.feed.clone(),
            routes: Mutex::default(),
            downlinks_queued: Notify::new(),
            observer: shared.observer.clone(),
        });
        change(&mut inner);
        Self { inner: Arc::new(inner) }
    }

    async fn learn_route(&self, eui: &DevEui, route: DeviceRoute) -> Result<(), Fail> {
        let key = eui.to_string();
        let known = self.inner.routes.lock().unwrap_or_else(PoisonError::into_inner).get(&key) == Some(&route);
        if !known {
            self.inner.store.set_device_route(&key, &route).await?;
            self.inner.routes.lock().unwrap_or_else(PoisonError::into_inner).insert(key, route);
        }
        Ok(())
    }

    /// Queues a downlink for the sender; refused if the command is not valid
    /// LoRaWAN or the device is not one of `organisation`'s.
    pub async fn enqueue_downlink(&self, request: DownlinkRequest) -> Result<Downlink, DownlinkRefused> {
        let eui = DevEui::parse(&request.dev_eui).map_err(|e| DownlinkRefused::Invalid(e.to_string()))?;
        let id = uuid::Uuid::new_v4().to_string();
        let command = downlink::Command::new(id, eui, request.f_port, request.data, request.confirmed)
            .map_err(|e| DownlinkRefused::Invalid(e.to_string()))?;
        let store = &self.inner.store;
        match store.device(&eui.to_string()).await? {
            Some(d) if d.device.organisation == request.organisation => {}
            _ => return Err(DownlinkRefused::UnknownDevice),
        }
        let new = NewDownlink {
            id: command.id,
            organisation: request.organisation,
            dev_eui: eui.to_string(),
            f_port: command.f_port,
            payload: command.data,
            confirmed: command.confirmed,
            requested_by: request.requested_by,
            // Storage keeps milliseconds: the answer says what a later read will.
            created_at: DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap_or_default(),
        };
        store.add_downlink(&new).await?;
        self.inner.downlinks_queued.notify_one();
        Ok(Downlink {
            downlink: new,
            status: socle_domain::DownlinkStatus::Queued,
            detail: None,
            f_cnt_down: None,
            sent_at: None,
            transmitted_at: None,
            acknowledged_at: None,
            failed_at: None,
        })
    }

    /// Resolves when a downlink was queued since the last call (or `timeout` passed).
    pub(crate) async fn downlink_queued(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.inner.downlinks_queued.notified()).await;
    }

    pub(crate) fn store(&self) -> &DynStore {
        &self.inner.store
    }

    /// Announces the observations of the frames stored now (not the repeats).
    async fn announce(&self, frames: &[FrameWrite], out: &FramesOutcome) {
        let feed = &self.inner.feed;
        if !feed.has_consumers() {
            return;
        }
        let fresh =
            frames.iter().zip(&out.stored).filter(|(_, s)| **s).flat_map(|(f, _)| f.observations.iter().cloned());
        feed.publish(fresh.collect()).await;
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.inner.config
    }

    /// Ingests one body. `Ok` only once everything is committed.
    pub async fn ingest(&self, input: Input) -> Result<Accepted, Rejection> {
        let result = match self.permit().await {
            Ok(_permit) => self.run_one(&input, None).await,
            Err(e) => Err(e),
        };
        self.tell(&input.source, &result);
        result
    }

    /// Reports every result from now on to `observer` (this pipeline and all
    /// its clones); returns `false` if an observer was already set.
    pub fn observe_with(&self, observer: Arc<dyn IngestObserver>) -> bool {
        self.inner.observer.set(observer).is_ok()
    }

    fn tell(&self, source: &Source, result: &Result<Accepted, Rejection>) {
        if let Some(o) = self.inner.observer.get() {
            o.observed(source.name(), result);
        }
    }

    /// Ingests several bodies (an MQTT batch) with one slot and, for the
    /// frames they carry, one transaction. Results come in input order; a
    /// refused body does not hold back the others.
    pub async fn ingest_batch(&self, inputs: &[Input]) -> Vec<Result<Accepted, Rejection>> {
        let _permit = match self.permit().await {
            Ok(p) => p,
            Err(e) => {
                let retry_after = e.retry_after().unwrap_or(self.inner.config.retry_after);
                let results: Vec<_> = inputs.iter().map(|_| Err(Rejection::Overloaded { retry_after })).collect();
                for (input, result) in inputs.iter().zip(&results) {
                    self.tell(&input.source, result);
                }
                return results;
            }
        };
        let mut results: Vec<Option<Result<Accepted, Rejection>>> = Vec::with_capacity(inputs.len());
        let mut pending: Vec<(usize, Vec<FrameWrite>, Vec<String>)> = Vec::new();
        // Each body needs its device (and entity) read, and maybe a codec run:
        // done for several bodies at once, so a batch is not a chain of round
        // trips to the database. Results come back in the batch's order.
        let mut prepared = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(PREPARE_CONCURRENCY) {
            prepared.extend(join_all(chunk.iter().map(|input| self.prepare(input))).await);
        }
        for (i, (input, prepared)) in inputs.iter().zip(prepared).enumerate() {
            match prepared {
                Ok(Prepared::Frames { frames, missing }) => {
                    results.push(None);
                    pending.push((i, frames, missing));
                }
                Ok(other) => results.push(Some(self.commit(input, other, None).await)),
                Err(f) => results.push(Some(Err(self.reject(input, f, None).await))),
            }
        }
        if !pending.is_empty() {
            let all: Vec<FrameWrite> = pending.iter().flat_map(|(_, f, _)| f.iter().cloned()).collect();
            match self.inner.store.write_frames(&all).await {
                Ok(out) => {
                    self.announce(&all, &out).await;
                    let mut at = 0;
                    for (i, frames, missing) in pending {
                        let stored = &out.stored[at..at + frames.len()];
                        at += frames.len();
                        // Per-body observation counts are not known from one
                        // shared transaction: count those of its stored frames.
                        let written: u64 = frames
                            .iter()
                            .zip(stored)
                            .filter(|(_, s)| **s)
                            .map(|(f, _)| f.observations.len() as u64)
                            .sum();
                        results[i] = Some(Ok(accepted(stored, written, 0, missing)));
                    }
                }
                Err(_) => {
                    // One body's data cannot be stored (or storage failed):
                    // store each on its own, so only the culprit is refused.
                    for (i, frames, missing) in pending {
                        let r = self.commit(&inputs[i], Prepared::Frames { frames, missing }, None).await;
                        results[i] = Some(r);
                    }
                }
            }
        }
        let results: Vec<_> = results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(self.unavailable(StoreError::Corrupt("lost result".into())))))
            .collect();
        for (input, result) in inputs.iter().zip(&results) {
            self.tell(&input.source, result);
        }
        results
    }

    /// Runs a dead letter through the pipeline again (after its device or
    /// mapping was fixed). A refusal does not create a new dead letter; a
    /// success marks this one replayed. Values without their own instant
    /// take the instant the letter was received.
    pub async fn replay(&self, letter: &DeadLetter) -> Result<Accepted, Rejection> {
        let l = &letter.letter;
        let refused = |code: &'static str, message: &str| Rejection::Refused {
            kind: Refusal::Malformed,
            code,
            message: message.to_owned(),
            dead_letter: Some(letter.id),
            dev_eui: l.dev_eui.clone(),
        };
        if l.body_size > l.body.len() as u64 {
            return Err(refused("not-replayable", "only the beginning of this oversized body was kept"));
        }
        let Some(source) = Source::from_stored(&l.source, l.event.as_deref()) else {
            return Err(refused("not-replayable", "unknown source"));
        };
        let input = Input { organisation: l.organisation.clone(), source, body: l.body.clone(), received_at: l.at };
        let _permit = self.permit().await?;
        let accepted = self.run_one(&input, Some(letter.id)).await?;
        self.inner.store.mark_dead_letter_replayed(letter.id, Utc::now()).await.map_err(|e| self.unavailable(e))?;
        Ok(accepted)
    }

    /// Refuses a body that was too large to be read whole: `input.body` is
    /// its beginning (kept in the dead letter), `size` its announced or
    /// observed size.
    pub async fn refuse_oversized(&self, input: &Input, size: u64) -> Rejection {
        let limit = self.inner.config.max_body_bytes;
        let mut head = input.clone();
        head.body.truncate(OVERSIZED_KEPT_BYTES);
        let fail = parse_error(IngestError::BodyTooLarge { size: usize::try_from(size).unwrap_or(usize::MAX), limit });
        self.reject_sized(&head, fail, None, size).await
    }

    async fn permit(&self) -> Result<OwnedSemaphorePermit, Rejection> {
        let permits = self.inner.permits.clone();
        match tokio::time::timeout(self.inner.config.queue_wait, permits.acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(Rejection::Overloaded { retry_after: self.inner.config.retry_after }),
        }
    }

    fn unavailable(&self, cause: StoreError) -> Rejection {
        Rejection::Unavailable { retry_after: self.inner.config.retry_after, cause }
    }

    async fn run_one(&self, input: &Input, replay_of: Option<i64>) -> Result<Accepted, Rejection> {
        match self.prepare(input).await {
            Ok(p) => self.commit(input, p, replay_of).await,
            Err(f) => Err(self.reject(input, f, replay_of).await),
        }
    }

    /// Records the dead letter of a refused body (unless it is a replay of
    /// one) and gives the rejection; a storage failure asks for a retry.
    async fn reject(&self, input: &Input, fail: Fail, replay_of: Option<i64>) -> Rejection {
        self.reject_sized(input, fail, replay_of, input.body.len() as u64).await
    }

    async fn reject_sized(&self, input: &Input, fail: Fail, replay_of: Option<i64>, size: u64) -> Rejection {
        let (kind, code, message, dev_eui) = match fail {
            Fail::Store(e) => return self.unavailable(e),
            Fail::Refuse { kind, code, message, dev_eui } => (kind, code, message, dev_eui),
        };
        let dead_letter = match replay_of {
            Some(id) => id,
            None => {
                let body = if size > input.body.len() as u64 || input.body.len() > self.inner.config.max_body_bytes {
                    input.body[..OVERSIZED_KEPT_BYTES.min(input.body.len())].to_vec()
                } else {
                    input.body.clone()
                };
                let letter = NewDeadLetter {
                    at: input.received_at,
                    organisation: input.organisation.clone(),
                    source: input.source.name().to_owned(),
                    event: input.source.detail().map(|d| d.chars().take(256).collect()),
                    dev_eui: dev_eui.clone(),
                    reason_code: code.to_owned(),
                    reason: message.chars().take(2000).collect(),
                    body,
                    body_size: size.max(input.body.len() as u64),
                };
                match self.inner.store.add_dead_letter(&letter).await {
                    Ok(id) => id,
                    Err(e) => return self.unavailable(e),
                }
            }
        };
        tracing::info!(
            organisation = %input.organisation,
            source = input.source.name(),
            code,
            dead_letter,
            device = dev_eui.as_deref().unwrap_or(""),
            "ingestion refused a body"
        );
        Rejection::Refused { kind, code, message, dead_letter: Some(dead_letter), dev_eui }
    }

    async fn commit(&self, input: &Input, prepared: Prepared, replay_of: Option<i64>) -> Result<Accepted, Rejection> {
        let store = &self.inner.store;
        match prepared {
            Prepared::Ignored => Ok(Accepted::empty(Outcome::Ignored)),
            Prepared::Downlink(u) => {
                let change = DownlinkChange {
                    id: u.id,
                    organisation: Some(input.organisation.clone()),
                    status: u.status,
                    at: u.at,
                    detail: u.detail,
                    f_cnt_down: u.f_cnt_down,
                };
                // A downlink unknown here (sent from the network server's own
                // console) or already further along is not an error.
                match store.advance_downlink(&change).await {
                    Ok(_) => Ok(Accepted::empty(Outcome::Recorded)),
                    Err(e) => Err(self.unavailable(e)),
                }
            }
            Prepared::Health { dev_eui, update } => match store.update_device_health(&dev_eui, &update).await {
                Ok(_) => Ok(Accepted::empty(Outcome::Recorded)),
                Err(e) => Err(self.unavailable(e)),
            },
            Prepared::Frames { frames, missing } => match store.write_frames(&frames).await {
                Ok(out) => {
                    self.announce(&frames, &out).await;
                    Ok(accepted(&out.stored, out.observations.stored, out.observations.duplicates, missing))
                }
                Err(e) if e.is_client_error() => {
                    let dev_eui = frames.first().and_then(|f| DevEui::parse(&f.dev_eui).ok());
                    let fail = refuse(Refusal::Invalid, "not-storable", e.to_string(), dev_eui.as_ref());
                    Err(self.reject(input, fail, replay_of).await)
                }
                Err(e) => Err(self.unavailable(e)),
            },
        }
    }

    async fn prepare(&self, input: &Input) -> Result<Prepared, Fail> {
        if input.body.len() > self.inner.config.max_body_bytes {
            return Err(parse_error(IngestError::BodyTooLarge {
                size: input.body.len(),
                limit: self.inner.config.max_body_bytes,
            }));
        }
        let body = &input.body;
        let (event, ttn_topic) = match &input.source {
            Source::ChirpStack { event } => (chirpstack::parse(event, body).map_err(parse_error)?, None),
            Source::ChirpStackMqtt { topic } => (chirpstack::parse_mqtt(topic, body).map_err(parse_error)?.1, None),
            Source::Ttn => match ttn::parse_uplink(body) {
                Err(IngestError::NotAnUplink(kind)) if kind.starts_with("downlink_") => return ttn_downlink(body),
                Err(IngestError::NotAnUplink(_)) => return Ok(Prepared::Ignored),
                other => (other.map_err(parse_error)?, None),
            },
            Source::TtnMqtt { topic } => {
                if ttn::parse_topic(topic).map_err(parse_error)?.message.starts_with("down/") {
                    return ttn_downlink(body);
                }
                let (topic, event) = ttn::parse_mqtt_uplink(topic, body).map_err(parse_error)?;
                (event, Some(topic))
            }
            Source::Generic | Source::GenericMqtt { .. } => {
                let messages = generic::parse(body).map_err(parse_error)?;
                return self.prepare_generic(input, messages).await;
            }
        };
        let org = &input.organisation;
        match event {
            NetworkEvent::Uplink(u) => {
                let device = self.device(org, u.dev_eui()).await?;
                if let Some(route) = route_of(&input.source, &u, ttn_topic.as_ref()) {
                    self.learn_route(u.dev_eui(), route).await?;
                }
                self.prepare_uplink(device, u).await
            }
            NetworkEvent::Status { dev_eui, time, battery_level, margin, .. } => {
                self.device(org, &dev_eui).await?;
                let update =
                    HealthUpdate { at: time, battery: battery_level, margin: Some(margin), ..Default::default() };
                Ok(Prepared::Health { dev_eui: dev_eui.to_string(), update })
            }
            NetworkEvent::Join { dev_eui, time, .. } => {
                self.device(org, &dev_eui).await?;
                Ok(Prepared::Health {
                    dev_eui: dev_eui.to_string(),
                    update: HealthUpdate { at: time, ..Default::default() },
                })
            }
            NetworkEvent::Ack { .. } | NetworkEvent::TxAck { .. } => {
                Ok(downlink::from_chirpstack(&event).map_or(Prepared::Ignored, Prepared::Downlink))
            }
            NetworkEvent::Log { .. } | NetworkEvent::Location { .. } => Ok(Prepared::Ignored),
        }
    }

    /// The device, if it exists *and* belongs to the organisation: a device
    /// of another organisation is unknown here, with the same message.
    async fn device(&self, org: &OrganisationId, eui: &DevEui) -> Result<DeviceRecord, Fail> {
        match self.inner.store.device(&eui.to_string()).await? {
            Some(d) if d.device.organisation == *org => Ok(d),
            _ => Err(refuse(
                Refusal::UnknownDevice,
                "unknown-device",
                format!("no device {eui} is registered in organisation {org}"),
                Some(eui),
            )),
        }
    }

    async fn entity(&self, device: &DeviceRecord, eui: Option<&DevEui>) -> Result<Entity, Fail> {
        self.inner.store.entity(&device.device.entity).await?.ok_or_else(|| {
            refuse(
                Refusal::Invalid,
                "unknown-entity",
                format!("device {} feeds entity {}, which does not exist", device.device.name, device.device.entity),
                eui,
            )
        })
    }

    async fn prepare_uplink(&self, device: DeviceRecord, u: Uplink) -> Result<Prepared, Fail> {
        let eui = *u.dev_eui();
        let health = HealthUpdate {
            at: u.received_at,
            rssi: u.radio.rssi,
            snr: u.radio.snr,
            f_cnt: u.f_cnt(),
            ..Default::default()
        };
        let frame = |observations| FrameWrite {
            dev_eui: eui.to_string(),
            ns_id: u.frame.ns_id.clone(),
            session: u.frame.session.clone(),
            f_cnt: u.frame.f_cnt,
            observations,
            health: health.clone(),
        };
        let object = match &u.decoded {
            Some(object) => object.clone(),
            // A frame without application payload (MAC commands only): it
            // still counts for the device's health and is known afterwards.
            None if u.payload.is_empty() => {
                return Ok(Prepared::Frames { frames: vec![frame(Vec::new())], missing: Vec::new() })
            }
            None => self.decode(&device, &u).await?,
        };
        let entity = self.entity(&device, Some(&eui)).await?;
        let (observations, missing) = map(&device, &entity, &object, u.received_at, Some(&eui))?;
        Ok(Prepared::Frames { frames: vec![frame(observations)], missing })
    }

    /// Runs the device model's codec on the blocking pool, within its limits.
    async fn decode(&self, device: &DeviceRecord, u: &Uplink) -> Result<Map<String, Value>, Fail> {
        let eui = u.dev_eui();
        let Some(codec) = self.inner.codecs.get(&device.device.model).cloned() else {
            return Err(refuse(
                Refusal::Undecodable,
                "no-codec",
                format!(
                    "the network server sent no decoded object and device model {} has no codec in Socle",
                    device.device.model
                ),
                Some(eui),
            ));
        };
        let limits = self.inner.config.codec_limits;
        let (bytes, f_port, recv_time) = (u.payload.clone(), u.f_port, u.received_at);
        let decoded = tokio::task::spawn_blocking(move || {
            codec.decode_uplink(&UplinkInput { bytes: &bytes, f_port, recv_time }, &limits)
        })
        .await;
        match decoded {
            Ok(Ok(d)) => Ok(d.data),
            Ok(Err(e)) => Err(refuse(Refusal::Undecodable, e.code(), e.to_string(), Some(eui))),
            Err(e) => Err(refuse(Refusal::Undecodable, "codec-engine", format!("codec call failed: {e}"), Some(eui))),
        }
    }

    async fn prepare_generic(&self, input: &Input, messages: Vec<generic::GenericMessage>) -> Result<Prepared, Fail> {
        let org = &input.organisation;
        // Devices and entities read once per body, however many messages name them.
        let mut devices: BTreeMap<String, (DeviceRecord, Entity)> = BTreeMap::new();
        let mut frames = Vec::with_capacity(messages.len());
        let mut missing = Vec::new();
        for m in messages {
            let key = m.device.to_string();
            if !devices.contains_key(&key) {
                let device = match &m.device {
                    DeviceKey::Eui(eui) => self.device(org, eui).await?,
                    DeviceKey::Name(name) => self.inner.store.device_by_name(org, name).await?.ok_or_else(|| {
                        refuse(
                            Refusal::UnknownDevice,
                            "unknown-device",
                            format!("no device named {name:?} is registered in organisation {org}"),
                            None,
                        )
                    })?,
                };
                let eui = DevEui::parse(&device.device.dev_eui).ok();
                let entity = self.entity(&device, eui.as_ref()).await?;
                devices.insert(key.clone(), (device, entity));
            }
            let (device, entity) = &devices[&key];
            let eui = DevEui::parse(&device.device.dev_eui).ok();
            let at = m.observed_at.unwrap_or(input.received_at);
            let (observations, absent) = map(device, entity, &m.values, at, eui.as_ref())?;
            missing.extend(absent.into_iter().filter(|f| !missing.contains(f)).collect::<Vec<_>>());
            frames.push(FrameWrite {
                dev_eui: device.device.dev_eui.clone(),
                ns_id: m.id,
                session: None,
                f_cnt: None,
                observations,
                health: HealthUpdate { at, ..Default::default() },
            });
        }
        Ok(Prepared::Frames { frames, missing })
    }
}

/// Applies a device's mappings. A field the decoded object lacks is skipped
/// (a sensor without reading); any other problem refuses the whole frame, so
/// that a replay after the fix stores it whole, exactly once.
fn map(
    device: &DeviceRecord,
    entity: &Entity,
    object: &Map<String, Value>,
    at: DateTime<Utc>,
    eui: Option<&DevEui>,
) -> Result<(Vec<Observation>, Vec<String>), Fail> {
    let mappings = registry::mappings(device).map_err(|e| refuse(Refusal::Invalid, "invalid-mapping", e.0, eui))?;
    if mappings.is_empty() && !object.is_empty() {
        return Err(refuse(
            Refusal::Invalid,
            "no-mapping",
            format!("device {} has no mapping: add one, then replay this frame", device.device.name),
            eui,
        ));
    }
    let mapped = mapping::apply(&mappings, object, &MappingContext::for_entity(entity, at));
    let (absent, errors): (Vec<_>, Vec<_>) =
        mapped.errors.into_iter().partition(|e| e.problem == FieldProblem::Missing);
    if !errors.is_empty() {
        let code = if errors.iter().any(|e| matches!(e.problem, FieldProblem::OutOfRange { .. })) {
            "out-of-range"
        } else {
            "mapping-error"
        };
        let message = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        return Err(refuse(Refusal::Invalid, code, message, eui));
    }
    Ok((mapped.observations, absent.into_iter().map(|e| e.field).collect()))
}

fn accepted(stored: &[bool], observations: u64, duplicate_observations: u64, missing_fields: Vec<String>) -> Accepted {
    let frames = stored.iter().filter(|s| **s).count() as u32;
    let duplicate_frames = stored.len() as u32 - frames;
    let outcome = if frames > 0 { Outcome::Stored } else { Outcome::Duplicate };
    Accepted {
        outcome,
        duplicate: frames == 0,
        frames,
        duplicate_frames,
        observations,
        duplicate_observations,
        missing_fields,
    }
}
