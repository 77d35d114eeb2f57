//! Messages one task forwards to another: between the shopper and product processors,
//! or from one shopper to another (sign-in, erasure). In memory when the receiving task
//! is in the same process, through an internal topic otherwise.

use crate::event::Event;
use crate::state::{ProductInfo, ShopperState};
use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// Messages to the product processor, keyed by SKU.
// Messages are moved through a queue once each; boxing would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProductMessage {
    RegisterRequest {
        shopper: String,
        event_id: String,
        product: ProductInfo,
    },
    CancelRequests {
        shopper: String,
    },
    /// A shopper viewed the SKU; `before` are the distinct SKUs they viewed within
    /// `recs.coview_window` before it (at most `recs.coview_max`, newest first).
    Viewed {
        event_id: String,
        product: ProductInfo,
        before: Vec<String>,
    },
    /// A shopper viewed `with` within `recs.coview_window` after viewing this SKU: the
    /// other direction of the pair a [`ProductMessage::Viewed`] of `with` counts.
    CoViewed {
        event_id: String,
        with: String,
    },
    AddedToCart {
        event_id: String,
        product: ProductInfo,
    },
    /// An order bought `units` of the SKU; `with` are the other SKUs among the order's
    /// first `recs.order_pair_lines` lines.
    Purchased {
        event_id: String,
        product: ProductInfo,
        units: u32,
        with: Vec<String>,
    },
    /// The shopper viewed this SKU within `recs.view_before_order` of an order that
    /// bought `bought` (and not this SKU).
    ViewedThenBought {
        event_id: String,
        bought: Vec<String>,
    },
}

/// Messages to the customer processor, keyed by shopper.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShopperMessage {
    /// A restock served this shopper's request.
    BackInStock {
        sku: String,
        product: ProductInfo,
        requested_at: Millis,
        request_event_id: String,
        quantity_available: u64,
        restock_event_id: String,
    },
    /// This anonymous shopper signed in as `customer_id`: hand everything over.
    MergeInto {
        customer_id: String,
        event_id: String,
    },
    /// The state of anonymous shopper `from`, for the customer it signed in as.
    Absorb {
        from: String,
        state: Box<ShopperState>,
        /// The `signed_in` event that merged them (the merged cart's evidence).
        #[serde(default)]
        event_id: String,
    },
    /// An event keyed by an anonymous id that now belongs to a customer.
    Reroute(Box<Event>),
    /// The customer this anonymous id belonged to was erased.
    EraseAlias { customer_id: String },
}

/// A message from one task to another. `at` is its event time: the time of the event
/// that caused it, by which the receiving rule judges it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Forward {
    ToProduct {
        sku: String,
        at: Millis,
        message: ProductMessage,
    },
    ToShopper {
        key: String,
        at: Millis,
        message: ShopperMessage,
    },
}
