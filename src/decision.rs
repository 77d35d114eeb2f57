//! Decisions (CONTRACT §2): what the processor tells the outside, and their JSON form.

use crate::event::Product;
use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// One decision. `decision_id` is derived from the rule and its evidence, so the same
/// input always yields the same id and consumers can drop redelivered duplicates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub decision_id: String,
    pub customer_id: String,
    /// The stream time at which the decision was made.
    #[serde(with = "rfc3339")]
    pub decided_at: Millis,
    /// A short explanation naming the rule and the evidence (event ids).
    pub reason: String,
    #[serde(flatten)]
    pub body: DecisionBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DecisionBody {
    AbandonedCart {
        cart_id: String,
        step: u32,
        items: Vec<CartItem>,
        cart_value: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        currency: Option<String>,
        #[serde(with = "rfc3339")]
        last_activity_at: Millis,
    },
    BackInStock {
        sku: String,
        product: Product,
        #[serde(with = "rfc3339")]
        requested_at: Millis,
        quantity_available: u64,
    },
    DiscountOffer {
        /// Category path joined with `/`, e.g. `women/dresses`.
        category: String,
        code: String,
        score: f64,
    },
    SegmentChanged {
        segment: String,
        change: SegmentChange,
    },
    Profile {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preferred_department: Option<String>,
        top_categories: Vec<CategoryScore>,
        recently_viewed: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        site: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        suggested_site: Option<String>,
        segments: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        consent: Option<bool>,
    },
}

/// The kinds of decision, with their default output topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DecisionType {
    AbandonedCart,
    BackInStock,
    DiscountOffer,
    SegmentChanged,
    Profile,
}

impl DecisionType {
    pub const ALL: [DecisionType; 5] = [
        DecisionType::AbandonedCart,
        DecisionType::BackInStock,
        DecisionType::DiscountOffer,
        DecisionType::SegmentChanged,
        DecisionType::Profile,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DecisionType::AbandonedCart => "abandoned_cart",
            DecisionType::BackInStock => "back_in_stock",
            DecisionType::DiscountOffer => "discount_offer",
            DecisionType::SegmentChanged => "segment_changed",
            DecisionType::Profile => "profile",
        }
    }

    pub fn default_topic(self) -> &'static str {
        match self {
            DecisionType::AbandonedCart => "personalization.abandoned-cart",
            DecisionType::BackInStock => "personalization.back-in-stock",
            DecisionType::DiscountOffer => "personalization.offers",
            DecisionType::SegmentChanged => "personalization.segments",
            DecisionType::Profile => "personalization.profiles",
        }
    }
}

impl DecisionBody {
    pub fn decision_type(&self) -> DecisionType {
        match self {
            DecisionBody::AbandonedCart { .. } => DecisionType::AbandonedCart,
            DecisionBody::BackInStock { .. } => DecisionType::BackInStock,
            DecisionBody::DiscountOffer { .. } => DecisionType::DiscountOffer,
            DecisionBody::SegmentChanged { .. } => DecisionType::SegmentChanged,
            DecisionBody::Profile { .. } => DecisionType::Profile,
        }
    }
}

/// A cart line as the email renders it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartItem {
    pub sku: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub quantity: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryScore {
    pub category: String,
    pub score: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentChange {
    Entered,
    Exited,
}

/// The namespace of all decision ids (a UUID v5 namespace of our own).
const DECISION_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x5f1d_2c8e_7a44_4b0e_9d3a_6c1f_0e2b_8a77);

/// A deterministic id from the parts that identify a decision: same parts, same id.
pub fn decision_id(parts: &[&str]) -> String {
    // The unit separator cannot occur in ids we are given as text, so parts never blur.
    let joined = parts.join("\u{1f}");
    uuid::Uuid::new_v5(&DECISION_ID_NAMESPACE, joined.as_bytes()).to_string()
}

impl Decision {
    pub fn decision_type(&self) -> DecisionType {
        self.body.decision_type()
    }

    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("decisions always serialize")
    }
}

/// Serde helper: event-time millis as the contract's RFC 3339 text.
pub mod rfc3339 {
    use crate::time::{format_rfc3339, parse_rfc3339, Millis};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(millis: &Millis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_rfc3339(*millis))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
        let text = String::deserialize(d)?;
        parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_part_sensitive() {
        assert_eq!(decision_id(&["a", "b"]), decision_id(&["a", "b"]));
        assert_ne!(decision_id(&["a", "b"]), decision_id(&["ab"]));
        assert_ne!(decision_id(&["a", "b"]), decision_id(&["a", "c"]));
    }

    #[test]
    fn every_type_round_trips_through_json() {
        for decision in crate::samples::one_of_each_decision_type() {
            let line = decision.to_json_line();
            let back: Decision = serde_json::from_str(&line).unwrap();
            assert_eq!(back, decision, "{line}");
            let value: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(value["type"], decision.decision_type().name());
        }
    }
}
