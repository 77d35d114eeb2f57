//! What a stream thread is built from: the process's settings, store and clients it
//! shares with the other threads, and its transactional id.

use crate::api::shoppers::ServedPartitions;
use crate::catalog::SharedCatalog;
use crate::config::Config;
use crate::decision_codec::DecisionEncoder;
use crate::runtime::input::InputDecoders;
use crate::runtime::instances::Announcer;
use crate::runtime::peers::Peers;
use crate::runtime::topics::TopicLayout;
use crate::store::Store;
use crate::telemetry::Telemetry;
use std::sync::Arc;

/// What the stream threads share with the process's other threads and with each other:
/// the product catalog they rank against (the product table's reader fills it), which
/// customer partitions the read API may answer for, and the announcer that tells the
/// other instances.
#[derive(Clone)]
pub struct SharedWithReaders {
    pub catalog: SharedCatalog,
    pub served: Arc<ServedPartitions>,
    /// Tells the other instances which customer partitions this one now serves.
    pub announcer: Arc<Announcer>,
    /// How input records are decoded (with the schema registry's cache).
    pub decoders: Arc<InputDecoders>,
    /// How decisions are written (JSON, or Avro with their schemas' ids).
    pub encoder: Arc<DecisionEncoder>,
    /// What the process's stream threads tell each other.
    pub peers: Arc<Peers>,
}

/// What every stream thread of the process is built from.
pub struct StreamSetup<'a> {
    pub config: &'a Config,
    pub layout: &'a TopicLayout,
    pub store: &'a Store,
    /// The instance's transactional id (see [`thread_transactional_id`]).
    pub transactional_id: &'a str,
    /// The customer and product sides' partition counts.
    pub partitions: [u16; 2],
    pub shared: &'a SharedWithReaders,
    pub telemetry: &'a Telemetry,
}

/// The transactional id of stream thread `index`: thread 0 keeps the instance's id (as
/// before there were several), the others add their number, so each fences only its
/// own predecessor.
pub fn thread_transactional_id(instance: &str, index: usize) -> String {
    if index == 0 {
        instance.to_string()
    } else {
        format!("{instance}-{index}")
    }
}

#[cfg(test)]
mod tests {
    use super::thread_transactional_id;

    #[test]
    fn thread_0_keeps_the_instances_id_and_the_others_add_their_number() {
        assert_eq!(thread_transactional_id("app-abc", 0), "app-abc");
        assert_eq!(thread_transactional_id("app-abc", 1), "app-abc-1");
        assert_eq!(thread_transactional_id("app-abc", 12), "app-abc-12");
    }
}
