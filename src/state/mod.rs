//! What the rules remember: per shopper and per SKU. Plain data, no storage types; the
//! store persists it through [`VersionedState`], which is where its byte layout lives.

mod product;
mod profile;
mod v1;
mod v2;
pub use product::{
    Decayed, Neighbour, NeighbourKind, ProductActivity, ProductState, StockRequest, StockRequests,
};
pub use profile::{
    normalize_query, CategoryInterest, OrderRecord, ProfileChanges, Purchase, RecentView,
    SearchClick, SegmentState, ShopperProfile, SiteChoice,
};

use crate::event::Product;
use crate::time::Millis;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Product details as state keeps them. Separate from the wire [`Product`] so the JSON
/// contract and the stored layout can each evolve without breaking the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ProductInfo {
    pub sku: String,
    pub name: Option<String>,
    pub category: Option<Vec<String>>,
    pub brand: Option<String>,
    pub price: Option<f64>,
    pub currency: Option<String>,
    pub url: Option<String>,
    pub image_url: Option<String>,
}

impl From<&Product> for ProductInfo {
    fn from(p: &Product) -> Self {
        ProductInfo {
            sku: p.sku.clone(),
            name: p.name.clone(),
            category: p.category.clone(),
            brand: p.brand.clone(),
            price: p.price,
            currency: p.currency.clone(),
            url: p.url.clone(),
            image_url: p.image_url.clone(),
        }
    }
}

