//! Reading decisions from their JSON form, fast for the two kinds read in bulk.
//!
//! A [`Decision`] derives `Deserialize` with its body flattened into an internally
//! tagged enum. Serde reads such a value by first buffering the whole object into an
//! owned tree of its own and then reading the body out of that tree: every string is
//! allocated twice and every number parsed into the tree before it is converted. That
//! was most of what the global product table cost (each instance reads every product
//! record, about one per input event) and much of the activity feed (profiles).
//!
//! So `product` and `profile` lines are read straight into a flat struct with the common
//! fields and the body's, which also checks the line's `type`. Which of the two to try
//! comes from the first `"type":"…"` in the text (a quote inside a JSON string is always
//! escaped, so that text is a key; our own compact records carry it before the body).
//! A line the guess does not fit, and every other type, takes the derived path, so both
//! paths accept and refuse the same input: the tests hold them to it.

use crate::decision::{
    rfc3339, rfc3339_option, CategoryScore, Decision, DecisionBody, Popularity, ProductRecord,
    Profile, RankingBasis, Rfm, ScoredSku,
};
use crate::event::Product;
use crate::time::Millis;
use serde::Deserialize;
use std::sync::Arc;

/// A decision from one JSON object.
pub fn from_json(bytes: &[u8]) -> Result<Decision, serde_json::Error> {
    let read = match type_hint(bytes) {
        Some(b"product") => serde_json::from_slice::<ProductLine>(bytes).map(Decision::from),
        Some(b"profile") => serde_json::from_slice::<ProfileLine>(bytes).map(Decision::from),
        _ => return serde_json::from_slice(bytes),
    };
    // The derived path has the last word, and the error it gives.
    read.or_else(|_| serde_json::from_slice(bytes))
}

/// The value of the first `"type":"…"` in the text, if there is one.
fn type_hint(bytes: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = b"\"type\":\"";
    let start = bytes.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let length = bytes[start..].iter().position(|&b| b == b'"')?;
    Some(&bytes[start..start + length])
}

/// The `type` of a flat line, which must be the one its struct is for.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ProductTag {
    Product,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ProfileTag {
    Profile,
}

/// A `product` line: the fields every decision has, then the record's.
#[derive(Deserialize)]
struct ProductLine {
    #[serde(rename = "type")]
    _kind: ProductTag,
    decision_id: String,
    customer_id: Option<String>,
    #[serde(with = "rfc3339")]
    decided_at: Millis,
    reason: String,
    sku: String,
    #[serde(default)]
    product: Option<Product>,
    #[serde(default)]
    quantity: Option<u64>,
    segments: Vec<String>,
    popularity: Popularity,
    trending_score: f64,
    #[serde(default)]
    view_to_purchase: Option<f64>,
    #[serde(default)]
    view_to_cart: Option<f64>,
    viewed_with: Vec<ScoredSku>,
    bought_with: Vec<ScoredSku>,
    viewed_then_bought: Vec<ScoredSku>,
    ranking_basis: RankingBasis,
}

impl From<ProductLine> for Decision {
    fn from(line: ProductLine) -> Decision {
        Decision {
            decision_id: line.decision_id,
            customer_id: line.customer_id,
            decided_at: line.decided_at,
            reason: line.reason,
            body: DecisionBody::Product(Arc::new(ProductRecord {
                sku: line.sku,
                product: line.product,
                quantity: line.quantity,
                segments: line.segments,
                popularity: line.popularity,
                trending_score: line.trending_score,
                view_to_purchase: line.view_to_purchase,
                view_to_cart: line.view_to_cart,
                viewed_with: line.viewed_with,
                bought_with: line.bought_with,
                viewed_then_bought: line.viewed_then_bought,
                ranking_basis: line.ranking_basis,
            })),
        }
    }
}

/// A `profile` line: the fields every decision has, then the profile's.
#[derive(Deserialize)]
struct ProfileLine {
    #[serde(rename = "type")]
    _kind: ProfileTag,
    decision_id: String,
    customer_id: Option<String>,
    #[serde(with = "rfc3339")]
    decided_at: Millis,
    reason: String,
    #[serde(default)]
    anonymous_id: Option<String>,
    #[serde(default)]
    preferred_department: Option<String>,
    top_categories: Vec<CategoryScore>,
    recently_viewed: Vec<String>,
    #[serde(default)]
    site: Option<String>,
    #[serde(default)]
    suggested_site: Option<String>,
    segments: Vec<String>,
    #[serde(default)]
    consent: Option<bool>,
    #[serde(default)]
    rfm: Option<Rfm>,
    orders: u32,
    #[serde(default, with = "rfc3339_option")]
    last_order_at: Option<Millis>,
}

