//! What a task keeps in the `meta` family besides its state: its stream time and its
//! count of customers per lifecycle stage. Each is changelogged with the task, so it
//! moves and is restored (or wiped) with it.

use super::side::Side;
use crate::decision::{LifecycleStage, SegmentChange};

/// The `meta` key under which a live task's stream time is kept (and changelogged).
pub fn stream_time_key(side: Side, partition: u16) -> String {
    format!("task/{}/{partition}/stream_time", side.name())
}

/// The `meta` key under which a customer task keeps how many of its customers are in
/// `stage` (changelogged like the stream time, so the count survives a move).
pub fn lifecycle_key(partition: u16, stage: LifecycleStage) -> String {
    format!("task/customer/{partition}/lifecycle/{}", stage.label())
}

/// The `meta` keys a task keeps besides its state families.
pub fn task_meta_keys(side: Side, partition: u16) -> Vec<String> {
    let mut keys = vec![stream_time_key(side, partition)];
    if side == Side::Customer {
        keys.extend(LifecycleStage::ALL.map(|stage| lifecycle_key(partition, stage)));
    }
    keys
}

/// Customers per lifecycle stage, in [`LifecycleStage::ALL`] order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LifecycleCounts(pub [i64; 5]);

impl LifecycleCounts {
    pub(super) fn apply(&mut self, stage: LifecycleStage, change: SegmentChange) {
        self.0[stage as usize] += match change {
            SegmentChange::Entered => 1,
            SegmentChange::Exited => -1,
        };
    }

    pub fn get(&self, stage: LifecycleStage) -> i64 {
        self.0[stage as usize]
    }
}
