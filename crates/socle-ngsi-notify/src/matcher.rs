//! The matcher: committed changes → notifications in the outbox.
//!
//! One task owns the state (compiled subscriptions, owners' views, throttling
//! and periodic clocks), so nothing needs a lock. It subscribes to the commit
//! feed before catching up from storage, so a change committed during the
//! catch-up is seen (perhaps twice: the ids make the second time a no-op).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use socle_domain::{Attribute, Entity, EntityFilter, EntityId, EntityType, Observation};
use socle_ngsi::subscription::{notification_body, Compiled, State, Subscription};
use socle_storage::{CommitFeed, Committed, DynStore, NewNgsiNotification, ObservationScan, StoredNgsiSubscription};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{SubscriptionsConfig, SubscriptionsError, Viewer, Visibility, NOTIFICATION_NAMESPACE};

/// `meta` key of the newest observation time matched (milliseconds).
pub const WATERMARK_KEY: &str = "ngsi.subscriptions.watermark";
/// The watermark is written at most this often (and at shutdown): writing it
/// with every batch would cost ingestion a transaction per batch.
const WATERMARK_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

enum Command {
    Flush(oneshot::Sender<()>),
}

/// What the rest of Socle holds of the matcher.
#[derive(Clone)]
pub struct MatcherHandle {
    commands: mpsc::UnboundedSender<Command>,
    wake: Arc<Notify>,
}

impl MatcherHandle {
    /// Answers once every batch published before the call is matched and its
    /// notifications are in the outbox, and periodic subscriptions are checked.
    pub async fn flush(&self) -> Result<(), SubscriptionsError> {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Flush(done)).is_err() {
            return Ok(());
        }
        let _ = wait.await;
        Ok(())
    }

    /// Notified whenever notifications were written: the deliverer waits on it.
    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}

/// A subscription ready to match.
struct Loaded {
    stored: StoredNgsiSubscription,
    sub: Subscription,
    compiled: Compiled,
}

struct Matcher {
    store: DynStore,
    visibility: Arc<dyn Visibility>,
    config: SubscriptionsConfig,
    subs: HashMap<String, Arc<Loaded>>,
    viewers: HashMap<String, (Instant, Option<Viewer>)>,
    /// Last notification written per subscription (throttling).
    last_written: HashMap<String, DateTime<Utc>>,
    /// Last period slot notified per periodic subscription.
    periodic_slot: HashMap<String, i64>,
    watermark: Option<DateTime<Utc>>,
    watermark_saved: Option<DateTime<Utc>>,
    watermark_at: Instant,
    wake: Arc<Notify>,
}

/// Starts the matcher: subscribes to `feed` (so nothing committed from now on
/// is missed), catches up from the stored observations since its watermark,
/// then runs until `shutdown`.
pub async fn start(
    store: DynStore,
    feed: &CommitFeed,
    visibility: Arc<dyn Visibility>,
    config: SubscriptionsConfig,
    shutdown: CancellationToken,
) -> Result<(MatcherHandle, tokio::task::JoinHandle<()>), SubscriptionsError> {
    let batches = feed.reliable(config.queue);
    let (commands, command_rx) = mpsc::unbounded_channel();
    let wake = Arc::new(Notify::new());
    let mut m = Matcher {
        store,
        visibility,
        config,
        subs: HashMap::new(),
        viewers: HashMap::new(),
        last_written: HashMap::new(),
        periodic_slot: HashMap::new(),
        watermark: None,
        watermark_saved: None,
        watermark_at: Instant::now(),
        wake: wake.clone(),
    };
    m.catch_up().await?;
    let task = tokio::spawn(m.run(batches, command_rx, shutdown));
    Ok((MatcherHandle { commands, wake }, task))
}

/// The entity with the values observed at one instant.
fn as_of(entity: &Entity, observations: &[&Observation]) -> Entity {
    let mut e = entity.clone();
    for o in observations {
        let current = e.attributes.get(&o.attribute);
        // A newer value is replaced by this one; an attribute never stored as a property stays as it is.
        if current.is_none() || matches!(current, Some(Attribute::Property { .. })) {
            e.attributes.insert(
                o.attribute.clone(),
                Attribute::Property {
                    value: o.value.to_json(),
                    unit_code: o.unit_code.clone(),
                    observed_at: Some(o.observed_at),
                },
            );
        }
    }
    e
}

