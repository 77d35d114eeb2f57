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
    /// Waiting requests: stored apart from the rest (see [`StockRequests`]), so not part
    /// of this value's encoding.
    #[serde(skip)]
    pub requests: StockRequests,
    /// Due time of the armed request-expiry timer: never later than the earliest expiry.
    pub expiry_armed: Option<Millis>,
    /// Popularity, co-occurrence and publishing; `None` while the product side is off
    /// or nothing has happened to the SKU yet. Boxed: stock-only SKUs stay small.
    pub activity: Option<Box<ProductActivity>>,
}

/// A SKU's waiting back-in-stock requests by shopper key: a shopper asking again finds
/// theirs at once, however many wait for a popular product. Served oldest first.
///
/// A popular SKU that is out of stock gathers thousands of requests while every view
/// of it changes its counts and neighbour lists; stored inside the SKU's value, the
/// requests were rewritten at every commit that saw a view. They are stored under the
/// same key in a family of their own and written only when they changed, which this
/// type notes as the rules change them.
#[derive(Debug, Clone, Default)]
pub struct StockRequests {
    by_shopper: BTreeMap<String, StockRequest>,
    changed: bool,
}

impl PartialEq for StockRequests {
    /// The requests alone: whether they are stored yet is not part of the value.
    fn eq(&self, other: &Self) -> bool {
        self.by_shopper == other.by_shopper
    }
}

impl StockRequests {
    /// Requests read back from the store (unchanged since), or migrated from a layout
    /// that kept them inline (`changed`: to be stored apart at the next write).
    pub fn from_map(by_shopper: BTreeMap<String, StockRequest>, changed: bool) -> Self {
        StockRequests {
            by_shopper,
            changed,
        }
    }

    pub fn as_map(&self) -> &BTreeMap<String, StockRequest> {
        &self.by_shopper
    }

    pub fn len(&self) -> usize {
        self.by_shopper.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_shopper.is_empty()
    }

    pub fn get(&self, shopper: &str) -> Option<&StockRequest> {
        self.by_shopper.get(shopper)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &StockRequest)> {
        self.by_shopper.iter()
    }

    pub fn insert(&mut self, shopper: String, request: StockRequest) {
        self.by_shopper.insert(shopper, request);
        self.changed = true;
    }

    pub fn remove(&mut self, shopper: &str) -> Option<StockRequest> {
        let removed = self.by_shopper.remove(shopper);
        self.changed |= removed.is_some();
        removed
    }

    /// Extends the shopper's request to `expires_at` if it is later; `false` when the
    /// shopper has no request.
    pub fn renew(&mut self, shopper: &str, expires_at: Millis) -> bool {
        let Some(request) = self.by_shopper.get_mut(shopper) else {
            return false;
        };
        if expires_at > request.expires_at {
            request.expires_at = expires_at;
            self.changed = true;
        }
        true
    }

    /// Drops the requests that have expired at `now`.
    pub fn drop_expired(&mut self, now: Millis) {
        let before = self.by_shopper.len();
        self.by_shopper.retain(|_, r| r.expires_at > now);
        self.changed |= self.by_shopper.len() != before;
    }

    /// Whether they changed since the last call (or since they were read back).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }
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
