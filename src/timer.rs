//! Timers: what a rule asks to be woken for, at a stream time. The engine keeps them in
//! the state store ordered by due time and fires them when stream time passes it.

use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// What a timer is for; with the entity key and due time it identifies the timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TimerKind {
    /// The shopper's next abandoned-cart step may be due.
    CartReminder = 1,
    /// The SKU's oldest back-in-stock request may have expired.
    RequestExpiry = 2,
    /// The shopper's changed profile is due for publishing.
    ProfilePublish = 3,
    /// Time alone may move the shopper between segments now.
    SegmentChange = 4,
    /// The SKU's changed product record is due for publishing.
    ProductPublish = 5,
    /// The SKU stops being a `new_arrival`.
    NewArrivalEnds = 6,
}

/// A timer: fires once stream time reaches `due`. Ordered by due time first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Timer {
    pub due: Millis,
    pub kind: TimerKind,
    /// The shopper key or SKU whose state the timer belongs to.
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerOp {
    Set(Timer),
    Cancel(Timer),
}