impl From<&ProductInfo> for Product {
    fn from(p: &ProductInfo) -> Self {
        Product {
            sku: p.sku.clone(),
            name: p.name.clone(),
            category: p.category.clone(),
            brand: p.brand.clone(),
            price: p.price,
            currency: p.currency.clone(),
            url: p.url.clone(),
            image_url: p.image_url.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartLine {
    pub product: ProductInfo,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cart {
    pub cart_id: String,
    pub lines: Vec<CartLine>,
    /// The event that last changed the contents: the evidence, and part of reminder ids.
    pub changed_by: String,
    pub changed_at: Millis,
    /// Reminder steps already due for these contents (sent or suppressed); 0 after a change.
    pub steps_done: u32,
}

/// A "notify me" the shopper made, remembered so a late notification for a request the
/// shopper no longer has (erased, already served) is recognised and dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingStockRequest {
    pub sku: String,
    pub requested_at: Millis,
    pub event_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ShopperState {
    /// Set once the shopper is known as a registered customer (their key is a customer id).
    pub customer_id: Option<String>,
    /// An anonymous shopper who signed in: everything now belongs to this customer.
    pub merged_into: Option<String>,
    /// Anonymous ids merged into this customer, erased along with it.
    pub aliases: Vec<String>,
    pub last_activity_at: Option<Millis>,
    /// Event time of the shopper's latest `order_completed`.
    pub last_order_at: Option<Millis>,
    /// `consent_changed.email_marketing`; `None` until the shopper said anything.
    pub consent: Option<bool>,
    pub carts: Vec<Cart>,
    /// Due time of the reminder timer armed for this shopper, if any.
    pub reminder_armed: Option<Millis>,
    pub stock_requests: Vec<PendingStockRequest>,
    /// Interests, recent views, site and orders: what the published profile shows.
    pub profile: ShopperProfile,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StateDecodeError {
    #[error("empty value")]
    Empty,
    #[error("value format version {found} is newer than this build understands (up to {known})")]
    UnknownVersion { found: u8, known: u8 },
    #[error("corrupt value (format version {version}): {message}")]
    Corrupt { version: u8, message: String },
}

/// A stored value is one version byte and the postcard encoding of that version's layout.
/// A layout change adds a version: the old layout stays as a type of its own, decoding
/// it migrates to the current one, and the golden-bytes tests below keep old bytes loading.
pub trait VersionedState: Serialize + DeserializeOwned + Sized {
    const VERSION: u8;

    /// Decodes the body of a value written by an older format `version` into the current
    /// layout; `None` when that version never existed.
    fn migrate(version: u8, body: &[u8]) -> Option<Result<Self, postcard::Error>> {
        let _ = (version, body);
        None
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = vec![Self::VERSION];
        postcard::to_io(self, &mut out).expect("encoding state into memory cannot fail");
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, StateDecodeError> {
        let (&version, body) = bytes.split_first().ok_or(StateDecodeError::Empty)?;
        let decoded = if version == Self::VERSION {
            postcard::from_bytes(body)
        } else {
            Self::migrate(version, body).ok_or(StateDecodeError::UnknownVersion {
                found: version,
                known: Self::VERSION,
            })?
        };
        decoded.map_err(|e| StateDecodeError::Corrupt {
            version,
            message: e.to_string(),
        })
    }

    /// Entries of the state stored apart from its value, in the processor's detached
    /// family, each under the state's key and a sub-key of its own, because they are
    /// many and change one at a time (a SKU's waiting requests). Appends to `out` every
    /// entry changed since the last call or since it was read back: (sub-key, its
    /// bytes), or (sub-key, `None`) when it is gone.
    fn take_detached(&mut self, out: &mut Vec<DetachedEntry>) {
        let _ = out;
    }

    /// Puts the entries read back from the store, (sub-key, bytes) each, into a state
    /// just decoded.
    fn attach(&mut self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), StateDecodeError> {
        let _ = entries;
        Ok(())
    }

    /// The stored size of the detached entries, sub-keys included (for the state-size
    /// limit and the cache's budget).
    fn detached_len(&self) -> usize {
        0
    }
}

impl VersionedState for ShopperState {
    /// Version 2 added `profile`; version 1 values load with an empty profile. Version 3
    /// added the profile's `purchases` and `search_clicks` at the very end: a version 2
    /// body followed by two empty lists (one zero byte each) is the same value in
    /// version 3.
    const VERSION: u8 = 3;

    fn migrate(version: u8, body: &[u8]) -> Option<Result<Self, postcard::Error>> {
        match version {
            1 => Some(postcard::from_bytes::<v1::ShopperStateV1>(body).map(Self::from)),
            2 => {
                let mut extended = Vec::with_capacity(body.len() + 2);
                extended.extend_from_slice(body);
                extended.extend_from_slice(&[0, 0]);
                // Every byte must be used: trailing bytes mean the body was not version 2.
                Some(
                    postcard::take_from_bytes::<Self>(&extended).and_then(|(value, rest)| {
                        if rest.is_empty() {
                            Ok(value)
                        } else {
                            Err(postcard::Error::DeserializeBadEncoding)
                        }
                    }),
                )
            }
            _ => None,
        }
    }
}

impl VersionedState for ProductState {
    /// Version 2 added `activity`; version 1 values load with none. Version 3 moved the
    /// waiting requests out of the value (see [`StockRequests`]); older values load with
    /// theirs, to be stored apart at the next write.
    const VERSION: u8 = 3;

    fn migrate(version: u8, body: &[u8]) -> Option<Result<Self, postcard::Error>> {
        match version {
            1 => Some(postcard::from_bytes::<v1::ProductStateV1>(body).map(Self::from)),
            2 => Some(postcard::from_bytes::<v2::ProductStateV2>(body).map(Self::from)),
            _ => None,
        }
    }

    fn take_detached(&mut self, out: &mut Vec<DetachedEntry>) {
        for (shopper, request) in self.requests.take_changed() {
            let value = request.map(|request| {
                let mut bytes = vec![DETACHED_REQUEST_VERSION];
                postcard::to_io(request, &mut bytes)
                    .expect("encoding state into memory cannot fail");
                bytes
            });
            out.push((shopper.into_bytes(), value));
        }
    }

    fn attach(&mut self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), StateDecodeError> {
        let mut requests = std::collections::BTreeMap::new();
        for (shopper, bytes) in entries {
            let (&version, body) = bytes.split_first().ok_or(StateDecodeError::Empty)?;
            if version != DETACHED_REQUEST_VERSION {
                return Err(StateDecodeError::UnknownVersion {
                    found: version,
                    known: DETACHED_REQUEST_VERSION,
                });
            }
            let corrupt = |message: String| StateDecodeError::Corrupt { version, message };
            let shopper = String::from_utf8(shopper)
                .map_err(|_| corrupt("a request's shopper key is not UTF-8".into()))?;
            let request = postcard::from_bytes(body).map_err(|e| corrupt(e.to_string()))?;
            requests.insert(shopper, request);
        }
        self.requests = StockRequests::from_map(requests, false);
        Ok(())
    }

    fn detached_len(&self) -> usize {
        self.requests.stored_len()
    }
}

/// A detached entry of a state as it is to be stored: sub-key, and bytes or `None` to
/// delete it.
pub type DetachedEntry = (Vec<u8>, Option<Vec<u8>>);

/// Format version of a SKU's stored waiting request (one per shopper, the shopper key
/// its sub-key): one byte, then the postcard encoding of the request.
const DETACHED_REQUEST_VERSION: u8 = 1;

#[cfg(test)]
mod tests;
