//! `rules.limits`: bounds on what one record and one entity's state may hold.

use super::{invalid, ConfigError};
use serde::{Deserialize, Serialize};

/// Bounds on what one record and one entity's state may hold, so that no state record
/// outgrows what the changelog topic accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// A record larger than this (bytes) goes to the dead-letter topic as `too_large`;
    /// it bounds every text field of an event at once.
    pub max_event_bytes: usize,
    /// An item added to a cart that already has this many lines goes to the dead-letter
    /// topic as `limit_exceeded`.
    pub max_cart_lines: usize,
    /// Back-in-stock requests waiting per SKU: a request from another shopper beyond this
    /// is refused (dropped and counted). Keeps a much-wanted SKU's state well below
    /// `max_state_bytes`, where every visit to it would be copied and measured, and its
    /// co-occurrence counts would stop changing.
    pub max_stock_requests: usize,
    /// An event that would make a shopper's or a SKU's stored state larger than this
    /// (bytes) goes to the dead-letter topic as `limit_exceeded`, and changes nothing.
    pub max_state_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_event_bytes: 64 * 1024,
            max_cart_lines: 100,
            max_stock_requests: 2_000,
            max_state_bytes: 256 * 1024,
        }
    }
}

/// The largest `rules.limits.max_state_bytes`: a state record must fit the broker's
/// default `max.message.bytes` (1 MiB) with room for its key and the batch framing.
pub const MAX_STATE_BYTES_CEILING: usize = 900 * 1024;

impl LimitsConfig {
    /// Refuses limits that could not work, naming the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let limits = self;
        if limits.max_cart_lines < 1 {
            return Err(invalid("rules.limits.max_cart_lines", "must be at least 1"));
        }
        if limits.max_stock_requests < 1 {
            return Err(invalid(
                "rules.limits.max_stock_requests",
                "must be at least 1",
            ));
        }
        if limits.max_state_bytes > MAX_STATE_BYTES_CEILING {
            return Err(invalid(
                "rules.limits.max_state_bytes",
                format!(
                    "must be at most {MAX_STATE_BYTES_CEILING}: a state record must fit the \
                     changelog topic's max.message.bytes (1 MiB by default)"
                ),
            ));
        }
        if limits.max_event_bytes < 1024 || limits.max_event_bytes * 2 > limits.max_state_bytes {
            return Err(invalid(
                "rules.limits.max_event_bytes",
                "must be at least 1024 and at most half of `rules.limits.max_state_bytes`",
            ));
        }
        Ok(())
    }
}
