//! Structured logs with tracing. Logs carry identifiers (entity URNs,
//! organisation ids), never personal data.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSection};

pub fn init(log: &LogSection) {
    let filter = EnvFilter::try_new(&log.filter)
        .unwrap_or_else(|e| {
            eprintln!("socle: invalid log filter {:?} ({e}); using \"info\"", log.filter);
            EnvFilter::new("info")
        })
        // tokio-postgres logs query parameters (e-mail addresses, hashes) at
        // debug level: personal data never goes to logs, whatever the filter.
        .add_directive("tokio_postgres=info".parse().expect("a valid directive"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests calling main twice) is harmless: keep the first.
    let _ = match log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
