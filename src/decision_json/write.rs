//! Writing decisions as JSON, fast for the two kinds written in bulk.
//!
//! The derived `Serialize` of a [`Decision`] goes through its flattened, internally
//! tagged body: serde turns every field into a map entry, and serde_json scans every
//! key and string byte by byte for characters to escape. `product` and `profile` records
//! are each about one per input event, and a product record lists up to three times
//! `recs.top_n` SKUs with their scores: writing them was a quarter of replay's
//! instructions (callgrind, 60 K generated events).
//!
//! So those two kinds are written here field by field, in the order the derive uses,
//! with the same bytes: keys are constants, a string with nothing to escape is copied
//! whole, and every other string and every number is written by serde_json itself (so
//! escapes and float digits cannot drift). Every other type takes the derived path. The
//! structs are destructured in full, so a field added to one of them does not compile
//! until it is written here too, and the tests hold both paths to the same bytes.

use crate::decision::{
    CategoryScore, Decision, DecisionBody, Popularity, ProductRecord, Profile, RankingBasis, Rfm,
    ScoredSku,
};
use crate::event::Product;
use crate::time::{write_rfc3339, Millis};

/// Appends `decision` as one JSON object (no newline).
pub fn write_json(decision: &Decision, out: &mut Vec<u8>) {
    match &decision.body {
        DecisionBody::Product(record) => {
            let mut object = common_fields(decision, out);
            product_record_fields(&mut object, record);
            object.end();
        }
        DecisionBody::Profile(profile) => {
            let mut object = common_fields(decision, out);
            profile_fields(&mut object, profile);
            object.end();
        }
        _ => serde_json::to_writer(out, decision).expect("decisions always serialize"),
    }
}

/// The fields every decision has, then the body's `type` tag.
fn common_fields<'a>(decision: &Decision, out: &'a mut Vec<u8>) -> Object<'a> {
    let Decision {
        decision_id,
        customer_id,
        decided_at,
        reason,
        body: _,
    } = decision;
    let mut object = Object::begin(out);
    object.str("decision_id", decision_id);
    match customer_id {
        Some(id) => object.str("customer_id", id),
        None => object.key("customer_id").extend_from_slice(b"null"),
    }
    object.instant("decided_at", *decided_at);
    object.str("reason", reason);
    object.str("type", decision.decision_type().name());
    object
}

fn product_record_fields(object: &mut Object, record: &ProductRecord) {
    let ProductRecord {
        sku,
        product,
        quantity,
        segments,
        popularity,
        trending_score,
        view_to_purchase,
        view_to_cart,
        viewed_with,
        bought_with,
        viewed_then_bought,
        ranking_basis,
    } = record;
    object.str("sku", sku);
    if let Some(product) = product {
        let mut nested = Object::begin(object.key("product"));
        product_fields(&mut nested, product);
        nested.end();
    }
    if let Some(quantity) = quantity {
        object.scalar("quantity", quantity);
    }
    object.strings("segments", segments);
    let Popularity {
        views_7d,
        purchases_7d,
        cart_adds_7d,
    } = popularity;
    let mut nested = Object::begin(object.key("popularity"));
    nested.scalar("views_7d", views_7d);
    nested.scalar("purchases_7d", purchases_7d);
    nested.scalar("cart_adds_7d", cart_adds_7d);
    nested.end();
    object.scalar("trending_score", trending_score);
    if let Some(rate) = view_to_purchase {
        object.scalar("view_to_purchase", rate);
    }
    if let Some(rate) = view_to_cart {
        object.scalar("view_to_cart", rate);
    }
    scored_skus(object.key("viewed_with"), viewed_with);
    scored_skus(object.key("bought_with"), bought_with);
    scored_skus(object.key("viewed_then_bought"), viewed_then_bought);
    let RankingBasis { views, orders } = ranking_basis;
    let mut nested = Object::begin(object.key("ranking_basis"));
    nested.scalar("views", views);
    nested.scalar("orders", orders);
    nested.end();
}

fn product_fields(object: &mut Object, product: &Product) {
    let Product {
        sku,
        name,
        category,
        brand,
        price,
        currency,
        url,
        image_url,
    } = product;
    object.str("sku", sku);
    object.optional_str("name", name.as_deref());
    if let Some(path) = category {
        object.strings("category", path);
    }
    object.optional_str("brand", brand.as_deref());
    if let Some(price) = price {
        object.scalar("price", price);
    }
    object.optional_str("currency", currency.as_deref());
    object.optional_str("url", url.as_deref());
    object.optional_str("image_url", image_url.as_deref());
}

