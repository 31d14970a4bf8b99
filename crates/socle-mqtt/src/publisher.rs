//! Publishing with QoS 1, one message at a time, each confirmed by the
//! broker's PUBACK before the next: what downlinks need (a command is
//! recorded as handed over only once the broker has it) and no more, since
//! downlinks are a few a minute, not a stream.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, QoS};
use tokio::sync::{oneshot, watch};

use crate::Subscription;

/// Why a message may not have reached the broker. The caller keeps it and
/// tries again later; a broker may then get it twice (QoS 1 semantics).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the MQTT client refused the message: {0}")]
    Client(#[from] rumqttc::ClientError),
    #[error("the broker did not acknowledge the message within {0:?}")]
    Timeout(Duration),
    #[error("the MQTT connection was closed")]
    Closed,
}

/// A publishing connection. Cheap to clone; the connection ends when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    client: AsyncClient,
    /// One message in flight at a time.
    serial: tokio::sync::Mutex<()>,
    waiting: Arc<Mutex<Option<Waiting>>>,
    ack_timeout: Duration,
    /// Dropped with the last publisher: stops the event loop.
    _stop: watch::Sender<()>,
}

struct Waiting {
    pkid: Option<u16>,
    done: oneshot::Sender<()>,
}

impl Publisher {
    /// Connects (and keeps reconnecting) to the broker of `sub`, under the
    /// client id `{client_id}-pub` with a clean session: a message not yet
    /// acknowledged when the connection drops is the caller's to send again.
    pub fn start(sub: &Subscription) -> Self {
        let mut options = sub.options();
        options.set_client_id(format!("{}-pub", sub.client_id));
        options.set_clean_session(true);
        options.set_manual_acks(false);
        let (client, eventloop) = AsyncClient::new(options, 16);
        let (stop, stopped) = watch::channel(());
        let waiting = Arc::new(Mutex::new(None));
        tokio::spawn(drive(eventloop, waiting.clone(), sub.reconnect_delay, stopped));
        Self {
            inner: Arc::new(Inner {
                client,
                serial: tokio::sync::Mutex::new(()),
                waiting,
                ack_timeout: Duration::from_secs(10),
                _stop: stop,
            }),
        }
    }

    /// Publishes with QoS 1 and returns once the broker acknowledged it.
    pub async fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<(), PublishError> {
        let _one = self.inner.serial.lock().await;
        let (done, acked) = oneshot::channel();
        *lock(&self.inner.waiting) = Some(Waiting { pkid: None, done });
        self.inner.client.publish(topic, QoS::AtLeastOnce, false, payload).await?;
        let outcome = match tokio::time::timeout(self.inner.ack_timeout, acked).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(PublishError::Closed),
            Err(_) => Err(PublishError::Timeout(self.inner.ack_timeout)),
        };
        lock(&self.inner.waiting).take();
        outcome
    }
}

fn lock(w: &Mutex<Option<Waiting>>) -> std::sync::MutexGuard<'_, Option<Waiting>> {
    w.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn drive(
    mut eventloop: EventLoop,
    waiting: Arc<Mutex<Option<Waiting>>>,
    reconnect_delay: Duration,
    mut stop: watch::Receiver<()>,
) {
    loop {
        let event = tokio::select! {
            e = eventloop.poll() => e,
            _ = stop.changed() => return,
        };
        match event {
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                if let Some(w) = lock(&waiting).as_mut() {
                    w.pkid.get_or_insert(pkid);
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                let mut w = lock(&waiting);
                if w.as_ref().is_some_and(|w| w.pkid == Some(ack.pkid)) {
                    if let Some(w) = w.take() {
                        let _ = w.done.send(());
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "MQTT publishing connection lost; reconnecting");
                tokio::select! {
                    () = tokio::time::sleep(reconnect_delay) => {},
                    _ = stop.changed() => return,
                }
            }
        }
    }
}
