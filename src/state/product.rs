//! What the product processor remembers per SKU: stock and back-in-stock requests
//! (CONTRACT §3), and the popularity, co-occurrence and publishing state of §5.4.

use super::ProductInfo;
use crate::time::Millis;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ProductState {
    /// Units available; `None` until a `stock_changed` told us.
    pub quantity: Option<u64>,
    pub last_restock_at: Option<Millis>,
    pub last_restock_event: Option<String>,
    pub details: Option<ProductInfo>,
    /// Waiting requests: each stored apart from the rest (see [`StockRequests`]), so not
    /// part of this value's encoding.
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
/// of it changes its counts and neighbour lists, and new requests keep coming; stored
/// inside the SKU's value, all of them were rewritten at every commit that saw the SKU.
/// Each request is stored under a key of its own (the SKU's and the shopper's), and
/// this type notes which shoppers' requests the rules changed since they were stored.
#[derive(Debug, Clone, Default)]
pub struct StockRequests {
    by_shopper: BTreeMap<String, StockRequest>,
    /// Shoppers whose request was added, renewed or removed since the last write.
    changed: BTreeSet<String>,
    /// Stored size of the requests: each shopper key and its encoded request.
    bytes: usize,
}

impl PartialEq for StockRequests {
    /// The requests alone: whether they are stored yet is not part of the value.
    fn eq(&self, other: &Self) -> bool {
        self.by_shopper == other.by_shopper
    }
}

impl StockRequests {
    /// Requests read back from the store (unchanged since), or migrated from a layout
    /// that kept them inline (`changed`: every one is to be stored at the next write).
    pub fn from_map(by_shopper: BTreeMap<String, StockRequest>, changed: bool) -> Self {
        let bytes = by_shopper.iter().map(|(s, r)| entry_len(s, r)).sum();
        let changed = if changed {
            by_shopper.keys().cloned().collect()
        } else {
            BTreeSet::new()
        };
        StockRequests {
            by_shopper,
            changed,
            bytes,
        }
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
        self.bytes += entry_len(&shopper, &request);
        if let Some(old) = self.by_shopper.insert(shopper.clone(), request) {
            self.bytes -= entry_len(&shopper, &old);
        }
        self.changed.insert(shopper);
    }

    pub fn remove(&mut self, shopper: &str) -> Option<StockRequest> {
        let removed = self.by_shopper.remove(shopper)?;
        self.bytes -= entry_len(shopper, &removed);
        self.changed.insert(shopper.to_string());
        Some(removed)
    }

    /// Extends the shopper's request to `expires_at` if it is later; `false` when the
    /// shopper has no request.
    pub fn renew(&mut self, shopper: &str, expires_at: Millis) -> bool {
        let Some(request) = self.by_shopper.get_mut(shopper) else {
            return false;
        };
        if expires_at > request.expires_at {
            self.bytes -= entry_len(shopper, request);
            request.expires_at = expires_at;
            self.bytes += entry_len(shopper, request);
            self.changed.insert(shopper.to_string());
        }
        true
    }

    /// Drops the requests that have expired at `now`.
    pub fn drop_expired(&mut self, now: Millis) {
        let expired: Vec<String> = self
            .by_shopper
            .iter()
            .filter(|(_, r)| r.expires_at <= now)
            .map(|(shopper, _)| shopper.clone())
            .collect();
        for shopper in expired {
            self.remove(&shopper);
        }
    }

    /// The stored size of the requests.
    pub fn stored_len(&self) -> usize {
        self.bytes
    }

    /// Each shopper whose request changed since the last call, with the request as it
    /// is now (`None`: removed).
    pub fn take_changed(&mut self) -> impl Iterator<Item = (String, Option<&StockRequest>)> {
        let changed = std::mem::take(&mut self.changed);
        changed.into_iter().map(|shopper| {
            let request = self.by_shopper.get(&shopper);
            (shopper, request)
        })
    }
}

/// The stored size of one request: its key part (the shopper key) and its value (a
/// version byte and the encoded request).
fn entry_len(shopper: &str, request: &StockRequest) -> usize {
    shopper.len()
        + 1
        + postcard::experimental::serialized_size(request)
            .expect("sizing state in memory cannot fail")
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
