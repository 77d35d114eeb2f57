//! Counters of what the engine did, for `replay`'s summary and the live metrics.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Processed events by type.
    pub events: BTreeMap<&'static str, u64>,
    /// Events skipped because their `event_id` was seen within the dedupe window.
    pub duplicates: u64,
    /// Records of a type this version does not know, skipped.
    pub unknown_types: u64,
    /// Records that failed decoding or validation.
    pub invalid: u64,
    /// Decisions by type.
    pub decisions: BTreeMap<&'static str, u64>,
    pub forwards: u64,
    pub timers_fired: u64,
    pub suppressed_no_consent: u64,
    pub notifications_dropped: u64,
    pub commits: u64,
}

impl Stats {
    pub fn count_event(&mut self, type_name: &'static str) {
        *self.events.entry(type_name).or_default() += 1;
    }

    pub fn count_decision(&mut self, type_name: &'static str) {
        *self.decisions.entry(type_name).or_default() += 1;
    }

    pub fn events_processed(&self) -> u64 {
        self.events.values().sum()
    }

    pub fn decisions_made(&self) -> u64 {
        self.decisions.values().sum()
    }
}
