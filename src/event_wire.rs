//! The JSON wire form of events: decoding with validation (every error names the field
//! and why), and encoding back (`to_json_line`).

use super::*;
use crate::time::{format_rfc3339, parse_rfc3339, Millis};
use serde::{Deserialize, Serialize};
use std::fmt;

impl Event {
    /// The event in its JSON wire form (the inverse of [`decode_json`]).
    pub fn to_wire(&self) -> WireEvent {
        let mut wire = WireEvent {
            event_id: Some(self.event_id.clone()),
            kind: Some(TypeName::Known(self.body.type_name())),
            occurred_at: Some(WireTime(self.occurred_at)),
            customer_id: self.customer_id.clone(),
            anonymous_id: self.anonymous_id.clone(),
            session_id: self.session_id.clone(),
            site: self.site.clone(),
            country: self.country.clone(),
            ..WireEvent::default()
        };
        match &self.body {
            EventBody::PageViewed { page_type, url } => {
                wire.page_type = Some(*page_type);
                wire.url = url.clone();
            }
            EventBody::ProductViewed { product }
            | EventBody::WishlistAdded { product }
            | EventBody::BackInStockRequested { product } => wire.product = Some(product.clone()),
            EventBody::CategoryViewed { category } => wire.category = Some(category.clone()),
            EventBody::ProductsSearched { query, results } => {
                wire.query = Some(query.clone());
                wire.results = results.clone();
            }
            EventBody::SearchResultClicked { query, sku } => {
                wire.query = Some(query.clone());
                wire.sku = Some(sku.clone());
            }
            EventBody::SignedIn | EventBody::SiteSelected | EventBody::CustomerErased => {}
            EventBody::CartItemAdded {
                cart_id,
                product,
                quantity,
            } => {
                wire.cart_id = Some(cart_id.clone());
                wire.product = Some(product.clone());
                wire.quantity = Some(i64::from(*quantity));
            }
            EventBody::CartItemRemoved {
                cart_id,
                sku,
                quantity,
            } => {
                wire.cart_id = Some(cart_id.clone());
                wire.sku = Some(sku.clone());
                wire.quantity = Some(i64::from(*quantity));
            }
            EventBody::CartCleared { cart_id } | EventBody::CheckoutStarted { cart_id } => {
                wire.cart_id = Some(cart_id.clone())
            }
            EventBody::OrderCompleted {
                order_id,
                cart_id,
                items,
                total,
                currency,
            } => {
                wire.order_id = Some(order_id.clone());
                wire.cart_id = cart_id.clone();
                wire.items = Some(
                    items
                        .iter()
                        .map(|i| WireOrderItem {
                            product: Some(i.product.clone()),
                            quantity: Some(i64::from(i.quantity)),
                        })
                        .collect(),
                );
                wire.total = Some(*total);
                wire.currency = Some(currency.clone());
            }
            EventBody::StockChanged {
                sku,
                quantity,
                product,
            } => {
                wire.sku = Some(sku.clone());
                wire.quantity = Some(i64::try_from(*quantity).unwrap_or(i64::MAX));
                wire.product = product.clone();
            }
            EventBody::ConsentChanged { email_marketing } => {
                wire.email_marketing = Some(*email_marketing)
            }
        }
        wire
    }

    pub fn to_json_line(&self) -> String {
        serde_json::to_string(&self.to_wire()).expect("events always serialize")
    }
}

/// Written through the wire form, as `into = "WireEvent"` would, but without first
/// cloning the whole event to hand it over by value.
impl serde::Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_wire().serialize(serializer)
    }
}

impl TryFrom<WireEvent> for Event {
    type Error = DecodeError;
    fn try_from(wire: WireEvent) -> Result<Event, DecodeError> {
        match wire.validate()? {
            Decoded::Event(event) => Ok(event),
            Decoded::UnknownType(t) => {
                Err(DecodeError::invalid("type", format!("unknown type `{t}`")))
            }
        }
    }
}

/// `occurred_at` on the wire: an RFC 3339 string in JSON (CONTRACT §1; a number is
/// refused, not guessed at), `timestamp-millis` in Avro (converted to the JSON form
/// before decoding). Parsed while reading, so the text is never copied. A time outside
/// [`EARLIEST_EVENT_TIME`, `LATEST_EVENT_TIME`] is refused: no shop's event is older
/// than the first, and a decision dated after the last could not be printed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WireTime(pub Millis);

impl Serialize for WireTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_rfc3339(self.0))
    }
}

impl<'de> Deserialize<'de> for WireTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TimeVisitor;
        impl serde::de::Visitor<'_> for TimeVisitor {
            type Value = WireTime;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<WireTime, E> {
                let t = parse_rfc3339(v).map_err(E::custom)?;
                if !(EARLIEST_EVENT_TIME..=LATEST_EVENT_TIME).contains(&t) {
                    return Err(E::custom(format!(
                        "`{v}` is outside the times events may have (2000-01-01 to 9999-12-31)"
                    )));
                }
                Ok(WireTime(t))
            }
        }
        d.deserialize_str(TimeVisitor)
    }
}

