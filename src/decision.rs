//! Decisions (CONTRACT §2): what the processor tells the outside, and their JSON form.

use crate::event::Product;
use crate::time::Millis;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// One decision. `decision_id` is derived from the rule and its evidence, so the same
/// input always yields the same id and consumers can drop redelivered duplicates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub decision_id: String,
    /// The registered customer; `None` for an anonymous shopper's profile and for a
    /// product record.
    pub customer_id: Option<String>,
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
    Profile(Box<Profile>),
    /// The shopper's profile is gone (erased, or an anonymous shopper who signed in):
    /// a tombstone (null value) under the shopper's key on the profiles topic.
    /// `replay` prints it as a line of type `profile_deleted`.
    ProfileDeleted {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        anonymous_id: Option<String>,
    },
    Product(std::sync::Arc<ProductRecord>),
}

/// A SKU as the product table shows it (CONTRACT §5.4): details, stock, popularity,
/// trending, conversion and its neighbours. Keyed by `sku`; there is no customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductRecord {
    pub sku: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<Product>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u64>,
    /// `out_of_stock`, `low_stock`, `trending`, `new_arrival`, sorted.
    pub segments: Vec<String>,
    pub popularity: Popularity,
    pub trending_score: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_to_purchase: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_to_cart: Option<f64>,
    pub viewed_with: Vec<ScoredSku>,
    pub bought_with: Vec<ScoredSku>,
    pub viewed_then_bought: Vec<ScoredSku>,
    /// Views and orders decayed with `recs.half_life` at `decided_at`: what another
    /// SKU's co-occurrence with this one is divided by (the cosine's denominator).
    pub ranking_basis: RankingBasis,
}

/// Decayed counts with `products.popularity_half_life` (3.5 days: about a week's worth).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Popularity {
    pub views_7d: f64,
    pub purchases_7d: f64,
    pub cart_adds_7d: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct RankingBasis {
    pub views: f64,
    pub orders: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredSku {
    pub sku: CompactString,
    pub score: f64,
}

impl ProductRecord {
    /// The top-level category: the department the `trending` segment ranks within.
    pub fn department(&self) -> Option<&str> {
        self.product
            .as_ref()?
            .category
            .as_ref()?
            .first()
            .map(String::as_str)
    }
}

/// A shopper's profile as the storefront reads it (CONTRACT §2, §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// The anonymous id: the key of an anonymous shopper's profile; for a customer, the
    /// latest anonymous id that signed in as them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_department: Option<String>,
    pub top_categories: Vec<CategoryScore>,
    pub recently_viewed: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_site: Option<String>,
    pub segments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfm: Option<Rfm>,
    pub orders: u32,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rfc3339_option"
    )]
    pub last_order_at: Option<Millis>,
}

/// Recency, frequency and monetary scores, 1–5 each (CONTRACT §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rfm {
    pub r: u8,
    pub f: u8,
    pub m: u8,
}

/// The kinds of decision, with their default output topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DecisionType {
    AbandonedCart,
    BackInStock,
    DiscountOffer,
    SegmentChanged,
    Profile,
    Product,
}

impl DecisionType {
    pub const ALL: [DecisionType; 6] = [
        DecisionType::AbandonedCart,
        DecisionType::BackInStock,
        DecisionType::DiscountOffer,
        DecisionType::SegmentChanged,
        DecisionType::Profile,
        DecisionType::Product,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DecisionType::AbandonedCart => "abandoned_cart",
            DecisionType::BackInStock => "back_in_stock",
            DecisionType::DiscountOffer => "discount_offer",
            DecisionType::SegmentChanged => "segment_changed",
            DecisionType::Profile => "profile",
            DecisionType::Product => "product",
        }
    }

    /// The type named `name` (as in a decision's `type`; `profile` covers its tombstones).
    pub fn from_name(name: &str) -> Option<DecisionType> {
        DecisionType::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn default_topic(self) -> &'static str {
        match self {
            DecisionType::AbandonedCart => "personalization.abandoned-cart",
            DecisionType::BackInStock => "personalization.back-in-stock",
            DecisionType::DiscountOffer => "personalization.offers",
            DecisionType::SegmentChanged => "personalization.segments",
            DecisionType::Profile => "personalization.profiles",
            DecisionType::Product => "personalization.products",
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
            DecisionBody::Profile(_) | DecisionBody::ProfileDeleted { .. } => DecisionType::Profile,
            DecisionBody::Product(_) => DecisionType::Product,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentChange {
    Entered,
    Exited,
}

impl SegmentChange {
    pub const ALL: [SegmentChange; 2] = [SegmentChange::Entered, SegmentChange::Exited];

    pub fn label(self) -> &'static str {
        match self {
            SegmentChange::Entered => "entered",
            SegmentChange::Exited => "exited",
        }
    }
}

/// Where a customer is in their life with the shop (CONTRACT §5.3): the `lifecycle:`
/// segments, one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LifecycleStage {
    Prospect,
    New,
    Active,
    AtRisk,
    Lapsed,
}

