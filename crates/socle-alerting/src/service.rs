//! The running service: one task owns the engine; batches, ticks and rule changes
//! reach it in turn, so the engine needs no lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use socle_domain::{EntityId, Observation};
use socle_rules::{Engine, EntityRef, Event, ResolveReason, Rule, RuleKind, Snapshot, Transition};
use socle_storage::{
    AlertChange, AlertWrite, CommitFeed, Committed, DynStore, EngineState, ObservationScan, RuleFilter,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::targets::{rule_from_record, targets};
use crate::AlertingError;

#[derive(Debug, Clone)]
pub struct AlertingConfig {
    /// Batches waiting in the reliable feed before writers wait.
    pub queue: usize,
    /// How often the engine's state is saved (also at shutdown).
    pub snapshot_every: Duration,
    /// Longest sleep between two ticks, whatever the deadlines say.
    pub tick_every: Duration,
    /// After a restart, observations are re-read from this long before the
    /// watermark: a frame that spent time in the network may be stored after
    /// newer ones. The engine ignores what it has already seen.
    pub replay_margin: TimeDelta,
    /// Without saved state (first start), how much stored history to evaluate. The
    /// demo evaluates its backfilled month this way; a new installation starts now.
    pub first_start_lookback: TimeDelta,
    /// Window of one read of stored observations during a replay.
    pub replay_window: TimeDelta,
    /// Alert changes kept for slow subscribers before they skip.
    pub broadcast: usize,
    /// Whether time passes by itself (the wall clock, through ticks). Tests that
    /// feed past observations turn it off and move time with [`AlertingHandle::tick`].
    pub auto_tick: bool,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        Self {
            queue: 64,
            snapshot_every: Duration::from_secs(60),
            tick_every: Duration::from_secs(30),
            replay_margin: TimeDelta::hours(1),
            first_start_lookback: TimeDelta::zero(),
            replay_window: TimeDelta::hours(6),
            broadcast: 1024,
            auto_tick: true,
        }
    }
}

enum Command {
    RuleChanged(String),
    /// Answers once every batch published before the call has been evaluated and
    /// recorded, and after a tick at `tick` if given.
    Flush {
        tick: Option<DateTime<Utc>>,
        done: oneshot::Sender<()>,
    },
}

/// What the rest of Socle holds of the service: the alert-change broadcast and a
/// way to tell the engine a rule changed.
#[derive(Clone)]
pub struct AlertingHandle {
    changes: broadcast::Sender<AlertChange>,
    commands: mpsc::UnboundedSender<Command>,
}

impl AlertingHandle {
    /// Every change of an alert from now on. A subscriber that falls behind by more
    /// than the configured capacity gets `Lagged` and continues with newer changes.
    pub fn subscribe(&self) -> broadcast::Receiver<AlertChange> {
        self.changes.subscribe()
    }

    /// Announces a change made by a person (acknowledge, assign, comment, resolve).
    pub fn publish(&self, change: AlertChange) {
        // Nobody listening is not an error.
        let _ = self.changes.send(change);
    }

    /// The rule was created, edited, enabled, disabled or deleted in storage.
    pub fn rule_changed(&self, id: &str) {
        let _ = self.commands.send(Command::RuleChanged(id.to_owned()));
    }

    /// Waits until every batch published so far has been evaluated and recorded
    /// (for tests and the benchmark).
    pub async fn flush(&self) -> Result<(), AlertingError> {
        self.request(None).await
    }

    /// Like [`flush`](Self::flush), then lets time pass until `now` (tests of
    /// silence and resolve delays without waiting for the wall clock).
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<(), AlertingError> {
        self.request(Some(now)).await
    }

    async fn request(&self, tick: Option<DateTime<Utc>>) -> Result<(), AlertingError> {
        let (done, wait) = oneshot::channel();
        self.commands.send(Command::Flush { tick, done }).map_err(|_| AlertingError::Stopped)?;
        wait.await.map_err(|_| AlertingError::Stopped)
    }
}

/// Starts the service: subscribes to `feed` first (so nothing committed from now on
/// is missed), restores and catches up from storage, then runs until `shutdown`.
/// The returned task ends after saving the engine's state.
pub async fn start(
    store: DynStore,
    feed: &CommitFeed,
    config: AlertingConfig,
    shutdown: CancellationToken,
) -> Result<(AlertingHandle, tokio::task::JoinHandle<()>), AlertingError> {
    let batches = feed.reliable(config.queue);
    let (changes, _) = broadcast::channel(config.broadcast.max(1));
    let (commands, command_rx) = mpsc::unbounded_channel();
    let handle = AlertingHandle { changes: changes.clone(), commands };
    let mut service = Service::restore(store, config, changes).await?;
    let task = tokio::spawn(async move { service.run(batches, command_rx, shutdown).await });
    Ok((handle, task))
}

