//! The rules of CONTRACT §3 and §5, as pure functions of state, input and stream time.
//!
//! A rule sees plain state ([`crate::state`]), the input, and a [`Ctx`] through which it
//! emits decisions, forwards messages to the other processor, and arms or cancels
//! timers. It never sees Kafka, RocksDB or a clock, so every rule is unit-tested here and
//! runs unchanged in `replay` and live.

pub mod abandoned_cart;
pub mod back_in_stock;
pub mod consent;
pub mod cooccurrence;
pub mod history;
pub mod identity;
pub mod interests;
pub mod offers;
pub mod popularity;
pub mod product;
pub mod product_record;
pub mod product_signals;
pub mod profile;
pub mod segments;
pub mod shopper;
pub mod site;

use crate::catalog::ProductCatalog;
use crate::config::RulesConfig;
use crate::decision::{Decision, LifecycleStage, SegmentChange};
use crate::forward::Forward;
use crate::time::Millis;
use crate::timer::{Timer, TimerOp};

/// Things worth counting that are neither decisions nor errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Note {
    /// A decision was due but the shopper has not consented.
    SuppressedNoConsent,
    /// A back-in-stock notification found no matching request (erased, served, anonymous).
    NotificationDropped,
    /// A customer entered or left a lifecycle stage (with a `segment_changed` decision,
    /// or silently when erased): what keeps the count of customers per stage.
    Lifecycle(LifecycleStage, SegmentChange),
}

/// Why an input was refused: applying it would break a bound of `rules.limits`. A
/// refused input changes nothing; the driver sends an event to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("cart `{cart_id}` already has {limit} lines (`rules.limits.max_cart_lines`)")]
    CartFull { cart_id: String, limit: usize },
    #[error(
        "SKU `{sku}` already has {limit} waiting requests (`rules.limits.max_stock_requests`)"
    )]
    StockRequestsFull { sku: String, limit: usize },
    #[error(
        "the state of `{key}` would grow to {bytes} bytes, more than \
         `rules.limits.max_state_bytes` ({limit})"
    )]
    StateTooLarge {
        key: String,
        bytes: usize,
        limit: usize,
    },
}

impl Refusal {
    /// The dead-letter reason.
    pub fn reason_label(&self) -> &'static str {
        "limit_exceeded"
    }
}

/// Everything a rule produced for one input.
#[derive(Debug, Default)]
pub struct Outputs {
    pub decisions: Vec<Decision>,
    pub forwards: Vec<Forward>,
    pub timers: Vec<TimerOp>,
    pub notes: Vec<Note>,
    /// Set when the input was refused; then nothing else was produced.
    pub refused: Option<Refusal>,
}

impl Outputs {
    /// Drops everything produced for the input and records why it was refused.
    pub fn refuse(&mut self, refusal: Refusal) {
        self.decisions.clear();
        self.forwards.clear();
        self.timers.clear();
        self.notes.clear();
        self.refused = Some(refusal);
    }
}

/// What a rule may use and do: the stream time, the settings, and its outputs.
pub struct Ctx<'a> {
    /// Stream time: decisions made now carry it as `decided_at`.
    pub now: Millis,
    pub rules: &'a RulesConfig,
    /// The product table: other SKUs' last published records (CONTRACT §5.4).
    pub catalog: &'a ProductCatalog,
    pub out: &'a mut Outputs,
}

impl Ctx<'_> {
    pub fn emit(&mut self, decision: Decision) {
        self.out.decisions.push(decision);
    }
    pub fn forward(&mut self, forward: Forward) {
        self.out.forwards.push(forward);
    }
    pub fn set_timer(&mut self, timer: Timer) {
        self.out.timers.push(TimerOp::Set(timer));
    }
    pub fn cancel_timer(&mut self, timer: Timer) {
        self.out.timers.push(TimerOp::Cancel(timer));
    }
    pub fn note(&mut self, note: Note) {
        self.out.notes.push(note);
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers for rule tests: events built in one line, times in minutes.
    use super::*;
    use crate::event::{Event, EventBody, Product};

    pub const T0: Millis = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    pub fn minutes(m: i64) -> Millis {
        T0 + m * 60_000
    }

    pub fn product(sku: &str, price: f64) -> Product {
        Product {
            sku: sku.into(),
            name: Some(format!("Product {sku}")),
            price: Some(price),
            currency: Some("EUR".into()),
            ..Product::default()
        }
    }

    pub fn event(id: &str, at: Millis, customer: Option<&str>, body: EventBody) -> Event {
        Event {
            event_id: id.into(),
            occurred_at: at,
            customer_id: customer.map(Into::into),
            anonymous_id: if customer.is_none() {
                Some("anon".into())
            } else {
                None
            },
            session_id: None,
            site: None,
            country: None,
            body,
        }
    }

    pub fn run<R>(now: Millis, rules: &RulesConfig, f: impl FnOnce(&mut Ctx) -> R) -> (R, Outputs) {
        let mut out = Outputs::default();
        let catalog = ProductCatalog::default();
        let mut ctx = Ctx {
            now,
            rules,
            catalog: &catalog,
            out: &mut out,
        };
        let r = f(&mut ctx);
        (r, out)
    }
}
