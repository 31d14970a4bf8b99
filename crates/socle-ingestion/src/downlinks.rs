//! Downlinks: queued by [`Pipeline::enqueue_downlink`], handed to the
//! device's network server over MQTT by [`DownlinkSender`], and followed
//! through the network server's events (ChirpStack `txack`/`ack`, The Things
//! Stack `down/*`), which the pipeline records like any other event.
//!
//! A downlink is stored before anything is published, and marked `sent` only
//! once the broker acknowledged the command: a crash in between sends it
//! again after restart, which ChirpStack refuses as a duplicate queue item id.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use socle_domain::{DownlinkStatus, OrganisationId};
use socle_ingest::downlink::{Command, Route};
use socle_ingest::DevEui;
use socle_mqtt::Publisher;
use socle_storage::{Downlink, DownlinkChange, StoreError};

use crate::mqtt::Network;
use crate::Pipeline;

/// A downlink asked for through the API (or, later, by a rule).
#[derive(Debug, Clone)]
pub struct DownlinkRequest {
    pub organisation: OrganisationId,
    pub dev_eui: String,
    pub f_port: u8,
    pub data: Vec<u8>,
    pub confirmed: bool,
    /// `user:<id>`, for the record.
    pub requested_by: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DownlinkRefused {
    #[error("{0}")]
    Invalid(String),
    /// Absent, or another organisation's (same answer).
    #[error("no such device in this organisation")]
    UnknownDevice,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long the sender waits between rounds when nothing wakes it; also the
/// pause after a broker did not take a command.
const IDLE: Duration = Duration::from_secs(30);
const AFTER_FAILURE: Duration = Duration::from_secs(5);

/// Hands queued downlinks to the network servers, one MQTT publisher per
/// (organisation, network) configured.
pub struct DownlinkSender {
    pipeline: Pipeline,
    publishers: HashMap<(OrganisationId, Network), Publisher>,
}

impl DownlinkSender {
    pub fn new(pipeline: Pipeline) -> Self {
        Self { pipeline, publishers: HashMap::new() }
    }

    /// Downlinks of `organisation`'s devices reached through `network` go to `publisher`.
    pub fn with_publisher(mut self, organisation: OrganisationId, network: Network, publisher: Publisher) -> Self {
        self.publishers.insert((organisation, network), publisher);
        self
    }

    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        loop {
            let pause = match self.round().await {
                Ok(true) => AFTER_FAILURE,
                Ok(false) => IDLE,
                Err(e) => {
                    tracing::warn!(error = %e, "downlinks could not be read; will retry");
                    AFTER_FAILURE
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = self.pipeline.downlink_queued(pause) => {}
            }
        }
    }

    /// Sends what is queued; returns whether something must be tried again.
    pub async fn round(&self) -> Result<bool, StoreError> {
        let store = self.pipeline.store();
        let mut retry = false;
        for d in store.queued_downlinks(100).await? {
            let id = d.downlink.id.clone();
            let status = match self.send(&d).await? {
                Sent::Yes => (DownlinkStatus::Sent, None),
                Sent::Never(why) => (DownlinkStatus::Failed, Some(why)),
                Sent::Later(why) => {
                    tracing::warn!(downlink = %id, reason = %why, "downlink not handed over; will retry");
                    retry = true;
                    continue;
                }
            };
            let change = DownlinkChange {
                id,
                organisation: None,
                status: status.0,
                at: Utc::now(),
                detail: status.1,
                f_cnt_down: None,
            };
            store.advance_downlink(&change).await?;
        }
        Ok(retry)
    }

    async fn send(&self, d: &Downlink) -> Result<Sent, StoreError> {
        let n = &d.downlink;
        let Some(route) = self.pipeline.store().device_route(&n.dev_eui).await? else {
            return Ok(Sent::Never(
                "no route to the device yet: none of its uplinks came through ChirpStack or The Things Stack".into(),
            ));
        };
        let (network, route) = match (route.network.as_str(), route.device_id) {
            ("chirpstack", _) => (Network::Chirpstack, Route::ChirpStack { application_id: route.application }),
            ("ttn", Some(device_id)) => (Network::Ttn, Route::Ttn { application: route.application, device_id }),
            (other, _) => return Ok(Sent::Never(format!("no way to send downlinks through {other}"))),
        };
        let Some(publisher) = self.publishers.get(&(n.organisation.clone(), network)) else {
            return Ok(Sent::Never(format!(
                "no MQTT connection to {} for organisation {}: add an [[mqtt.subscriptions]] entry for it",
                network.name(),
                n.organisation
            )));
        };
        let command = DevEui::parse(&n.dev_eui).map_err(|e| e.to_string()).and_then(|eui| {
            Command::new(n.id.clone(), eui, n.f_port, n.payload.clone(), n.confirmed).map_err(|e| e.to_string())
        });
        let command = match command {
            Ok(c) => c,
            Err(why) => return Ok(Sent::Never(why)),
        };
        let out = route.command(&command);
        Ok(match publisher.publish(&out.topic, out.payload).await {
            Ok(()) => Sent::Yes,
            Err(e) => Sent::Later(e.to_string()),
        })
    }
}

enum Sent {
    Yes,
    /// Cannot ever be sent as it is.
    Never(String),
    /// The broker did not take it now.
    Later(String),
}