impl LifecycleStage {
    pub const ALL: [LifecycleStage; 5] = [
        LifecycleStage::Prospect,
        LifecycleStage::New,
        LifecycleStage::Active,
        LifecycleStage::AtRisk,
        LifecycleStage::Lapsed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            LifecycleStage::Prospect => "prospect",
            LifecycleStage::New => "new",
            LifecycleStage::Active => "active",
            LifecycleStage::AtRisk => "at_risk",
            LifecycleStage::Lapsed => "lapsed",
        }
    }

    /// The segment's name: `lifecycle:<stage>`.
    pub fn segment(self) -> String {
        format!("lifecycle:{}", self.label())
    }

    /// The stage a segment name stands for, if it is a lifecycle segment.
    pub fn of(segment: &str) -> Option<LifecycleStage> {
        let stage = segment.strip_prefix("lifecycle:")?;
        LifecycleStage::ALL.into_iter().find(|s| s.label() == stage)
    }
}

/// The kind of a segment, a bounded label for metrics (never the department or group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SegmentFamily {
    Lifecycle,
    Rfm,
    HighValue,
    Interest,
    CartAbandoner,
}

impl SegmentFamily {
    pub const ALL: [SegmentFamily; 5] = [
        SegmentFamily::Lifecycle,
        SegmentFamily::Rfm,
        SegmentFamily::HighValue,
        SegmentFamily::Interest,
        SegmentFamily::CartAbandoner,
    ];

    /// The family of a segment name (`lifecycle:new` → lifecycle); `None` for a name
    /// this version does not make.
    pub fn of(segment: &str) -> Option<SegmentFamily> {
        let family = segment.split(':').next().unwrap_or(segment);
        SegmentFamily::ALL.into_iter().find(|f| f.label() == family)
    }

    pub fn label(self) -> &'static str {
        match self {
            SegmentFamily::Lifecycle => "lifecycle",
            SegmentFamily::Rfm => "rfm",
            SegmentFamily::HighValue => "high_value",
            SegmentFamily::Interest => "interest",
            SegmentFamily::CartAbandoner => "cart_abandoner",
        }
    }
}

/// The namespace of all decision ids (a UUID v5 namespace of our own).
const DECISION_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x5f1d_2c8e_7a44_4b0e_9d3a_6c1f_0e2b_8a77);

/// Between the parts of a decision id: it cannot occur in ids we are given as text, so
/// parts never blur (`["a", "b"]` and `["ab"]` differ).
const PART_SEPARATOR: u8 = 0x1f;

/// A deterministic id from the parts that identify a decision: same parts, same id. It
/// is the UUID version 5 (RFC 9562: the SHA-1 of the namespace and the name) of the
/// parts joined by [`PART_SEPARATOR`], so ids stay what earlier versions published.
/// The SHA-1 is the `sha1` crate's, which uses the CPU's SHA instructions where there are
/// some: nearly every decision takes an id, and `uuid`'s portable SHA-1 was a twentieth
/// of `replay`'s instructions.
pub fn decision_id(parts: &[&str]) -> String {
    use sha1::Digest;
    let mut hasher = sha1::Sha1::new();
    hasher.update(DECISION_ID_NAMESPACE.as_bytes());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update([PART_SEPARATOR]);
        }
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    let id = uuid::Builder::from_sha1_bytes(first).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut text).to_string()
}

impl Decision {
    pub fn decision_type(&self) -> DecisionType {
        self.body.decision_type()
    }

