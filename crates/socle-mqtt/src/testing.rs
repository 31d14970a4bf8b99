//! A real Mosquitto for tests, on its own port and directory, with
//! persistence so it can be restarted like a production broker.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Broker {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_mosquitto(dir: &Path, port: u16) -> Child {
    let conf = dir.join("mosquitto.conf");
    // `user root`: started as root (CI), Mosquitto would otherwise switch to
    // its own user and fail to write the persistence file in our directory,
    // silently losing sessions across the restart.
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nuser root\npersistence true\npersistence_location {}/\nautosave_interval 1\nmax_queued_messages 100000\n",
            dir.display()
        ),
    )
    .unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto must be installed (the test script installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

impl Broker {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = start_mosquitto(dir.path(), port);
        Self { child, port, dir }
    }

    /// A graceful restart (SIGTERM saves the persistence file), as an operator's `systemctl restart`.
    pub fn restart(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        self.child.wait().unwrap();
        self.child = start_mosquitto(self.dir.path(), self.port);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The client's request queue: [`publish_all`] fills it before polling.
pub const PUBLISH_ALL_MAX: usize = 1024;

/// Publishes `messages` with QoS 1 and returns once the broker acknowledged them all.
/// At most [`PUBLISH_ALL_MAX`]: they are all queued before the acknowledgements are read.
pub async fn publish_all(port: u16, client_id: &str, messages: &[(String, Vec<u8>)]) {
    assert!(messages.len() <= PUBLISH_ALL_MAX, "publish at most {PUBLISH_ALL_MAX} messages at once");
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let (client, mut eventloop) = AsyncClient::new(MqttOptions::new(client_id, "127.0.0.1", port), PUBLISH_ALL_MAX);
    for (topic, payload) in messages {
        client.publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone()).await.expect("queue a publish");
    }
    let mut acked = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while acked < messages.len() {
        match tokio::time::timeout_at(deadline, eventloop.poll()).await.expect("broker acknowledgements in time") {
            Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
