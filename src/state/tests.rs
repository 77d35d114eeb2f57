//! Golden bytes of every stored layout, migrations, and bad bytes.

use super::*;
use std::collections::BTreeMap;

fn info() -> ProductInfo {
    ProductInfo {
        sku: "S1".into(),
        name: Some("Dress".into()),
        price: Some(10.0),
        ..ProductInfo::default()
    }
}

fn shopper() -> ShopperState {
    ShopperState {
        customer_id: Some("c1".into()),
        merged_into: None,
        aliases: vec!["a1".into()],
        last_activity_at: Some(1000),
        last_order_at: Some(800),
        consent: Some(true),
        carts: vec![Cart {
            cart_id: "k1".into(),
            lines: vec![CartLine {
                product: info(),
                quantity: 2,
            }],
            changed_by: "e1".into(),
            changed_at: 900,
            steps_done: 1,
        }],
        reminder_armed: Some(3_601_000),
        stock_requests: vec![PendingStockRequest {
            sku: "S2".into(),
            requested_at: 500,
            event_id: "e0".into(),
        }],
        profile: ShopperProfile::default(),
    }
}

/// Version 2: a shopper with every profile field set.
fn shopper_v2() -> ShopperState {
    ShopperState {
        profile: ShopperProfile {
            interests: vec![CategoryInterest {
                path: "women/dresses".into(),
                score: 2.5,
                at: 950,
            }],
            recent_views: vec![RecentView {
                sku: "S1".into(),
                at: 950,
            }],
            site: Some(("us".into(), 940)),
            country: Some(("NZ".into(), 940)),
            site_choice: Some(SiteChoice {
                country: Some("AU".into()),
            }),
            orders: 3,
            publish_due: Some(10_950),
            changes: Some(ProfileChanges {
                first_event: "e1".into(),
                last_event: "e3".into(),
                events: 2,
            }),
            publishes: 4,
            segments: SegmentState {
                orders: vec![OrderRecord {
                    at: 800,
                    total: 120.5,
                }],
                first_order_at: Some(700),
                last_order: Some((800, "e0".into())),
                last_reminder_at: Some(3_601_000),
                current: vec!["lifecycle:new".into(), "rfm:new".into()],
                due: Some(2_592_000_700),
                changes: 2,
            },
            offers_sent: vec!["DRESSES10".into()],
            ordered_categories: vec![("home/lamps".into(), 800)],
            purchases: vec![],
            search_clicks: vec![],
        },
        ..shopper()
    }
}

/// Version 3: purchases and search clicks too.
fn shopper_v3() -> ShopperState {
    let mut shopper = shopper_v2();
    shopper.profile.purchases = vec![Purchase {
        sku: "S3".into(),
        at: 800,
    }];
    shopper.profile.search_clicks = vec![SearchClick {
        query: "red dress".into(),
        sku: "S1".into(),
        at: 960,
        clicks: 2,
    }];
    shopper
}

fn product() -> ProductState {
    ProductState {
        quantity: Some(0),
        last_restock_at: Some(10),
        last_restock_event: Some("s1".into()),
        details: Some(info()),
        requests: StockRequests::from_map(
            BTreeMap::from([(
                "c1".to_string(),
                StockRequest {
                    requested_at: 20,
                    expires_at: 30,
                    event_id: "e2".into(),
                },
            )]),
            false,
        ),
        expiry_armed: Some(30),
        activity: None,
    }
}

