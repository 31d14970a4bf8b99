//! MQTT subscriptions that lose nothing.
//!
//! Socle subscribes with QoS 1 on a persistent session (clean session off,
//! a stable client id) and acknowledges a message only after its handler
//! has committed it, so a message in flight when Socle or the broker stops
//! is delivered again. Handlers must therefore be idempotent — the ingestion
//! pipeline is, through its frame keys.
//!
//! Two tasks share the connection: one drives rumqttc's event loop, the other
//! hands messages to the handler in batches and sends the PUBACKs in the order
//! the messages came, as MQTT 3.1.1 requires. The driver waits for the worker
//! when the worker is behind (that is the back-pressure on the broker); the
//! worker never waits for the driver, so the two cannot wait on each other.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

mod publisher;
#[cfg(feature = "testing")]
pub mod testing;

pub use publisher::{PublishError, Publisher};

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use tokio::sync::mpsc;

/// One received message.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    /// The broker says it may have delivered this message before.
    pub redelivered: bool,
}

/// Why a batch could not be handled now. Nothing of it is acknowledged and
/// it is offered again after a pause.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Retry(pub String);

/// What the subscription feeds. `Ok` means every message of the batch is
/// durably dealt with (stored, recognised as a duplicate, or kept as a
/// dead letter) and may be acknowledged.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, batch: &[Message]) -> impl Future<Output = Result<(), Retry>> + Send;
}

/// Where and what to subscribe.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub host: String,
    pub port: u16,
    /// Stable across restarts: the broker keeps the session (and the
    /// messages queued while Socle is away) under this id.
    pub client_id: String,
    pub credentials: Option<(String, String)>,
    pub topics: Vec<String>,
    /// Messages handed to the handler at once (one transaction for all).
    pub batch_max: usize,
    /// Pause before reconnecting after a connection error.
    pub reconnect_delay: Duration,
}

impl Subscription {
    pub fn new(host: impl Into<String>, port: u16, client_id: impl Into<String>, topics: Vec<String>) -> Self {
        Self {
            host: host.into(),
            port,
            client_id: client_id.into(),
            credentials: None,
            topics,
            batch_max: 256,
            reconnect_delay: Duration::from_secs(1),
        }
    }

    fn options(&self) -> MqttOptions {
        let mut o = MqttOptions::new(&self.client_id, &self.host, self.port);
        o.set_clean_session(false);
        o.set_manual_acks(true);
        o.set_keep_alive(Duration::from_secs(30));
        // Bound what the broker may push before we acknowledge: memory stays
        // flat under a burst, and the broker keeps the rest queued.
        o.set_inflight(self.batch_max.clamp(1, u16::MAX as usize) as u16);
        o.set_max_packet_size(256 * 1024, 256 * 1024);
        if let Some((user, password)) = &self.credentials {
            o.set_credentials(user, password);
        }
        o
    }
}

/// What a subscription did, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub received: u64,
    pub acknowledged: u64,
    pub retries: u64,
    pub reconnects: u64,
}

/// Runs the subscription until `shutdown` resolves. Messages already handed
/// to the handler finish and are acknowledged; the others stay with the broker.
pub async fn run<H: Handler>(sub: Subscription, handler: H, shutdown: impl Future<Output = ()> + Send) -> Stats {
    let (client, eventloop) = AsyncClient::new(sub.options(), sub.batch_max.max(16));
    let (tx, rx) = mpsc::channel::<Publish>(sub.batch_max.max(1) * 2);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let driver = tokio::spawn(drive(eventloop, client.clone(), sub.clone(), tx, stop_rx.clone()));
    let worker = tokio::spawn(work(handler, client.clone(), rx, sub.batch_max.max(1), stop_rx));
    shutdown.await;
    let _ = stop_tx.send(true);
    let mut stats = worker.await.unwrap_or_default();
    // Give the event loop a moment to flush the last acknowledgements.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = client.disconnect().await;
    if let Ok(Ok(reconnects)) = tokio::time::timeout(Duration::from_secs(2), driver).await {
        stats.reconnects = reconnects;
    }
    stats
}

