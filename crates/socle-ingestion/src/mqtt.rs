//! MQTT subscriptions feeding the pipeline: the thin layer between
//! `socle-mqtt` (which acknowledges only what its handler accepted) and
//! [`Pipeline::ingest_batch`] (which stores a batch in one transaction and
//! keeps refused bodies as dead letters).

use serde::{Deserialize, Serialize};
use socle_domain::OrganisationId;
use socle_mqtt::{Handler, Message, Retry, Subscription};

use crate::{Input, Pipeline, Source};

/// The kind of network server publishing on the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// ChirpStack v4: `application/{app}/device/{devEui}/event/{type}`.
    Chirpstack,
    /// The Things Stack v3: `v3/{app}@{tenant}/devices/{device}/up`.
    Ttn,
    /// Socle's generic JSON messages on any topic.
    Generic,
}

impl Network {
    /// The topic filters subscribed to when none are configured.
    pub fn default_topics(self) -> Vec<String> {
        match self {
            Self::Chirpstack => vec!["application/+/device/+/event/+".into()],
            // Uplinks, and what becomes of the downlinks Socle sends.
            Self::Ttn => vec!["v3/+/devices/+/up".into(), "v3/+/devices/+/down/+".into()],
            Self::Generic => vec!["socle/+/up".into()],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Chirpstack => "ChirpStack",
            Self::Ttn => "The Things Stack",
            Self::Generic => "generic MQTT",
        }
    }

    fn source(self, topic: &str) -> Source {
        let topic = topic.to_owned();
        match self {
            Self::Chirpstack => Source::ChirpStackMqtt { topic },
            Self::Ttn => Source::TtnMqtt { topic },
            Self::Generic => Source::GenericMqtt { topic },
        }
    }
}

/// Hands MQTT batches of one organisation's broker to the pipeline.
pub struct MqttIngest {
    pub pipeline: Pipeline,
    pub organisation: OrganisationId,
    pub network: Network,
}

impl Handler for MqttIngest {
    async fn handle(&self, batch: &[Message]) -> Result<(), Retry> {
        let inputs: Vec<Input> = batch
            .iter()
            .map(|m| Input::new(self.organisation.clone(), self.network.source(&m.topic), m.payload.clone()))
            .collect();
        let results = self.pipeline.ingest_batch(&inputs).await;
        // A refused body is kept as a dead letter and may be acknowledged; a
        // storage failure or overload may not: the whole batch comes again,
        // and frame identities make the already-stored part a no-op.
        match results.iter().find_map(|r| r.as_ref().err().filter(|e| !e.is_final())) {
            Some(e) => Err(Retry(e.to_string())),
            None => Ok(()),
        }
    }
}

/// Runs one subscription into the pipeline until `shutdown`.
pub async fn run(
    subscription: Subscription,
    ingest: MqttIngest,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> socle_mqtt::Stats {
    tracing::info!(
        host = %subscription.host,
        port = subscription.port,
        organisation = %ingest.organisation,
        topics = ?subscription.topics,
        "MQTT ingestion subscribed"
    );
    socle_mqtt::run(subscription, ingest, shutdown).await
}
