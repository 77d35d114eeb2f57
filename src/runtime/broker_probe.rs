//! Whether the brokers answer, for `/readyz`: a metadata request every few seconds
//! from a client of its own, so the answer does not depend on what the stream thread
//! happens to be doing.

use super::clients;
use crate::config::Config;
use crate::telemetry::Telemetry;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_secs(5);
const TIMEOUT: Duration = Duration::from_secs(3);

/// Probes until `stop` is set. The first probe runs at once.
pub fn run(config: &Config, telemetry: &Telemetry, stop: &AtomicBool) {
    let consumer: BaseConsumer = match clients::plain_consumer(config) {
        Ok(consumer) => consumer,
        Err(error) => {
            tracing::error!(%error, "cannot create the client that checks the brokers");
            return;
        }
    };
    let topic = config.kafka.topics.clickstream.as_str();
    let mut was_reachable = None;
    while !stop.load(Ordering::SeqCst) {
        let reachable = match consumer.fetch_metadata(Some(topic), TIMEOUT) {
            Ok(_) => true,
            Err(error) => {
                if was_reachable != Some(false) {
                    tracing::warn!(%error, bootstrap = %config.kafka.bootstrap_servers, "the brokers do not answer; not ready");
                }
                false
            }
        };
        if reachable && was_reachable == Some(false) {
            tracing::info!("the brokers answer again");
        }
        was_reachable = Some(reachable);
        telemetry.health.set_broker_reachable(reachable);
        telemetry
            .metrics
            .broker_reachable
            .set(if reachable { 1.0 } else { 0.0 });
        let next = Instant::now() + INTERVAL;
        while !stop.load(Ordering::SeqCst) && Instant::now() < next {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