/// Version 2: a SKU with popularity, neighbours and a pending publish.
fn product_v2() -> ProductState {
    let count = |value, at| Decayed { value, at };
    ProductState {
        activity: Some(Box::new(ProductActivity {
            first_seen: Some(5),
            details_at: Some(12),
            views: count(3.5, 40),
            cart_adds: count(1.0, 41),
            purchases: count(2.0, 42),
            views_24h: count(3.25, 40),
            views_72h: count(3.4, 40),
            long_views: count(3.9, 40),
            long_orders: count(1.0, 42),
            viewed_with: vec![Neighbour {
                sku: "S2".into(),
                count: count(2.0, 40),
            }],
            bought_with: vec![Neighbour {
                sku: "S3".into(),
                count: count(1.0, 42),
            }],
            viewed_then_bought: vec![],
            publish_due: Some(5_040),
            changes: Some(("event e1".into(), "event e4".into(), 3)),
            publishes: 7,
            arrival_ends_armed: Some(1_209_600_005),
        })),
        ..product()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

// Bytes written by format version 1. If these stop decoding, stored state of
// deployed processors stops loading: add a version with a migration instead.
const SHOPPER_V1: &str = "0101026331000102613101d00f01c00c010101026b310102533101054472657373000001000000000000244000000002026531880e0101d0c9b70301025332e807026530";
const PRODUCT_V1: &str =
    "0101000114010273310102533101054472657373000001000000000000244000000001026331283c026532013c";

// Bytes written by format version 2 of the shopper state (profiles added).
const SHOPPER_V2: &str = "0201026331000102613101d00f01c00c010101026b310102533101054472657373000001000000000000244000000002026531880e0101d0c9b70301025332e807026530010d776f6d656e2f647265737365730000000000000440ec0e01025331ec0e01027573d80e01024e5ad80e010102415503018cab0101026531026533020401c00c0000000000205e4001f80a01c00c02653001d0c9b703020d6c6966656379636c653a6e65770772666d3a6e657701f8aaf6a713020109445245535345533130010a686f6d652f6c616d7073c00c";

#[test]
fn golden_version_1_bytes_still_load() {
    // A shopper stored before profiles existed loads with an empty profile.
    assert_eq!(ShopperState::decode(&unhex(SHOPPER_V1)).unwrap(), shopper());
    assert_eq!(ProductState::decode(&unhex(PRODUCT_V1)).unwrap(), product());
}

// Bytes written by format version 2 of the product state (popularity added).
const PRODUCT_V2: &str = "0201000114010273310102533101054472657373000001000000000000244000000001026331283c026532013c01010a01180000000000000c4050000000000000f03f520000000000000040540000000000000a40503333333333330b40503333333333330f4050000000000000f03f540102533200000000000000405001025333000000000000f03f540001e04e01086576656e74206531086576656e742065340307018aa0c88109";

#[test]
fn golden_product_version_2_bytes_still_load() {
    assert_eq!(
        ProductState::decode(&unhex(PRODUCT_V2)).unwrap(),
        product_v2()
    );
}

#[test]
fn golden_version_2_bytes_still_load() {
    assert_eq!(
        ShopperState::decode(&unhex(SHOPPER_V2)).unwrap(),
        shopper_v2()
    );
}

// Bytes written by format version 3 (purchases and search clicks added).
const SHOPPER_V3: &str = "0301026331000102613101d00f01c00c010101026b310102533101054472657373000001000000000000244000000002026531880e0101d0c9b70301025332e807026530010d776f6d656e2f647265737365730000000000000440ec0e01025331ec0e01027573d80e01024e5ad80e010102415503018cab0101026531026533020401c00c0000000000205e4001f80a01c00c02653001d0c9b703020d6c6966656379636c653a6e65770772666d3a6e657701f8aaf6a713020109445245535345533130010a686f6d652f6c616d7073c00c01025333c00c0109726564206472657373025331800f02";

#[test]
fn golden_version_3_bytes_still_load() {
    assert_eq!(
        ShopperState::decode(&unhex(SHOPPER_V3)).unwrap(),
        shopper_v3()
    );
}

#[test]
fn a_version_2_body_with_bytes_left_over_is_corrupt() {
    let mut bytes = unhex(SHOPPER_V2);
    bytes.push(7);
    assert!(matches!(
        ShopperState::decode(&bytes),
        Err(StateDecodeError::Corrupt { version: 2, .. })
    ));
}

#[test]
fn encoding_is_stable() {
    assert_eq!(hex(&shopper_v3().encode()), SHOPPER_V3);
    // A version 3 shopper without purchases or clicks is its version 2 body and two
    // zero bytes.
    assert_eq!(
        hex(&shopper_v2().encode()),
        format!("03{}0000", &SHOPPER_V2[2..])
    );
    assert_eq!(hex(&product_v2().encode()), PRODUCT_V3);
    let mut requests = product_v2();
    let mut both: BTreeMap<String, StockRequest> = product()
        .requests
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    both.insert(
        "c2".into(),
        StockRequest {
            requested_at: 21,
            expires_at: 31,
            event_id: "e3".into(),
        },
    );
    // As after a migration: every request is to be written.
    requests.requests = StockRequests::from_map(both, true);
    let detached = detached(&mut requests);
    let hexed: Vec<(String, String)> = detached
        .iter()
        .map(|(key, value)| (hex(key), hex(value.as_ref().unwrap())))
        .collect();
    assert_eq!(
        hexed,
        REQUESTS_V1
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    );
    let stored: usize = detached
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().unwrap().len())
        .sum();
    assert_eq!(requests.detached_len(), stored);
}

/// The detached entries a state has to write now.
fn detached(state: &mut ProductState) -> Vec<DetachedEntry> {
    let mut out = Vec::new();
    state.take_detached(&mut out);
    out
}

fn stored(entries: Vec<DetachedEntry>) -> Vec<(Vec<u8>, Vec<u8>)> {
    entries
        .into_iter()
        .map(|(key, value)| (key, value.expect("written, not deleted")))
        .collect()
}

// Bytes written by format version 3 of the product state (requests stored apart)
// and by version 1 of a stored request (sub-key: the shopper key).
const PRODUCT_V3: &str = "03010001140102733101025331010544726573730000010000000000002440000000013c01010a01180000000000000c4050000000000000f03f520000000000000040540000000000000a40503333333333330b40503333333333330f4050000000000000f03f540102533200000000000000405001025333000000000000f03f540001e04e01086576656e74206531086576656e742065340307018aa0c88109";
const REQUESTS_V1: [(&str, &str); 2] = [("6331", "01283c026532"), ("6332", "012a3e026533")];

#[test]
fn golden_product_version_3_bytes_and_requests_still_load() {
    let mut loaded = ProductState::decode(&unhex(PRODUCT_V3)).unwrap();
    assert!(loaded.requests.is_empty(), "stored apart");
    let entries = REQUESTS_V1
        .iter()
        .map(|(k, v)| (unhex(k), unhex(v)))
        .collect();
    loaded.attach(entries).unwrap();
    assert_eq!(loaded.requests.len(), 2);
    assert_eq!(loaded.requests.get("c1"), product().requests.get("c1"));
    assert!(detached(&mut loaded).is_empty(), "read back, not changed");
}

#[test]
fn requests_of_an_older_version_are_stored_apart_at_the_next_write() {
    for old in [PRODUCT_V1, PRODUCT_V2] {
        let mut loaded = ProductState::decode(&unhex(old)).unwrap();
        assert_eq!(loaded.requests, product().requests);
        let entries = detached(&mut loaded);
        assert_eq!(entries.len(), 1, "migrated requests are written");
        let mut reloaded = ProductState::decode(&loaded.encode()).unwrap();
        reloaded.attach(stored(entries)).unwrap();
        assert_eq!(reloaded.requests, product().requests);
        assert!(detached(&mut loaded).is_empty(), "written once");
    }
}

#[test]
fn only_the_requests_that_changed_are_written() {
    let mut state = product();
    let request = product().requests.get("c1").cloned().unwrap();
    // c1 has a request; an earlier expiry leaves it as it was.
    assert!(state.requests.renew("c1", 25));
    state.requests.drop_expired(29);
    assert!(state.requests.remove("nobody").is_none());
    assert!(detached(&mut state).is_empty());
    state.requests.insert("c2".into(), request.clone());
    assert!(state.requests.renew("c1", 40));
    let keys: Vec<Vec<u8>> = detached(&mut state).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, [b"c1".to_vec(), b"c2".to_vec()]);
    state.requests.drop_expired(35);
    assert_eq!(
        detached(&mut state),
        [(b"c2".to_vec(), None)],
        "c2 expired at 30"
    );
    // The running size is the size of what is stored.
    let mut all = StockRequests::from_map(
        state
            .requests
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        true,
    );
    let mut copy = ProductState {
        requests: std::mem::take(&mut all),
        ..product()
    };
    let size: usize = detached(&mut copy)
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().unwrap().len())
        .sum();
    assert_eq!(state.detached_len(), size);
}