fn notification_id(parts: &str) -> Uuid {
    Uuid::new_v5(&NOTIFICATION_NAMESPACE, parts.as_bytes())
}

impl Matcher {
    async fn catch_up(&mut self) -> Result<(), SubscriptionsError> {
        let now = Utc::now();
        let saved = self
            .store
            .get_meta(WATERMARK_KEY)
            .await?
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(DateTime::<Utc>::from_timestamp_millis);
        let Some(saved) = saved else {
            // First start: nothing was promised before now.
            self.watermark = Some(now);
            self.save_watermark(true).await;
            return Ok(());
        };
        self.watermark = Some(saved);
        self.watermark_saved = Some(saved);
        self.reload().await?;
        if self.subs.is_empty() {
            // Nothing to notify: no need to read the stored observations again.
            self.watermark = Some(saved.max(now));
            self.save_watermark(true).await;
            return Ok(());
        }
        let mut from = saved - self.config.replay_margin;
        let mut replayed = 0usize;
        while from < now {
            let to = (from + self.config.replay_window).min(now + TimeDelta::seconds(1));
            let scan =
                ObservationScan { from, to, organisation: None, entity_type: None, entities: None, attribute: None };
            let observations = self.store.scan_observations(&scan).await?;
            replayed += observations.len();
            if !observations.is_empty() {
                self.on_observations(&observations, true).await?;
            }
            from = to;
        }
        tracing::info!(since = %saved, replayed, "NGSI-LD subscriptions caught up with stored observations");
        self.save_watermark(true).await;
        Ok(())
    }

