//! Helpers to run the real `socle` binary as a child process.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn socle() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_socle"));
    c.env("SOCLE_LOG__FILTER", "warn");
    c
}

/// A running child whose stdout lines arrive on a channel.
pub struct Running {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn socle");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Waits for a line matching `pred`, returning it.
    pub fn wait_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if pred(&l) => return l,
                Ok(_) => {}
                Err(e) => panic!("no expected line from socle within {timeout:?}: {e}"),
            }
        }
    }

    /// The base URL printed at start (`… http://127.0.0.1:PORT`).
    pub fn base_url(&self, timeout: Duration) -> String {
        let line = self.wait_line(timeout, |l| l.contains("http://"));
        let start = line.find("http://").unwrap_or(0);
        line[start..].split_whitespace().next().unwrap_or_default().to_owned()
    }

    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// Every line printed before the process died.
    pub fn drain(&self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            out.push(l);
        }
        out
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn get_json(url: &str) -> (u16, serde_json::Value) {
    send_json(reqwest::blocking::Client::new().get(url))
}

pub fn get_json_as(url: &str, token: &str) -> (u16, serde_json::Value) {
    send_json(reqwest::blocking::Client::new().get(url).bearer_auth(token))
}

fn send_json(req: reqwest::blocking::RequestBuilder) -> (u16, serde_json::Value) {
    match req.timeout(Duration::from_secs(30)).send() {
        Ok(res) => {
            let status = res.status().as_u16();
            (status, res.json().unwrap_or(serde_json::Value::Null))
        }
        Err(_) => (0, serde_json::Value::Null),
    }
}

/// Polls `f` until it returns Some, or panics after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