/// The `type` of a record: one of [`EVENT_TYPES`] (read without copying the text), or a
/// type this version does not know.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeName {
    Known(&'static str),
    Unknown(String),
}

impl TypeName {
    pub fn as_str(&self) -> &str {
        match self {
            TypeName::Known(name) => name,
            TypeName::Unknown(name) => name,
        }
    }
}

impl Serialize for TypeName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TypeName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TypeVisitor;
        impl serde::de::Visitor<'_> for TypeVisitor {
            type Value = TypeName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an event type name")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TypeName, E> {
                Ok(match EVENT_TYPES.iter().find(|(name, _)| *name == v) {
                    Some((name, _)) => TypeName::Known(name),
                    None => TypeName::Unknown(v.to_string()),
                })
            }
        }
        d.deserialize_str(TypeVisitor)
    }
}

/// The wire shape shared by every event type: all fields optional, checked afterwards
/// by [`WireEvent::validate`]. Unknown fields are ignored so producers can add fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireEvent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<TypeName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<WireTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_type: Option<PageType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<Product>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cart_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<WireOrderItem>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_marketing: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireOrderItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<Product>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<i64>,
}

/// Decodes one JSON record. The fast path reads it straight into the wire struct; only
/// when that fails is it read again, tracking the path, to name the field at fault.
pub fn decode_json(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    // serde would also read a JSON array into the struct, field by position.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(DecodeError::Syntax("expected a JSON object `{...}`".into()));
    }
    // Checking UTF-8 once for the whole line is cheaper than serde_json checking each
    // string as it reads it.
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(explain_json_error(bytes));
    };
    match serde_json::from_str::<WireEvent>(text) {
        Ok(wire) => wire.validate(),
        Err(_) => Err(explain_json_error(bytes)),
    }
}

fn explain_json_error(bytes: &[u8]) -> DecodeError {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, WireEvent>(&mut de) {
        Ok(_) => match de.end() {
            Ok(()) => DecodeError::Syntax("could not be read".into()),
            Err(e) => DecodeError::Syntax(e.to_string()),
        },
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_data() && path != "." {
                DecodeError::invalid(path, strip_position(&inner.to_string()))
            } else {
                DecodeError::Syntax(inner.to_string())
            }
        }
    }
}

/// serde_json appends " at line 1 column 57"; the field name already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn required<T>(value: Option<T>, field: &'static str) -> Result<T, DecodeError> {
    value.ok_or(DecodeError::Missing(field))
}

fn required_text(value: Option<String>, field: &'static str) -> Result<String, DecodeError> {
    let text = required(value, field)?;
    if text.is_empty() {
        return Err(DecodeError::invalid(field, "must not be empty"));
    }
    Ok(text)
}

fn optional_id(value: Option<String>, field: &'static str) -> Result<Option<String>, DecodeError> {
    match value {
        Some(text) if text.is_empty() => Err(DecodeError::invalid(field, "must not be empty")),
        other => Ok(other),
    }
}

fn quantity_at_least_one(value: Option<i64>, field: &str) -> Result<u32, DecodeError> {
    let Some(q) = value else {
        return Err(DecodeError::Missing("quantity"));
    };
    if q < 0 {
        return Err(DecodeError::invalid(
            field,
            format!("negative quantity {q}"),
        ));
    }
    if q == 0 {
        return Err(DecodeError::invalid(field, "must be at least 1"));
    }
    u32::try_from(q).map_err(|_| DecodeError::invalid(field, format!("{q} is too large")))
}

fn validate_product(product: Product, field: &str) -> Result<Product, DecodeError> {
    if product.sku.is_empty() {
        return Err(DecodeError::invalid(
            format!("{field}.sku"),
            "must not be empty",
        ));
    }
    if let Some(price) = product.price {
        if !price.is_finite() || price < 0.0 {
            return Err(DecodeError::invalid(
                format!("{field}.price"),
                format!("{price} is not a price (must be a finite number >= 0)"),
            ));
        }
    }
    Ok(product)
}

fn required_product(value: Option<Product>) -> Result<Product, DecodeError> {
    validate_product(required(value, "product")?, "product")
}