    async fn run(
        mut self,
        mut batches: mpsc::Receiver<Committed>,
        mut commands: mpsc::UnboundedReceiver<Command>,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                batch = batches.recv() => match batch {
                    Some(batch) => self.on_batch(&batch).await,
                    None => break,
                },
                Some(command) = commands.recv() => match command {
                    Command::Flush(done) => {
                        while let Ok(batch) = batches.try_recv() {
                            self.on_batch(&batch).await;
                        }
                        self.on_tick().await;
                        let _ = done.send(());
                    }
                },
                _ = tick.tick() => self.on_tick().await,
            }
        }
        // Batches already queued were committed: match them before stopping.
        while let Ok(batch) = batches.try_recv() {
            self.on_batch(&batch).await;
        }
        self.save_watermark(true).await;
    }

    async fn on_batch(&mut self, batch: &[Observation]) {
        // A storage hiccup (a PostgreSQL restart) should not cost notifications: try a
        // few times, holding the feed back meanwhile, as a reliable consumer may.
        for attempt in 1..=3u32 {
            match self.on_observations(batch, false).await {
                Ok(()) => {
                    self.save_watermark(false).await;
                    return;
                }
                Err(e) if attempt < 3 => {
                    tracing::warn!(error = %e, attempt, "NGSI-LD subscriptions could not match a batch; trying again");
                    tokio::time::sleep(std::time::Duration::from_secs(u64::from(attempt))).await;
                }
                Err(e) => {
                    // Committed data stays in storage: the next start reads it again (within the margin).
                    tracing::error!(error = %e, "NGSI-LD subscriptions could not match a batch; it is read again at the next start");
                }
            }
        }
    }

    async fn on_tick(&mut self) {
        if let Err(e) = self.periodic().await {
            tracing::warn!(error = %e, "periodic NGSI-LD notifications failed; retried at the next tick");
        }
        self.save_watermark(false).await;
    }

    async fn save_watermark(&mut self, force: bool) {
        let Some(w) = self.watermark else { return };
        if self.watermark_saved == Some(w) || (!force && self.watermark_at.elapsed() < WATERMARK_EVERY) {
            return;
        }
        match self.store.set_meta(WATERMARK_KEY, &w.timestamp_millis().to_string()).await {
            Ok(()) => {
                self.watermark_saved = Some(w);
                self.watermark_at = Instant::now();
            }
            Err(e) => tracing::warn!(error = %e, "the NGSI-LD subscriptions watermark could not be saved"),
        }
    }

    /// Reads the subscriptions again (cheap: a small table), compiling only those that changed.
    async fn reload(&mut self) -> Result<(), SubscriptionsError> {
        let rows = self.store.list_ngsi_subscriptions(None).await?;
        let mut next = HashMap::with_capacity(rows.len());
        for stored in rows {
            if let Some(l) = self.subs.get(&stored.id).filter(|l| l.stored.modified_at == stored.modified_at) {
                next.insert(stored.id.clone(), l.clone());
                continue;
            }
            let compiled = serde_json::from_value::<Subscription>(stored.spec.clone())
                .map_err(|e| e.to_string())
                .and_then(|sub| sub.compile().map(|c| (sub, c)).map_err(|e| e.to_string()));
            match compiled {
                Ok((sub, compiled)) => {
                    self.viewers.remove(&stored.id);
                    next.insert(stored.id.clone(), Arc::new(Loaded { stored, sub, compiled }));
                }
                Err(e) => {
                    tracing::warn!(subscription = stored.id, error = e, "stored subscription cannot be read; skipped")
                }
            }
        }
        self.subs = next;
        Ok(())
    }

    async fn viewer(&mut self, l: &Loaded) -> Option<Viewer> {
        if let Some((at, v)) = self.viewers.get(&l.stored.id) {
            if at.elapsed() < self.config.viewer_ttl {
                return v.clone();
            }
        }
        let v = self.visibility.viewer(&l.stored).await;
        self.viewers.insert(l.stored.id.clone(), (Instant::now(), v.clone()));
        v
    }

    fn throttled(&self, l: &Loaded, now: DateTime<Utc>) -> bool {
        match (l.sub.throttling, self.last_written.get(&l.stored.id)) {
            (Some(secs), Some(last)) => {
                now < *last + TimeDelta::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000))
            }
            _ => false,
        }
    }

    /// Matches observations (a committed batch, or stored ones read again after a restart).
    async fn on_observations(&mut self, batch: &[Observation], replay: bool) -> Result<(), SubscriptionsError> {
        let now = Utc::now();
        self.reload().await?;
        let active: Vec<Arc<Loaded>> = self
            .subs
            .values()
            .filter(|l| l.sub.time_interval.is_none() && l.sub.state(now) == State::Active)
            .cloned()
            .collect();
        if active.is_empty() {
            self.advance_watermark(batch, now);
            return Ok(());
        }
        // Per entity, per instant: the observations. One notification per
        // (subscription, entity, instant) keeps ids stable whether the change
        // is matched live or replayed from storage.
        let mut changes: BTreeMap<&EntityId, BTreeMap<DateTime<Utc>, Vec<&Observation>>> = BTreeMap::new();
        for o in batch {
            changes.entry(&o.entity).or_default().entry(o.observed_at).or_default().push(o);
        }
        let mut rows = Vec::new();
        // Subscriptions notified by this batch: throttling counts them once the rows are stored.
        let mut written: BTreeSet<String> = BTreeSet::new();
        for (entity_id, instants) in changes {
            let all: BTreeSet<&str> = instants.values().flatten().map(|o| o.attribute.as_str()).collect();
            let all: Vec<&str> = all.into_iter().collect();
            let interested: Vec<&Arc<Loaded>> = active.iter().filter(|l| l.compiled.watches(&all)).collect();
            if interested.is_empty() {
                continue;
            }
            let Some(entity) = self.store.entity(entity_id).await? else { continue };
            for l in interested {
                if !self.viewer(l).await.is_some_and(|v| v.sees(&entity)) {
                    continue;
                }
                for (at, observations) in &instants {
                    let mut attrs: Vec<&str> = observations.iter().map(|o| o.attribute.as_str()).collect();
                    attrs.sort_unstable();
                    attrs.dedup();
                    if !l.compiled.watches(&attrs) {
                        continue;
                    }
                    // Replayed changes from before the subscription existed were never promised.
                    if replay && *at < l.stored.created_at {
                        continue;
                    }
                    // The entity as this change left it: `q` is judged, and the
                    // notification written, on the values of that instant, even
                    // when newer ones were committed before the match.
                    let changed = as_of(&entity, observations);
                    let throttled_here = l.sub.throttling.is_some() && written.contains(&l.stored.id);
                    if !l.compiled.selects(&changed) || throttled_here || self.throttled(l, now) {
                        continue;
                    }
                    let id = notification_id(&format!(
                        "{}|{}|{}|{}",
                        l.stored.id,
                        entity.id,
                        at.timestamp_millis(),
                        attrs.join(",")
                    ));
                    let urn = format!("urn:ngsi-ld:Notification:{id}");
                    rows.push(NewNgsiNotification {
                        id,
                        subscription: l.stored.id.clone(),
                        body: notification_body(&urn, &l.stored.id, now, vec![l.compiled.render(&changed)]),
                        due_at: now,
                    });
                    written.insert(l.stored.id.clone());
                }
            }
        }
        self.enqueue(&rows).await?;
        for id in written {
            self.last_written.insert(id, now);
        }
        // Only once its notifications are stored: a batch that failed is read again after a restart.
        self.advance_watermark(batch, now);
        Ok(())
    }

    fn advance_watermark(&mut self, batch: &[Observation], now: DateTime<Utc>) {
        if let Some(newest) = batch.iter().map(|o| o.observed_at).max() {
            let newest = newest.min(now);
            self.watermark = Some(self.watermark.map_or(newest, |w| w.max(newest)));
        }
    }

    async fn enqueue(&self, rows: &[NewNgsiNotification]) -> Result<(), SubscriptionsError> {
        if rows.is_empty() {
            return Ok(());
        }
        let new = self.store.enqueue_ngsi_notifications(rows).await?;
        tracing::debug!(matched = rows.len(), new, "NGSI-LD notifications written");
        if new > 0 {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Periodic subscriptions: once per `timeInterval` slot, the entities selected now.
    async fn periodic(&mut self) -> Result<(), SubscriptionsError> {
        let now = Utc::now();
        self.reload().await?;
        let due: Vec<(Arc<Loaded>, i64)> = self
            .subs
            .values()
            .filter(|l| l.sub.state(now) == State::Active)
            .filter_map(|l| {
                let every = i64::try_from(l.sub.time_interval?).ok()?.max(1);
                let slot = now.timestamp().div_euclid(every);
                (self.periodic_slot.get(&l.stored.id) != Some(&slot)).then(|| (l.clone(), slot))
            })
            .collect();
        let mut rows = Vec::new();
        for (l, slot) in due {
            self.periodic_slot.insert(l.stored.id.clone(), slot);
            let Some(viewer) = self.viewer(&l).await else { continue };
            let types: BTreeSet<&str> = l.sub.entities.iter().map(|s| s.entity_type.as_str()).collect();
            let single = if types.len() == 1 {
                types.first().and_then(|t| EntityType::parse(&l.compiled.ctx.to_stored(t)).ok())
            } else {
                None
            };
            let filter = EntityFilter {
                audience: viewer.audience.clone(),
                organisations: viewer.tenant.clone().map(|t| vec![t]),
                entity_type: single,
                limit: self.config.periodic_max_entities,
                ..Default::default()
            };
            let page = self.store.query_entities(&filter).await?;
            let data: Vec<serde_json::Value> = page
                .items
                .iter()
                .filter(|e| viewer.sees(e) && l.compiled.selects(e))
                .map(|e| l.compiled.render(e))
                .collect();
            if data.is_empty() {
                continue;
            }
            let id = notification_id(&format!("{}|periodic|{slot}", l.stored.id));
            let urn = format!("urn:ngsi-ld:Notification:{id}");
            rows.push(NewNgsiNotification {
                id,
                subscription: l.stored.id.clone(),
                body: notification_body(&urn, &l.stored.id, now, data),
                due_at: now,
            });
        }
        self.enqueue(&rows).await
    }
}