impl From<ProfileLine> for Decision {
    fn from(line: ProfileLine) -> Decision {
        Decision {
            decision_id: line.decision_id,
            customer_id: line.customer_id,
            decided_at: line.decided_at,
            reason: line.reason,
            body: DecisionBody::Profile(Box::new(Profile {
                anonymous_id: line.anonymous_id,
                preferred_department: line.preferred_department,
                top_categories: line.top_categories,
                recently_viewed: line.recently_viewed,
                site: line.site,
                suggested_site: line.suggested_site,
                segments: line.segments,
                consent: line.consent,
                rfm: line.rfm,
                orders: line.orders,
                last_order_at: line.last_order_at,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::one_of_each_decision_type;
    use serde_json::{json, Value};

    fn derived(bytes: &[u8]) -> Result<Decision, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    #[test]
    fn every_decision_type_reads_back_as_the_derived_path_reads_it() {
        let mut samples = one_of_each_decision_type();
        assert_eq!(samples.len(), 6, "a sample of every type that has a record");
        samples.push(crate::samples::profile_tombstone());
        for decision in samples {
            let line = decision.to_json_line();
            let fast = from_json(line.as_bytes()).unwrap();
            assert_eq!(fast, derived(line.as_bytes()).unwrap(), "{line}");
            assert_eq!(fast, decision, "{line}");
        }
    }

    fn product_and_profile_lines() -> Vec<Value> {
        one_of_each_decision_type()
            .into_iter()
            .filter(|d| matches!(d.body, DecisionBody::Product(_) | DecisionBody::Profile(_)))
            .map(|d| serde_json::to_value(&d).unwrap())
            .collect()
    }

    #[test]
    fn optional_fields_may_be_absent_or_null_unknown_fields_are_ignored() {
        let lines = product_and_profile_lines();
        assert_eq!(lines.len(), 2);
        for mut line in lines {
            let object = line.as_object_mut().unwrap();
            object.insert("customer_id".into(), Value::Null);
            object.insert("added_by_a_newer_version".into(), json!({"nested": [1, 2]}));
            object.remove("product");
            object.remove("quantity");
            object.remove("site");
            object.remove("rfm");
            object.remove("last_order_at");
            let bytes = serde_json::to_vec(&line).unwrap();
            assert_eq!(
                from_json(&bytes).unwrap(),
                derived(&bytes).unwrap(),
                "{line}"
            );
        }
    }

    #[test]
    fn bad_lines_are_refused_by_both_paths() {
        let mut cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"not json".to_vec(),
            b"[1, 2]".to_vec(),
            b"{\"type\": 7}".to_vec(),
            b"{\"type\": \"no_such_type\", \"decision_id\": \"d\"}".to_vec(),
            b"{\"decision_id\": \"d\"}".to_vec(),
        ];
        for line in product_and_profile_lines() {
            let bad_field: [(&str, Value); 4] = [
                ("decided_at", json!("yesterday")),
                ("segments", json!("trending")),
                ("reason", json!(3)),
                ("decision_id", Value::Null),
            ];
            for (field, value) in bad_field {
                let mut broken = line.clone();
                broken[field] = value;
                cases.push(serde_json::to_vec(&broken).unwrap());
            }
            for required in ["decision_id", "decided_at", "reason", "segments"] {
                let mut missing = line.clone();
                missing.as_object_mut().unwrap().remove(required);
                cases.push(serde_json::to_vec(&missing).unwrap());
            }
            let text = serde_json::to_string(&line).unwrap();
            cases.push(text.as_bytes()[..text.len() / 2].to_vec());
        }
        for case in cases {
            let shown = String::from_utf8_lossy(&case).into_owned();
            assert!(from_json(&case).is_err(), "accepted {shown}");
            assert!(derived(&case).is_err(), "the derived path accepted {shown}");
        }
    }

    #[test]
    fn a_misleading_or_missing_type_hint_still_reads_as_the_derived_path_does() {
        for line in product_and_profile_lines() {
            // Spaced out: no compact `"type":"` to find.
            let pretty = serde_json::to_vec_pretty(&line).unwrap();
            assert!(type_hint(&pretty).is_none());
            assert_eq!(from_json(&pretty).unwrap(), derived(&pretty).unwrap());
            // A nested `type` seen first: the guess is wrong and must not decide.
            let mut nested = serde_json::Map::new();
            nested.insert("aside".into(), json!({"type": "product"}));
            nested.extend(line.as_object().unwrap().clone());
            let nested = serde_json::to_vec(&Value::Object(nested)).unwrap();
            assert_eq!(type_hint(&nested), Some(&b"product"[..]));
            assert_eq!(from_json(&nested).unwrap(), derived(&nested).unwrap());
        }
        // A line that fits the product struct in every field but its `type`.
        let mut product = product_and_profile_lines()
            .into_iter()
            .find(|l| l["type"] == "product")
            .unwrap();
        product["type"] = json!("segment_changed");
        let mut bytes = b"{\"aside\":{\"type\":\"product\"},".to_vec();
        bytes.extend_from_slice(&serde_json::to_vec(&product).unwrap()[1..]);
        assert!(from_json(&bytes).is_err());
        assert!(derived(&bytes).is_err());
    }

    #[test]
    fn a_product_record_with_every_field_reads_back_whole() {
        let product = one_of_each_decision_type()
            .into_iter()
            .find(|d| matches!(d.body, DecisionBody::Product(_)))
            .unwrap();
        let DecisionBody::Product(record) = &product.body else {
            unreachable!()
        };
        assert!(
            record.product.is_some() && record.quantity.is_some(),
            "the sample sets the optional fields"
        );
        assert!(!record.viewed_with.is_empty() && !record.bought_with.is_empty());
        let line = product.to_json_line();
        assert_eq!(from_json(line.as_bytes()).unwrap(), product);
    }
}