impl WireEvent {
    /// Checks the wire record against the contract and builds the typed event.
    pub fn validate(self) -> Result<Decoded, DecodeError> {
        let event_id = required_text(self.event_id, "event_id")?;
        let name = match required(self.kind, "type")? {
            TypeName::Known(name) => name,
            TypeName::Unknown(name) if name.is_empty() => {
                return Err(DecodeError::invalid("type", "must not be empty"))
            }
            TypeName::Unknown(name) => {
                required(self.occurred_at, "occurred_at")?;
                return Ok(Decoded::UnknownType(name));
            }
        };
        let occurred_at = required(self.occurred_at, "occurred_at")?.0;
        let topic = topic_of(name).expect("known type names are in EVENT_TYPES");
        let customer_id = optional_id(self.customer_id, "customer_id")?;
        let anonymous_id = optional_id(self.anonymous_id, "anonymous_id")?;
        match topic {
            InputTopic::Clickstream | InputTopic::Cart => {
                if customer_id.is_none() && anonymous_id.is_none() {
                    return Err(DecodeError::Missing("customer_id` or `anonymous_id"));
                }
            }
            InputTopic::Customers => {
                if customer_id.is_none() {
                    return Err(DecodeError::Missing("customer_id"));
                }
            }
            InputTopic::Stock => {}
        }
        let body = match name {
            "page_viewed" => EventBody::PageViewed {
                page_type: required(self.page_type, "page_type")?,
                url: self.url,
            },
            "product_viewed" => EventBody::ProductViewed {
                product: required_product(self.product)?,
            },
            "category_viewed" => {
                let category = required(self.category, "category")?;
                if category.is_empty() || category.iter().any(String::is_empty) {
                    return Err(DecodeError::invalid(
                        "category",
                        "must be a non-empty path of non-empty names",
                    ));
                }
                EventBody::CategoryViewed { category }
            }
            "products_searched" => EventBody::ProductsSearched {
                query: required(self.query, "query")?,
                results: self.results,
            },
            "search_result_clicked" => EventBody::SearchResultClicked {
                query: required(self.query, "query")?,
                sku: required_text(self.sku, "sku")?,
            },
            "wishlist_added" => EventBody::WishlistAdded {
                product: required_product(self.product)?,
            },
            "back_in_stock_requested" => EventBody::BackInStockRequested {
                product: required_product(self.product)?,
            },
            "signed_in" => {
                if customer_id.is_none() {
                    return Err(DecodeError::Missing("customer_id"));
                }
                if anonymous_id.is_none() {
                    return Err(DecodeError::Missing("anonymous_id"));
                }
                EventBody::SignedIn
            }
            "site_selected" => {
                required_text(self.site.clone(), "site")?;
                EventBody::SiteSelected
            }
            "cart_item_added" => EventBody::CartItemAdded {
                cart_id: required_text(self.cart_id, "cart_id")?,
                product: required_product(self.product)?,
                quantity: quantity_at_least_one(self.quantity, "quantity")?,
            },
            "cart_item_removed" => EventBody::CartItemRemoved {
                cart_id: required_text(self.cart_id, "cart_id")?,
                sku: required_text(self.sku, "sku")?,
                quantity: quantity_at_least_one(self.quantity, "quantity")?,
            },
            "cart_cleared" => EventBody::CartCleared {
                cart_id: required_text(self.cart_id, "cart_id")?,
            },
            "checkout_started" => EventBody::CheckoutStarted {
                cart_id: required_text(self.cart_id, "cart_id")?,
            },
            "order_completed" => {
                let order_id = required_text(self.order_id, "order_id")?;
                let cart_id = optional_id(self.cart_id, "cart_id")?;
                let mut items = Vec::new();
                for (i, item) in required(self.items, "items")?.into_iter().enumerate() {
                    let field = format!("items[{i}]");
                    let product = item
                        .product
                        .ok_or_else(|| DecodeError::invalid(&field, "missing `product`"))?;
                    items.push(OrderItem {
                        product: validate_product(product, &format!("{field}.product"))?,
                        quantity: quantity_at_least_one(
                            item.quantity,
                            &format!("{field}.quantity"),
                        )?,
                    });
                }
                let total = required(self.total, "total")?;
                if !total.is_finite() || total < 0.0 {
                    return Err(DecodeError::invalid(
                        "total",
                        format!("{total} is negative"),
                    ));
                }
                EventBody::OrderCompleted {
                    order_id,
                    cart_id,
                    items,
                    total,
                    currency: required_text(self.currency, "currency")?,
                }
            }
            "stock_changed" => {
                let sku = required_text(self.sku, "sku")?;
                let q = required(self.quantity, "quantity")?;
                if q < 0 {
                    return Err(DecodeError::invalid(
                        "quantity",
                        format!("negative quantity {q}"),
                    ));
                }
                let product = match self.product {
                    Some(p) => Some(validate_product(p, "product")?),
                    None => None,
                };
                if let Some(p) = &product {
                    if p.sku != sku {
                        return Err(DecodeError::invalid(
                            "product.sku",
                            format!("`{}` differs from the event's sku `{sku}`", p.sku),
                        ));
                    }
                }
                EventBody::StockChanged {
                    sku,
                    quantity: q as u64,
                    product,
                }
            }
            "consent_changed" => EventBody::ConsentChanged {
                email_marketing: required(self.email_marketing, "email_marketing")?,
            },
            "customer_erased" => EventBody::CustomerErased,
            other => unreachable!("topic_of knows `{other}` but validate does not"),
        };
        Ok(Decoded::Event(Event {
            event_id,
            occurred_at,
            customer_id,
            anonymous_id,
            session_id: self.session_id,
            site: self.site,
            country: self.country,
            body,
        }))
    }
}
