//! Against a real Mosquitto started for the test on its own port, with
//! persistence, so it can be restarted mid-stream like a production broker.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use socle_mqtt::testing::Broker;
use socle_mqtt::{Handler, Message, Retry, Subscription};

#[derive(Clone, Default)]
struct Collect {
    seen: Arc<Mutex<Vec<String>>>,
    fail_first: Arc<Mutex<u32>>,
}

impl Handler for Collect {
    async fn handle(&self, batch: &[Message]) -> Result<(), Retry> {
        {
            let mut left = self.fail_first.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return Err(Retry("storage busy".into()));
            }
        }
        // A commit takes a little time: messages are in flight when the broker stops.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let mut seen = self.seen.lock().unwrap();
        seen.extend(batch.iter().map(|m| String::from_utf8_lossy(&m.payload).into_owned()));
        Ok(())
    }
}

/// Publishes `n` QoS 1 messages, resuming its own session after broker restarts,
/// until every one is acknowledged by the broker.
async fn publish(port: u16, n: usize, pace: Duration) {
    let mut o = MqttOptions::new("socle-test-publisher", "127.0.0.1", port);
    o.set_clean_session(false);
    o.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(o, 1024);
    let pumping = tokio::spawn(async move {
        let mut acked = 0usize;
        while acked < n {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    for i in 0..n {
        client
            .publish(format!("application/app/device/{i:016x}/event/up"), QoS::AtLeastOnce, false, format!("m-{i}"))
            .await
            .unwrap();
        tokio::time::sleep(pace).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(60), pumping).await;
}

async fn wait_for(collect: &Collect, n: usize, timeout: Duration) -> BTreeSet<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let got: BTreeSet<String> = collect.seen.lock().unwrap().iter().cloned().collect();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn expected(n: usize) -> BTreeSet<String> {
    (0..n).map(|i| format!("m-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_qos1_message_is_lost_when_the_broker_restarts_mid_stream() {
    let mut broker = Broker::start();
    let collect = Collect::default();
    let sub = Subscription::new(
        "127.0.0.1",
        broker.port,
        "socle-test-subscriber",
        vec!["application/+/device/+/event/+".into()],
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(socle_mqtt::run(sub, collect.clone(), async {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(300)).await;

    const N: usize = 600;
    let publisher = tokio::spawn(publish(broker.port, N, Duration::from_millis(3)));
    wait_for(&collect, 200, Duration::from_secs(30)).await;
    broker.restart();
    publisher.await.unwrap();
    let got = wait_for(&collect, N, Duration::from_secs(60)).await;
    assert_eq!(got, expected(N), "every acknowledged publish reaches the handler");
    let _ = stop_tx.send(());
    let stats = running.await.unwrap();
    assert!(stats.reconnects >= 1, "{stats:?}");
    assert!(stats.acknowledged >= N as u64, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_messages_come_back_after_a_socle_restart_and_failures_are_retried() {
    let broker = Broker::start();
    let topics = vec!["application/+/device/+/event/+".to_string()];
    // First run: subscribe once so the broker keeps a session, then stop.
    let first = Collect::default();
    let sub = Subscription::new("127.0.0.1", broker.port, "socle-test-restart", topics.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(socle_mqtt::run(sub.clone(), first.clone(), async {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop_tx.send(());
    running.await.unwrap();

    // Published while Socle is away: the broker queues them for the session.
    publish(broker.port, 100, Duration::ZERO).await;

    // Second run, whose handler fails twice before succeeding.
    let second = Collect { fail_first: Arc::new(Mutex::new(2)), ..Collect::default() };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(socle_mqtt::run(sub, second.clone(), async {
        let _ = stop_rx.await;
    }));
    let got = wait_for(&second, 100, Duration::from_secs(30)).await;
    assert_eq!(got, expected(100));
    let _ = stop_tx.send(());
    let stats = running.await.unwrap();
    assert_eq!(stats.retries, 2, "{stats:?}");
}

/// A backlog larger than what the subscriber buffers, handled slowly: the
/// acknowledgements of one batch must not wait on the event loop while the
/// event loop waits for the handler to take the next batch (they once did,
/// and the subscription stopped for good after a few hundred messages).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_larger_than_the_buffers_is_drained_by_a_slow_handler() {
    let broker = Broker::start();
    let topics = vec!["application/+/device/+/event/+".to_string()];
    let mut sub = Subscription::new("127.0.0.1", broker.port, "socle-test-backlog", topics);
    sub.batch_max = 64;
    // Subscribe once so the broker keeps a session, then stop.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(socle_mqtt::run(sub.clone(), Collect::default(), async {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop_tx.send(());
    running.await.unwrap();

    // Queued by the broker while Socle is away, then delivered in one burst.
    const N: usize = 3_000;
    publish(broker.port, N, Duration::ZERO).await;
    let collect = Collect::default();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(socle_mqtt::run(sub, collect.clone(), async {
        let _ = stop_rx.await;
    }));
    let got = wait_for(&collect, N, Duration::from_secs(60)).await;
    assert_eq!(got.len(), N, "every queued message reaches the handler");
    // Acknowledgements trail the handler while the event loop delivers the burst.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_tx.send(());
    let stats = running.await.unwrap();
    assert_eq!(stats.acknowledged, N as u64, "{stats:?}");
}