struct Service {
    store: DynStore,
    config: AlertingConfig,
    changes: broadcast::Sender<AlertChange>,
    engine: Engine,
    /// Entities met so far (`None`: not in storage).
    entities: HashMap<EntityId, Option<Arc<EntityRef>>>,
    /// The newest observation time evaluated.
    watermark: DateTime<Utc>,
    last_snapshot: tokio::time::Instant,
}

impl Service {
    async fn restore(
        store: DynStore,
        config: AlertingConfig,
        changes: broadcast::Sender<AlertChange>,
    ) -> Result<Self, AlertingError> {
        let now = Utc::now();
        let rules = load_rules(&store).await?;
        let saved = store.engine_state().await?;
        let (engine, withdrawn, from) = match &saved {
            Some(state) => {
                let snapshot: Snapshot = serde_json::from_str(&state.snapshot).map_err(AlertingError::Snapshot)?;
                let (engine, events) = Engine::restore(rules, snapshot, now);
                (engine, events, state.watermark - config.replay_margin)
            }
            None => (Engine::new(rules), Vec::new(), now - config.first_start_lookback),
        };
        let mut service = Self {
            store,
            config,
            changes,
            engine,
            entities: HashMap::new(),
            watermark: saved.as_ref().map_or(from, |s| s.watermark),
            last_snapshot: tokio::time::Instant::now(),
        };
        service.record(withdrawn, false).await?;
        let rules: Vec<Rule> = service.engine.rules().cloned().collect();
        for rule in &rules {
            service.track(rule, from).await?;
        }
        service.catch_up(from, now).await?;
        let events = if service.config.auto_tick { service.engine.tick(now) } else { Vec::new() };
        service.record(events, true).await?;
        tracing::info!(
            rules = service.engine.rules().count(),
            evaluations = service.engine.evaluations(),
            open = service.engine.open_alerts().count(),
            "alerting ready"
        );
        Ok(service)
    }

    /// Re-evaluates stored observations in `(from, to]`, window by window.
    async fn catch_up(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(), AlertingError> {
        if self.engine.rules().next().is_none() {
            return Ok(());
        }
        let mut start = from;
        let mut replayed = 0usize;
        while start < to {
            let end = (start + self.config.replay_window).min(to);
            let scan = ObservationScan {
                from: start,
                to: end,
                organisation: None,
                entity_type: None,
                entities: None,
                attribute: None,
            };
            let batch = self.store.scan_observations(&scan).await?;
            replayed += batch.len();
            let events = self.evaluate(&batch).await?;
            self.record(events, false).await?;
            start = end;
        }
        tracing::info!(%from, %to, replayed, "alerting caught up with stored observations");
        Ok(())
    }

    async fn run(
        &mut self,
        mut batches: mpsc::Receiver<Committed>,
        mut commands: mpsc::UnboundedReceiver<Command>,
        shutdown: CancellationToken,
    ) {
        loop {
            let sleep = self.next_tick();
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(batch) = batches.recv() => self.on_batch(&batch).await,
                Some(command) = commands.recv() => match command {
                    Command::RuleChanged(id) => self.on_rule_changed(&id).await,
                    Command::Flush { tick, done } => {
                        while let Ok(batch) = batches.try_recv() {
                            self.on_batch(&batch).await;
                        }
                        if let Some(now) = tick {
                            self.on_tick(now).await;
                        }
                        let _ = done.send(());
                    }
                },
                () = tokio::time::sleep(sleep), if self.config.auto_tick => self.on_tick(Utc::now()).await,
            }
        }
        // Batches already queued were committed: evaluate them before saving.
        while let Ok(batch) = batches.try_recv() {
            self.on_batch(&batch).await;
        }
        if let Err(e) = self.save(Vec::new()).await {
            tracing::error!(error = %e, "alerting state not saved at shutdown; the next start replays from the last one");
        }
        tracing::info!("alerting stopped");
    }

    fn next_tick(&self) -> Duration {
        let max = self.config.tick_every;
        match self.engine.next_deadline() {
            Some(d) => (d - Utc::now()).to_std().unwrap_or(Duration::ZERO).min(max),
            None => max,
        }
    }

    async fn on_batch(&mut self, batch: &[Observation]) {
        match self.evaluate(batch).await {
            Ok(events) => self.record_or_retry(events).await,
            Err(e) => tracing::error!(error = %e, "alerting could not read entities of a batch"),
        }
    }

    async fn on_tick(&mut self, now: DateTime<Utc>) {
        let events = self.engine.tick(now);
        self.record_or_retry(events).await;
    }