fn scored_skus(out: &mut Vec<u8>, list: &[ScoredSku]) {
    array(out, list, |out, ScoredSku { sku, score }| {
        named_score(out, "sku", sku, *score);
    });
}

/// `{"<name_key>":"<name>","score":<score>}`: a scored SKU or category path.
fn named_score(out: &mut Vec<u8>, name_key: &'static str, name: &str, score: f64) {
    let mut item = Object::begin(out);
    item.str(name_key, name);
    item.scalar("score", &score);
    item.end();
}

/// `items` as a JSON array, each written by `write`.
fn array<T>(out: &mut Vec<u8>, items: &[T], mut write: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}

fn profile_fields(object: &mut Object, profile: &Profile) {
    let Profile {
        anonymous_id,
        preferred_department,
        top_categories,
        recently_viewed,
        site,
        suggested_site,
        segments,
        consent,
        rfm,
        orders,
        last_order_at,
    } = profile;
    object.optional_str("anonymous_id", anonymous_id.as_deref());
    object.optional_str("preferred_department", preferred_department.as_deref());
    array(
        object.key("top_categories"),
        top_categories,
        |out, CategoryScore { category, score }| named_score(out, "category", category, *score),
    );
    object.strings("recently_viewed", recently_viewed);
    object.optional_str("site", site.as_deref());
    object.optional_str("suggested_site", suggested_site.as_deref());
    object.strings("segments", segments);
    if let Some(consent) = consent {
        object.scalar("consent", consent);
    }
    if let Some(Rfm { r, f, m }) = rfm {
        let mut nested = Object::begin(object.key("rfm"));
        nested.scalar("r", r);
        nested.scalar("f", f);
        nested.scalar("m", m);
        nested.end();
    }
    object.scalar("orders", orders);
    if let Some(at) = last_order_at {
        object.instant("last_order_at", *at);
    }
}

