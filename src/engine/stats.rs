//! Counters of what the engine did, for `replay`'s summary and the live metrics.

use crate::decision::{SegmentChange, SegmentFamily};
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
    /// `segment_changed` decisions by family and change.
    pub segment_changes: BTreeMap<(SegmentFamily, SegmentChange), u64>,
    pub forwards: u64,
    pub timers_fired: u64,
    pub suppressed_no_consent: u64,
    pub notifications_dropped: u64,
    /// Events refused by `rules.limits` (dead-lettered, or reported by `replay`).
    pub refused: u64,
    /// Messages between tasks dropped because they would break `rules.limits`.
    pub messages_refused: u64,
    pub commits: u64,
}

impl Stats {
    pub fn count_event(&mut self, type_name: &'static str) {
        *self.events.entry(type_name).or_default() += 1;
    }

    pub fn count_decision(&mut self, decision: &crate::decision::Decision) {
        *self
            .decisions
            .entry(decision.decision_type().name())
            .or_default() += 1;
        if let crate::decision::DecisionBody::SegmentChanged { segment, change } = &decision.body {
            if let Some(family) = SegmentFamily::of(segment) {
                *self.segment_changes.entry((family, *change)).or_default() += 1;
            }
        }
    }

    pub fn events_processed(&self) -> u64 {
        self.events.values().sum()
    }

    /// Adds another set of counters to these.
    pub fn add(&mut self, other: &Stats) {
        for (k, v) in &other.events {
            *self.events.entry(k).or_default() += v;
        }
        for (k, v) in &other.decisions {
            *self.decisions.entry(k).or_default() += v;
        }
        for (k, v) in &other.segment_changes {
            *self.segment_changes.entry(*k).or_default() += v;
        }
        self.duplicates += other.duplicates;
        self.unknown_types += other.unknown_types;
        self.invalid += other.invalid;
        self.forwards += other.forwards;
        self.timers_fired += other.timers_fired;
        self.suppressed_no_consent += other.suppressed_no_consent;
        self.notifications_dropped += other.notifications_dropped;
        self.refused += other.refused;
        self.messages_refused += other.messages_refused;
        self.commits += other.commits;
    }

    pub fn decisions_made(&self) -> u64 {
        self.decisions.values().sum()
    }
}