    async fn on_rule_changed(&mut self, id: &str) {
        let now = Utc::now();
        let record = match self.store.rule(id).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, rule = id, "alerting could not read a changed rule");
                return;
            }
        };
        let rule = record.filter(|r| r.enabled).map(|r| rule_from_record(&r)).transpose();
        let events = match rule {
            Ok(Some(rule)) => {
                let events = self.engine.upsert_rule(rule.clone(), now);
                if let Err(e) = self.track(&rule, now).await {
                    tracing::error!(error = %e, rule = id, "alerting could not list the rule's entities");
                }
                events
            }
            Ok(None) => match socle_rules::RuleId::parse(id) {
                Ok(id) => self.engine.remove_rule(&id, now),
                Err(_) => Vec::new(),
            },
            Err(e) => {
                tracing::error!(error = %e, "a stored rule is not valid; it is not evaluated");
                return;
            }
        };
        self.record_or_retry(events).await;
    }

    /// Silence rules must notice entities that never speak: watch their targets now.
    async fn track(&mut self, rule: &Rule, start: DateTime<Utc>) -> Result<(), AlertingError> {
        if !matches!(rule.kind(), RuleKind::Silence(_)) {
            return Ok(());
        }
        for entity in targets(&self.store, rule).await? {
            self.engine.track(&entity, start);
            self.entities.insert(entity.id.clone(), Some(Arc::new(entity)));
        }
        Ok(())
    }

    async fn entity(&mut self, id: &EntityId) -> Result<Option<Arc<EntityRef>>, AlertingError> {
        if let Some(known) = self.entities.get(id) {
            return Ok(known.clone());
        }
        let found = self.store.entity(id).await?.map(|e| Arc::new(EntityRef::from(&e)));
        self.entities.insert(id.clone(), found.clone());
        Ok(found)
    }

    async fn evaluate(&mut self, batch: &[Observation]) -> Result<Vec<Event>, AlertingError> {
        let mut events = Vec::new();
        for obs in batch {
            self.watermark = self.watermark.max(obs.observed_at);
            if self.engine.rules().next().is_none() {
                continue;
            }
            if let Some(entity) = self.entity(&obs.entity).await? {
                events.extend(self.engine.observe(&entity, obs));
            }
        }
        Ok(events)
    }

    /// Records transitions, retrying while storage fails: the engine has moved on,
    /// so dropping them would lose alerts.
    async fn record_or_retry(&mut self, events: Vec<Event>) {
        let snapshot_due = self.last_snapshot.elapsed() >= self.config.snapshot_every;
        if events.is_empty() && !snapshot_due {
            return;
        }
        let mut delay = Duration::from_millis(200);
        loop {
            match self.record(events.clone(), snapshot_due).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!(error = %e, retry_in = ?delay, "alert transitions not recorded");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    async fn record(&mut self, events: Vec<Event>, with_state: bool) -> Result<(), AlertingError> {
        let mut writes = Vec::with_capacity(events.len());
        for event in events {
            if let Some(w) = self.write_of(event).await? {
                writes.push(w);
            }
        }
        if with_state {
            self.save(writes).await
        } else if writes.is_empty() {
            Ok(())
        } else {
            let changes = self.store.record_transitions(&writes, None).await?;
            self.announce(changes);
            Ok(())
        }
    }

    async fn save(&mut self, writes: Vec<AlertWrite>) -> Result<(), AlertingError> {
        let snapshot = serde_json::to_string(&self.engine.snapshot()).map_err(AlertingError::Snapshot)?;
        let state = EngineState { snapshot, watermark: self.watermark, saved_at: Utc::now() };
        let changes = self.store.record_transitions(&writes, Some(&state)).await?;
        self.last_snapshot = tokio::time::Instant::now();
        self.announce(changes);
        Ok(())
    }

    fn announce(&self, changes: Vec<AlertChange>) {
        for change in changes {
            let _ = self.changes.send(change);
        }
    }

    async fn write_of(&mut self, event: Event) -> Result<Option<AlertWrite>, AlertingError> {
        let rule = event.rule.to_string();
        let entity = event.entity;
        Ok(Some(match event.transition {
            Transition::Open { at, since, value, message } => {
                let Some(e) = self.entity(&entity).await? else { return Ok(None) };
                AlertWrite::Open {
                    rule,
                    entity,
                    entity_type: e.entity_type.to_string(),
                    organisation: e.organisation.clone(),
                    severity: event.severity.as_str().to_owned(),
                    at,
                    since,
                    value,
                    message_fr: message.fr,
                    message_en: message.en,
                }
            }
            Transition::Flapping { at, message, .. } => {
                AlertWrite::Flapping { rule, entity, at, message_fr: message.fr, message_en: message.en }
            }
            Transition::Resolve { at, reason, message } => AlertWrite::Resolve {
                rule,
                entity,
                at,
                reason: match reason {
                    ResolveReason::Cleared => "cleared",
                    ResolveReason::Withdrawn => "withdrawn",
                }
                .to_owned(),
                message_fr: message.fr,
                message_en: message.en,
            },
        }))
    }
}

async fn load_rules(store: &DynStore) -> Result<Vec<Rule>, AlertingError> {
    let records = store.list_rules(&RuleFilter { organisations: None, enabled_only: true }).await?;
    let mut rules = Vec::with_capacity(records.len());
    for record in &records {
        match rule_from_record(record) {
            Ok(rule) => rules.push(rule),
            Err(e) => tracing::error!(error = %e, "a stored rule is not valid; it is not evaluated"),
        }
    }
    Ok(rules)
}