/// A JSON object being written: the commas between its members.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> Object<'a> {
    fn begin(out: &'a mut Vec<u8>) -> Object<'a> {
        out.push(b'{');
        Object { out, empty: true }
    }

    /// Writes `"key":` and returns the output for its value. Keys are this file's own
    /// constants, none of which needs escaping.
    fn key(&mut self, key: &'static str) -> &mut Vec<u8> {
        debug_assert!(!needs_escape(key), "{key}");
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn str(&mut self, key: &'static str, value: &str) {
        string(self.key(key), value);
    }

    fn optional_str(&mut self, key: &'static str, value: Option<&str>) {
        if let Some(value) = value {
            self.str(key, value);
        }
    }

    fn strings(&mut self, key: &'static str, values: &[impl AsRef<str>]) {
        array(self.key(key), values, |out, value| {
            string(out, value.as_ref())
        });
    }

    /// A number or a boolean, as serde_json writes it (a float that is not finite is
    /// `null`).
    fn scalar(&mut self, key: &'static str, value: &impl serde::Serialize) {
        serde_json::to_writer(self.key(key), value).expect("a number always serializes");
    }

    fn instant(&mut self, key: &'static str, at: Millis) {
        let out = self.key(key);
        out.push(b'"');
        write_rfc3339(out, at);
        out.push(b'"');
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

/// Whether serde_json would escape a byte of `text`: control characters, `"` and `\`.
/// Folded rather than searched, so the loop has no early exit and vectorizes.
fn needs_escape(text: &str) -> bool {
    text.bytes().fold(false, |seen, b| {
        seen | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

fn string(out: &mut Vec<u8>, text: &str) {
    if needs_escape(text) {
        serde_json::to_writer(out, text).expect("a string always serializes");
    } else {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::{one_of_each_decision_type, profile_tombstone};
    use proptest::prelude::*;
    use std::sync::Arc;

    fn derived(decision: &Decision) -> String {
        serde_json::to_string(decision).unwrap()
    }

    fn written(decision: &Decision) -> String {
        let mut out = Vec::new();
        write_json(decision, &mut out);
        String::from_utf8(out).expect("the writer writes UTF-8")
    }

    #[test]
    fn every_sample_is_written_as_the_derive_writes_it() {
        let mut samples = one_of_each_decision_type();
        samples.push(profile_tombstone());
        for decision in samples {
            assert_eq!(written(&decision), derived(&decision));
        }
    }

    #[test]
    fn strings_that_need_escaping_are_escaped_as_serde_json_does() {
        for text in [
            "a\"b",
            "back\\slash",
            "tab\there",
            "nul\0",
            "\u{1f}",
            "ünï©ødé",
            "",
        ] {
            let mut out = Vec::new();
            string(&mut out, text);
            assert_eq!(out, serde_json::to_vec(text).unwrap(), "{text:?}");
        }
        assert!(needs_escape("x\ny") && needs_escape("\"") && !needs_escape("SKU-1/é"));
    }

    fn text() -> impl Strategy<Value = String> + Clone {
        // Mostly plain SKU-like text, sometimes every kind of character.
        prop_oneof![3 => "[A-Z0-9-]{1,12}", 1 => any::<String>()]
    }

    fn number() -> impl Strategy<Value = f64> {
        prop_oneof![
            4 => (0u32..1_000_000).prop_map(|n| f64::from(n) / 10_000.0),
            1 => any::<f64>(),
        ]
    }

    fn scored() -> impl Strategy<Value = Vec<ScoredSku>> {
        prop::collection::vec(
            (text(), number()).prop_map(|(sku, score)| ScoredSku {
                sku: sku.into(),
                score,
            }),
            0..4,
        )
    }

    fn product() -> impl Strategy<Value = Product> {
        let strings = prop::option::of(text());
        (
            text(),
            (strings.clone(), strings.clone(), strings.clone()),
            (strings.clone(), strings),
            prop::option::of(prop::collection::vec(text(), 0..3)),
            prop::option::of(number()),
        )
            .prop_map(
                |(sku, (name, brand, currency), (url, image_url), category, price)| Product {
                    sku,
                    name,
                    category,
                    brand,
                    price,
                    currency,
                    url,
                    image_url,
                },
            )
    }

    fn product_record() -> impl Strategy<Value = ProductRecord> {
        (
            (text(), prop::option::of(product()), any::<Option<u64>>()),
            (
                prop::collection::vec(text(), 0..3),
                [number(), number(), number()],
            ),
            (
                number(),
                prop::option::of(number()),
                prop::option::of(number()),
            ),
            (scored(), scored(), scored()),
            (number(), number()),
        )
            .prop_map(
                |(
                    (sku, product, quantity),
                    (segments, [views_7d, purchases_7d, cart_adds_7d]),
                    (trending_score, view_to_purchase, view_to_cart),
                    (viewed_with, bought_with, viewed_then_bought),
                    (views, orders),
                )| ProductRecord {
                    sku,
                    product,
                    quantity,
                    segments,
                    popularity: Popularity {
                        views_7d,
                        purchases_7d,
                        cart_adds_7d,
                    },
                    trending_score,
                    view_to_purchase,
                    view_to_cart,
                    viewed_with,
                    bought_with,
                    viewed_then_bought,
                    ranking_basis: RankingBasis { views, orders },
                },
            )
    }

    fn profile() -> impl Strategy<Value = Profile> {
        let strings = prop::option::of(text());
        (
            (strings.clone(), strings.clone(), strings.clone(), strings),
            prop::collection::vec(
                (text(), number()).prop_map(|(category, score)| CategoryScore { category, score }),
                0..3,
            ),
            (
                prop::collection::vec(text(), 0..3),
                prop::collection::vec(text(), 0..3),
            ),
            (
                any::<Option<bool>>(),
                any::<Option<(u8, u8, u8)>>(),
                any::<u32>(),
                prop::option::of(0i64..4_102_444_800_000),
            ),
        )
            .prop_map(
                |(
                    (anonymous_id, preferred_department, site, suggested_site),
                    top_categories,
                    (recently_viewed, segments),
                    (consent, rfm, orders, last_order_at),
                )| Profile {
                    anonymous_id,
                    preferred_department,
                    top_categories,
                    recently_viewed,
                    site,
                    suggested_site,
                    segments,
                    consent,
                    rfm: rfm.map(|(r, f, m)| Rfm { r, f, m }),
                    orders,
                    last_order_at,
                },
            )
    }

    fn decision(body: impl Strategy<Value = DecisionBody>) -> impl Strategy<Value = Decision> {
        (
            text(),
            prop::option::of(text()),
            0i64..4_102_444_800_000,
            text(),
            body,
        )
            .prop_map(
                |(decision_id, customer_id, decided_at, reason, body)| Decision {
                    decision_id,
                    customer_id,
                    decided_at,
                    reason,
                    body,
                },
            )
    }

    proptest! {
        #[test]
        fn a_product_record_is_written_as_the_derive_writes_it(
            decision in decision(product_record().prop_map(|r| DecisionBody::Product(Arc::new(r))))
        ) {
            prop_assert_eq!(written(&decision), derived(&decision));
        }

        #[test]
        fn a_profile_is_written_as_the_derive_writes_it(
            decision in decision(profile().prop_map(|p| DecisionBody::Profile(Box::new(p))))
        ) {
            prop_assert_eq!(written(&decision), derived(&decision));
        }
    }
}
