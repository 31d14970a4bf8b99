//! What was just committed, for the parts of Socle that react to new data.
//!
//! Writers (the ingestion pipeline, the demo generator, the NGSI-LD API)
//! publish the observations of a transaction *after* it commits, so a consumer
//! never sees data that could still be rolled back. Two kinds of consumers:
//!
//! - **reliable** ones (alert rules, notification subscriptions) must see every
//!   observation: each gets a bounded queue and a writer waits while it is full,
//!   which turns a slow consumer into backpressure on ingestion instead of loss.
//!   What a crash drops between commit and consumption is the consumer's to
//!   recover from storage (it keeps its own watermark);
//! - **live** ones (pages updating without reload) only want the latest state:
//!   they share a broadcast ring and a slow reader skips ahead.

use std::sync::{Arc, Mutex};

use socle_domain::Observation;
use tokio::sync::{broadcast, mpsc};

/// One committed batch, shared by every consumer without copying.
pub type Committed = Arc<[Observation]>;

/// Batches kept for live readers before the slowest one starts skipping.
const LIVE_RING: usize = 1024;

/// The feed of committed observations. Cheap to clone; clones share consumers.
#[derive(Clone)]
pub struct CommitFeed {
    inner: Arc<Inner>,
}

struct Inner {
    live: broadcast::Sender<Committed>,
    reliable: Mutex<Vec<mpsc::Sender<Committed>>>,
}

impl Default for CommitFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl CommitFeed {
    pub fn new() -> Self {
        let (live, _) = broadcast::channel(LIVE_RING);
        Self { inner: Arc::new(Inner { live, reliable: Mutex::new(Vec::new()) }) }
    }

    /// A consumer that may miss batches when it falls behind (it then gets
    /// `RecvError::Lagged` and continues with newer ones).
    pub fn live(&self) -> broadcast::Receiver<Committed> {
        self.inner.live.subscribe()
    }

    /// A consumer that sees every batch published from now on; writers wait
    /// when `capacity` batches are pending. Dropping the receiver unsubscribes.
    pub fn reliable(&self, capacity: usize) -> mpsc::Receiver<Committed> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.lock().push(tx);
        rx
    }

    /// Hands a committed batch to every consumer. Call it only after the
    /// transaction that stored these observations has committed.
    pub async fn publish(&self, observations: Vec<Observation>) {
        if observations.is_empty() {
            return;
        }
        let batch: Committed = observations.into();
        // No live reader is not an error.
        let _ = self.inner.live.send(batch.clone());
        let consumers = self.lock().clone();
        let mut gone = false;
        for consumer in &consumers {
            gone |= consumer.send(batch.clone()).await.is_err();
        }
        if gone {
            self.lock().retain(|c| !c.is_closed());
        }
    }

    /// Whether anyone listens (writers can skip collecting observations if not).
    pub fn has_consumers(&self) -> bool {
        self.inner.live.receiver_count() > 0 || !self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::Sender<Committed>>> {
        // A poisoned list is still a valid list of senders.
        self.inner.reliable.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use socle_domain::{AttributeName, EntityId, ObservedValue};

    fn obs(v: f64) -> Observation {
        Observation {
            entity: EntityId::parse("urn:ngsi-ld:Thing:a").unwrap(),
            attribute: AttributeName::parse("temperature").unwrap(),
            observed_at: Utc::now(),
            value: ObservedValue::number(v).unwrap(),
            unit_code: None,
        }
    }

    #[tokio::test]
    async fn reliable_consumers_see_every_batch_and_live_ones_may_skip() {
        let feed = CommitFeed::new();
        assert!(!feed.has_consumers());
        let mut reliable = feed.reliable(4);
        let mut live = feed.live();
        let publisher = feed.clone();
        let writer = tokio::spawn(async move {
            for i in 0..2000 {
                publisher.publish(vec![obs(f64::from(i))]).await;
            }
        });
        let mut seen = 0;
        while seen < 2000 {
            let batch = reliable.recv().await.unwrap();
            assert_eq!(batch.len(), 1);
            seen += 1;
        }
        writer.await.unwrap();
        // 2000 batches through a ring of 1024: the idle live reader lagged.
        assert!(matches!(live.recv().await, Err(broadcast::error::RecvError::Lagged(_))));
        drop(reliable);
        feed.publish(vec![obs(1.0)]).await;
        assert_eq!(feed.lock().len(), 0, "a dropped consumer is forgotten");
    }
}