    /// The record key on the output topic: the SKU of a product record, else the
    /// customer, else (an anonymous shopper's profile) the anonymous id.
    pub fn record_key(&self) -> &str {
        if let DecisionBody::Product(record) = &self.body {
            return &record.sku;
        }
        let anonymous = match &self.body {
            DecisionBody::Profile(profile) => profile.anonymous_id.as_deref(),
            DecisionBody::ProfileDeleted { anonymous_id } => anonymous_id.as_deref(),
            _ => None,
        };
        self.customer_id
            .as_deref()
            .or(anonymous)
            .unwrap_or_default()
    }

    /// Whether the record is a tombstone: a key with no value on a compacted topic.
    pub fn is_tombstone(&self) -> bool {
        matches!(self.body, DecisionBody::ProfileDeleted { .. })
    }

    pub fn to_json_line(&self) -> String {
        String::from_utf8(self.to_json_bytes()).expect("JSON is UTF-8")
    }

    /// The JSON object, as the output topics carry it.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        crate::decision_json::write_json(self, &mut out);
        out
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

/// Serde helper: an optional event-time instant as RFC 3339 text.
pub mod rfc3339_option {
    use crate::time::{format_rfc3339, parse_rfc3339, Millis};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(millis: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
        match millis {
            Some(m) => s.serialize_str(&format_rfc3339(*m)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Millis>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| parse_rfc3339(&text).map_err(serde::de::Error::custom))
            .transpose()
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

    /// Ids published by earlier versions, computed independently (Python's
    /// `uuid.uuid5` with our namespace and the parts joined by U+001F): a consumer that
    /// drops duplicates by id must see the same ids after an upgrade.
    #[test]
    fn ids_are_the_uuid_v5_of_the_joined_parts() {
        assert_eq!(
            decision_id(&["abandoned_cart", "c-1", "cart-9", "1"]),
            "246dbb4b-4a73-5205-85d6-c3399c4e5ef8"
        );
        assert_eq!(decision_id(&[]), "e5d483ac-b9ab-531c-87bb-e2f66c2099df");
        assert_eq!(
            decision_id(&["ü", &"x".repeat(100)]),
            "6d7c554b-a3ed-5508-b1c5-9fb2888c752e"
        );
    }

    proptest::proptest! {
        /// Against `uuid`'s own version 5, for parts of any length and content
        /// (SHA-1 pads differently around its 64-byte blocks).
        #[test]
        fn ids_equal_uuid_v5_of_any_parts(parts in proptest::collection::vec(".{0,90}", 0..5)) {
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            let joined = parts.join("\u{1f}");
            let reference = uuid::Uuid::new_v5(&DECISION_ID_NAMESPACE, joined.as_bytes());
            proptest::prop_assert_eq!(decision_id(&parts), reference.to_string());
        }
    }

    #[test]
    fn a_tombstone_prints_as_profile_deleted_and_keys_by_the_shopper() {
        let tombstone = crate::samples::profile_tombstone();
        assert!(tombstone.is_tombstone());
        assert_eq!(tombstone.decision_type(), DecisionType::Profile);
        assert_eq!(tombstone.record_key(), "c-1");
        let line = tombstone.to_json_line();
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["type"], "profile_deleted");
        assert_eq!(serde_json::from_str::<Decision>(&line).unwrap(), tombstone);

        let anonymous = Decision {
            customer_id: None,
            body: DecisionBody::ProfileDeleted {
                anonymous_id: Some("a-9".into()),
            },
            ..tombstone
        };
        assert_eq!(anonymous.record_key(), "a-9");
        let value: serde_json::Value = serde_json::to_value(&anonymous).unwrap();
        assert_eq!(value["customer_id"], serde_json::Value::Null);
    }

    #[test]
    fn every_segment_name_has_a_family() {
        for (segment, family) in [
            ("lifecycle:at_risk", SegmentFamily::Lifecycle),
            ("rfm:cant_lose", SegmentFamily::Rfm),
            ("high_value", SegmentFamily::HighValue),
            ("interest:women", SegmentFamily::Interest),
            ("cart_abandoner", SegmentFamily::CartAbandoner),
        ] {
            assert_eq!(SegmentFamily::of(segment), Some(family), "{segment}");
        }
        assert_eq!(SegmentFamily::of("vip"), None);
    }

    #[test]
    fn decision_types_are_found_by_name() {
        for t in DecisionType::ALL {
            assert_eq!(DecisionType::from_name(t.name()), Some(t));
        }
        assert_eq!(DecisionType::from_name("profile_deleted"), None);
        assert_eq!(DecisionType::from_name("Profile"), None);
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
