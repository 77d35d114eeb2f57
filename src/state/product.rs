//! What the product processor remembers per SKU: stock and back-in-stock requests
//! (CONTRACT §3), and the popularity, co-occurrence and publishing state of §5.4.

use super::ProductInfo;
use crate::time::Millis;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ProductState {
    /// Units available; `None` until a `stock_changed` told us.
    pub quantity: Option<u64>,
    pub last_restock_at: Option<Millis>,
    pub last_restock_event: Option<String>,
    pub details: Option<ProductInfo>,
    /// Waiting requests by shopper key: a shopper asking again finds theirs at once,
    /// however many wait for a popular product. Served oldest first.
    pub requests: BTreeMap<String, StockRequest>,
    /// Due time of the armed request-expiry timer: never later than the earliest expiry.
    pub expiry_armed: Option<Millis>,
    /// Popularity, co-occurrence and publishing; `None` while the product side is off
    /// or nothing has happened to the SKU yet. Boxed: stock-only SKUs stay small.
    pub activity: Option<Box<ProductActivity>>,
}

/// A registered back-in-stock request, waiting for the SKU's next restock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockRequest {
    pub requested_at: Millis,
    pub expires_at: Millis,
    pub event_id: String,
}

/// A decayed count: `value` as of event time `at`. Reading it later decays it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Decayed {
    pub value: f64,
    pub at: Millis,
}

/// The three co-occurrence kinds of CONTRACT §5.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NeighbourKind {
    /// Viewed within `recs.coview_window` of each other, both ways.
    ViewedWith,
    /// In the same order, both ways.
    BoughtWith,
    /// Viewed by a shopper who then bought the neighbour (not this SKU).
    ViewedThenBought,
}

/// Another SKU and the decayed count of their co-occurrence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    pub sku: CompactString,
    pub count: Decayed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ProductActivity {
    /// Event time of the first event that concerned the SKU (`new_arrival`).
    pub first_seen: Option<Millis>,
    /// Event time of the event the details were taken from (the latest wins).
    pub details_at: Option<Millis>,
    /// Decayed with `products.popularity_half_life`.
    pub views: Decayed,
    pub cart_adds: Decayed,
    /// Units.
    pub purchases: Decayed,
    /// Views decayed with 24 h and 72 h half-lives: the trending foreground and background.
    pub views_24h: Decayed,
    pub views_72h: Decayed,
    /// Views and orders decayed with `recs.half_life`: what co-occurrence is ranked by.
    pub long_views: Decayed,
    pub long_orders: Decayed,
    /// At most `recs.max_neighbours` per kind, in no particular order.
    pub viewed_with: Vec<Neighbour>,
    pub bought_with: Vec<Neighbour>,
    pub viewed_then_bought: Vec<Neighbour>,
    /// Due time of the armed publish timer, if any.
    pub publish_due: Option<Millis>,
    /// What changed since the last publish: the first and latest evidence, and how many.
    pub changes: Option<(String, String, u32)>,
    /// Product records published so far: part of each record's id.
    pub publishes: u64,
    /// Due time of the armed timer that ends `new_arrival`, if any.
    pub arrival_ends_armed: Option<Millis>,
}

impl ProductActivity {
    pub fn neighbours(&self, kind: NeighbourKind) -> &Vec<Neighbour> {
        match kind {
            NeighbourKind::ViewedWith => &self.viewed_with,
            NeighbourKind::BoughtWith => &self.bought_with,
            NeighbourKind::ViewedThenBought => &self.viewed_then_bought,
        }
    }

    pub fn neighbours_mut(&mut self, kind: NeighbourKind) -> &mut Vec<Neighbour> {
        match kind {
            NeighbourKind::ViewedWith => &mut self.viewed_with,
            NeighbourKind::BoughtWith => &mut self.bought_with,
            NeighbourKind::ViewedThenBought => &mut self.viewed_then_bought,
        }
    }
}
