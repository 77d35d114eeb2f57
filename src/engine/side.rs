//! The two sides of the engine, and a task's identity.

use super::processor::{CustomerProcessor, Processor, ProductProcessor};
use crate::event::{Event, RoutingKey};
use crate::forward::Forward;
use crate::store::Family;
use crate::time::Millis;

/// The two processors: shoppers (keyed by shopper) and products (keyed by SKU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Customer,
    Product,
}

impl Side {
    pub const ALL: [Side; 2] = [Side::Customer, Side::Product];

    pub fn name(self) -> &'static str {
        match self {
            Side::Customer => CustomerProcessor::NAME,
            Side::Product => ProductProcessor::NAME,
        }
    }

    /// The column families that hold this side's tasks' state.
    pub fn families(self) -> Vec<Family> {
        fn of<P: Processor>() -> Vec<Family> {
            let mut families = vec![P::STATE, P::TIMERS, P::DEDUPE];
            families.extend(P::DETACHED);
            families
        }
        match self {
            Side::Customer => of::<CustomerProcessor>(),
            Side::Product => of::<ProductProcessor>(),
        }
    }

    /// The side whose tasks own `event`'s key.
    pub fn of(event: &Event) -> Side {
        match event.routing_key() {
            RoutingKey::Shopper(_) => Side::Customer,
            RoutingKey::Sku(_) => Side::Product,
        }
    }

    /// The side a forwarded message is addressed to, with its key and event time.
    pub fn addressee(forward: &Forward) -> (Side, &str, Millis) {
        match forward {
            Forward::ToShopper { key, at, .. } => (Side::Customer, key, *at),
            Forward::ToProduct { sku, at, .. } => (Side::Product, sku, *at),
        }
    }
}

/// A task: one partition of one side.
pub type TaskId = (Side, u16);