async fn drive(
    mut eventloop: EventLoop,
    client: AsyncClient,
    sub: Subscription,
    tx: mpsc::Sender<Publish>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> u64 {
    let mut reconnects = 0;
    let mut connected_once = false;
    loop {
        let event = tokio::select! {
            e = eventloop.poll() => e,
            _ = stop.changed() => {
                // Keep polling briefly so queued PUBACKs and the disconnect go out.
                let deadline = tokio::time::sleep(Duration::from_millis(500));
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        () = &mut deadline => return reconnects,
                        e = eventloop.poll() => if e.is_err() { return reconnects },
                    }
                }
            }
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                if connected_once {
                    reconnects += 1;
                }
                connected_once = true;
                tracing::info!(host = %sub.host, port = sub.port, session_present = ack.session_present, "MQTT connected");
                // Subscribing again is harmless when the session kept the
                // subscriptions, and needed when the broker lost them.
                for topic in &sub.topics {
                    if let Err(e) = client.try_subscribe(topic.clone(), QoS::AtLeastOnce) {
                        tracing::warn!(error = %e, topic = %topic, "MQTT subscribe request not queued");
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if tx.send(p).await.is_err() {
                    return reconnects;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, host = %sub.host, port = sub.port, "MQTT connection lost; reconnecting");
                tokio::select! {
                    () = tokio::time::sleep(sub.reconnect_delay) => {},
                    _ = stop.changed() => return reconnects,
                }
            }
        }
    }
}

async fn work<H: Handler>(
    handler: H,
    client: AsyncClient,
    mut rx: mpsc::Receiver<Publish>,
    batch_max: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Stats {
    let mut stats = Stats::default();
    let mut acks = Acks { client, queue: VecDeque::new() };
    loop {
        acks.flush(&mut stats);
        let first = tokio::select! {
            p = rx.recv() => match p { Some(p) => p, None => return stats },
            _ = wait_stop(stop.clone()) => {
                acks.drain(&mut stats).await;
                return stats;
            }
            // The event loop drains acknowledgements between two messages:
            // come back for those it had no room for.
            () = tokio::time::sleep(ACK_RETRY), if !acks.queue.is_empty() => continue,
        };
        let mut batch = vec![first];
        while batch.len() < batch_max {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        stats.received += batch.len() as u64;
        let messages: Vec<Message> = batch
            .iter()
            .map(|p| Message { topic: p.topic.clone(), payload: p.payload.to_vec(), redelivered: p.dup })
            .collect();
        let mut delay = Duration::from_millis(100);
        loop {
            match handler.handle(&messages).await {
                Ok(()) => break,
                Err(e) => {
                    stats.retries += 1;
                    tracing::warn!(error = %e, messages = messages.len(), "MQTT batch not handled; retrying");
                    if *stop.borrow() {
                        // Not acknowledged: the broker delivers them again next time.
                        return stats;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
        acks.queue.extend(batch);
    }
}

/// Pause before offering the event loop acknowledgements it had no room for.
const ACK_RETRY: Duration = Duration::from_millis(5);

/// PUBACKs owed to the broker, in the order they must go out.
///
/// They are offered to the event loop without waiting: the event loop may
/// itself be waiting for the worker to take the next message (its channel to
/// the worker is full), and a worker waiting for room among the event loop's
/// requests would then stop both for good.
struct Acks {
    client: AsyncClient,
    queue: VecDeque<Publish>,
}

impl Acks {
    fn flush(&mut self, stats: &mut Stats) {
        while let Some(p) = self.queue.front() {
            if self.client.try_ack(p).is_err() {
                // Full (or closed: then the broker redelivers them anyway).
                return;
            }
            self.queue.pop_front();
            stats.acknowledged += 1;
        }
    }

    /// At shutdown: what is left, while the event loop still runs (briefly).
    async fn drain(&mut self, stats: &mut Stats) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        loop {
            self.flush(stats);
            if self.queue.is_empty() || tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(ACK_RETRY).await;
        }
    }
}

async fn wait_stop(mut stop: tokio::sync::watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Whether `topic` matches an MQTT filter with `+` and `#` wildcards.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::topic_matches;

    #[test]
    fn wildcards() {
        assert!(topic_matches("application/+/device/+/event/+", "application/a1/device/0011/event/up"));
        assert!(!topic_matches("application/+/device/+/event/+", "application/a1/device/0011/command/down"));
        assert!(topic_matches("v3/+/devices/+/up", "v3/dechets@ville/devices/bac-1/up"));
        assert!(topic_matches("socle/#", "socle/a/b"));
        assert!(!topic_matches("a/+", "a/b/c"));
    }
}
