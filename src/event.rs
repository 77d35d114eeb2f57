//! Input events (CONTRACT §1): the typed model; its JSON wire form is in `event_wire.rs`.
//!
//! Decoding goes through one wire struct, [`WireEvent`], whatever the format: JSON is read
//! into it directly, Avro is first turned into the same JSON shape (see `avro.rs`), so a
//! rule about a field is written once and holds for both formats.

#[path = "event_checks.rs"]
mod checks;
#[path = "event_wire.rs"]
mod wire;
pub use checks::*;
pub use wire::*;

use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// The Kafka topic family an event type belongs to; it decides which key routes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputTopic {
    Clickstream,
    Cart,
    Stock,
    Customers,
}

impl InputTopic {
    pub fn name(self) -> &'static str {
        match self {
            InputTopic::Clickstream => "clickstream",
            InputTopic::Cart => "cart",
            InputTopic::Stock => "stock",
            InputTopic::Customers => "customers",
        }
    }
}

/// A product as events describe it; everything but `sku` is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Product {
    pub sku: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderItem {
    pub product: Product,
    pub quantity: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageType {
    Home,
    Category,
    Product,
    Search,
    Cart,
    Checkout,
    Account,
    Other,
}

impl PageType {
    pub fn as_str(self) -> &'static str {
        match self {
            PageType::Home => "home",
            PageType::Category => "category",
            PageType::Product => "product",
            PageType::Search => "search",
            PageType::Cart => "cart",
            PageType::Checkout => "checkout",
            PageType::Account => "account",
            PageType::Other => "other",
        }
    }
}

/// What happened, with the fields that only that type carries.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    PageViewed {
        page_type: PageType,
        url: Option<String>,
    },
    ProductViewed {
        product: Product,
    },
    CategoryViewed {
        category: Vec<String>,
    },
    ProductsSearched {
        query: String,
        results: Option<Vec<String>>,
    },
    SearchResultClicked {
        query: String,
        sku: String,
    },
    WishlistAdded {
        product: Product,
    },
    BackInStockRequested {
        product: Product,
    },
    SignedIn,
    /// The chosen site is the event's common `site` field, which this type requires.
    SiteSelected,
    CartItemAdded {
        cart_id: String,
        product: Product,
        quantity: u32,
    },
    CartItemRemoved {
        cart_id: String,
        sku: String,
        quantity: u32,
    },
    CartCleared {
        cart_id: String,
    },
    CheckoutStarted {
        cart_id: String,
    },
    OrderCompleted {
        order_id: String,
        cart_id: Option<String>,
        items: Vec<OrderItem>,
        total: f64,
        currency: String,
    },
    StockChanged {
        sku: String,
        quantity: u64,
        product: Option<Product>,
    },
    ConsentChanged {
        email_marketing: bool,
    },
    CustomerErased,
}

/// Every event type of the contract, in one place: its wire name and its topic.
pub const EVENT_TYPES: [(&str, InputTopic); 17] = [
    ("page_viewed", InputTopic::Clickstream),
    ("product_viewed", InputTopic::Clickstream),
    ("category_viewed", InputTopic::Clickstream),
    ("products_searched", InputTopic::Clickstream),
    ("search_result_clicked", InputTopic::Clickstream),
    ("wishlist_added", InputTopic::Clickstream),
    ("back_in_stock_requested", InputTopic::Clickstream),
    ("signed_in", InputTopic::Clickstream),
    ("site_selected", InputTopic::Clickstream),
    ("cart_item_added", InputTopic::Cart),
    ("cart_item_removed", InputTopic::Cart),
    ("cart_cleared", InputTopic::Cart),
    ("checkout_started", InputTopic::Cart),
    ("order_completed", InputTopic::Cart),
    ("stock_changed", InputTopic::Stock),
    ("consent_changed", InputTopic::Customers),
    ("customer_erased", InputTopic::Customers),
];

impl EventBody {
    pub fn type_name(&self) -> &'static str {
        match self {
            EventBody::PageViewed { .. } => "page_viewed",
            EventBody::ProductViewed { .. } => "product_viewed",
            EventBody::CategoryViewed { .. } => "category_viewed",
            EventBody::ProductsSearched { .. } => "products_searched",
            EventBody::SearchResultClicked { .. } => "search_result_clicked",
            EventBody::WishlistAdded { .. } => "wishlist_added",
            EventBody::BackInStockRequested { .. } => "back_in_stock_requested",
            EventBody::SignedIn => "signed_in",
            EventBody::SiteSelected => "site_selected",
            EventBody::CartItemAdded { .. } => "cart_item_added",
            EventBody::CartItemRemoved { .. } => "cart_item_removed",
            EventBody::CartCleared { .. } => "cart_cleared",
            EventBody::CheckoutStarted { .. } => "checkout_started",
            EventBody::OrderCompleted { .. } => "order_completed",
            EventBody::StockChanged { .. } => "stock_changed",
            EventBody::ConsentChanged { .. } => "consent_changed",
            EventBody::CustomerErased => "customer_erased",
        }
    }

    pub fn topic(&self) -> InputTopic {
        topic_of(self.type_name()).expect("every body type is listed in EVENT_TYPES")
    }
}

/// The topic of a known event type name.
pub fn topic_of(type_name: &str) -> Option<InputTopic> {
    EVENT_TYPES
        .iter()
        .find(|(name, _)| *name == type_name)
        .map(|(_, topic)| *topic)
}

/// A validated input event. Its serde form is the JSON wire form (used when an event
/// travels inside a forwarded message).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "WireEvent")]
pub struct Event {
    pub event_id: String,
    pub occurred_at: Millis,
    pub customer_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub session_id: Option<String>,
    pub site: Option<String>,
    pub country: Option<String>,
    pub body: EventBody,
}

/// The key an event is routed and partitioned by, as the contract keys its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoutingKey<'a> {
    /// Clickstream, cart and customers: `customer_id`, else `anonymous_id`.
    Shopper(&'a str),
    /// Stock: the SKU.
    Sku(&'a str),
}

impl Event {
    pub fn routing_key(&self) -> RoutingKey<'_> {
        match &self.body {
            EventBody::StockChanged { sku, .. } => RoutingKey::Sku(sku),
            _ => RoutingKey::Shopper(
                self.customer_id
                    .as_deref()
                    .or(self.anonymous_id.as_deref())
                    .expect("validation guarantees a shopper id for shopper events"),
            ),
        }
    }
}

#[cfg(test)]
#[path = "event_tests.rs"]
mod tests;
