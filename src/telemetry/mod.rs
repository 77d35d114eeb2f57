//! What the runtime reports about itself: metrics for Prometheus and health for probes.
//! The runtime writes both; the HTTP server ([`crate::http_port`]) only reads them.

mod catalog;
pub mod health;
pub mod metrics;

use crate::config::Config;
use crate::decision::DecisionType;
use crate::event::{InputTopic, EVENT_TYPES};
use health::Health;
use metrics::Metrics;

/// Why a record goes to the dead-letter topic (the `reason` label and header).
pub const DEAD_LETTER_REASONS: [&str; 9] = [
    "empty",
    "syntax",
    "missing_field",
    "invalid_field",
    "avro",
    "from_the_future",
    "wrong_topic",
    "too_large",
    "limit_exceeded",
];

pub struct Telemetry {
    pub metrics: Metrics,
    pub health: Health,
}

impl Telemetry {
    /// Metrics with every series whose labels the configuration fixes created at zero.
    pub fn new(config: &Config) -> Telemetry {
        let telemetry = Telemetry {
            metrics: Metrics::default(),
            health: Health::new(config.http.commit_stall_limit.0),
        };
        let topics = &config.kafka.topics;
        let types_of = |topic: InputTopic| -> Vec<&'static str> {
            EVENT_TYPES
                .iter()
                .filter(|(_, t)| *t == topic)
                .map(|(name, _)| *name)
                .collect()
        };
        let inputs = [
            (
                topics.clickstream.as_str(),
                types_of(InputTopic::Clickstream),
            ),
            (topics.cart.as_str(), types_of(InputTopic::Cart)),
            (topics.customers.as_str(), types_of(InputTopic::Customers)),
            (topics.stock.as_str(), types_of(InputTopic::Stock)),
        ];
        let inputs: Vec<(&str, &[&'static str])> = inputs
            .iter()
            .map(|(t, types)| (*t, types.as_slice()))
            .collect();
        let decisions: Vec<&str> = DecisionType::ALL.iter().map(|t| t.name()).collect();
        telemetry
            .metrics
            .initialize_series(&inputs, &decisions, &DEAD_LETTER_REASONS);
        telemetry
    }
}

impl Telemetry {
    /// The metrics in the Prometheus text format, with readiness as of now.
    pub fn render_metrics(&self) -> String {
        let ready = self.health.readiness().ok;
        self.metrics.ready.set(if ready { 1.0 } else { 0.0 });
        self.metrics
            .commit_stall
            .set(self.health.commit_stalled_for().as_secs_f64());
        self.metrics.render()
    }
}