#[test]
fn bad_request_bytes_are_errors_not_panics() {
    let mut state = product();
    let one = |key: &[u8], value: &[u8]| vec![(key.to_vec(), value.to_vec())];
    assert_eq!(state.attach(one(b"c1", &[])), Err(StateDecodeError::Empty));
    assert_eq!(
        state.attach(one(b"c1", &[7, 0])),
        Err(StateDecodeError::UnknownVersion { found: 7, known: 1 })
    );
    assert!(matches!(
        state.attach(one(b"c1", &[1, 5, 1])),
        Err(StateDecodeError::Corrupt { version: 1, .. })
    ));
    let good = unhex(REQUESTS_V1[0].1);
    assert!(matches!(
        state.attach(one(&[0xff, 0xfe], &good)),
        Err(StateDecodeError::Corrupt { version: 1, .. })
    ));
    assert_eq!(state.requests, product().requests, "left as it was");
}

#[test]
fn bad_bytes_are_errors_not_panics() {
    assert_eq!(ShopperState::decode(&[]), Err(StateDecodeError::Empty));
    assert!(matches!(
        ShopperState::decode(&[9, 1, 2]),
        Err(StateDecodeError::UnknownVersion { found: 9, known: 3 })
    ));
    let mut truncated = shopper().encode();
    truncated.truncate(truncated.len() / 2);
    assert!(matches!(
        ShopperState::decode(&truncated),
        Err(StateDecodeError::Corrupt { version: 3, .. })
    ));
    let mut truncated_v1 = unhex(SHOPPER_V1);
    truncated_v1.truncate(truncated_v1.len() / 2);
    assert!(matches!(
        ShopperState::decode(&truncated_v1),
        Err(StateDecodeError::Corrupt { version: 1, .. })
    ));
}
