//! CONTRACT §5.7 (the read API), through `personalizer query`: a hand-written shop is
//! replayed into a state directory once, then each test asks the binary one path and
//! checks that the expected SKUs come first, each with the expected `because`.

mod common;

use common::*;
use personalizer::config::Config;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `[rules.recs.complements]` of the scenario: a dress goes with a bag.
const CONFIG: &str = r#"
[rules.recs.complements]
"women/dresses" = ["accessories/bags"]
"#;

struct Shop {
    _dir: tempfile::TempDir,
    state: PathBuf,
    config: PathBuf,
}

fn item(sku: &str) -> Value {
    let (path, brand, price): (&[&str], &str, f64) = match sku {
        "D1" => (&["women", "dresses"], "Acme", 100.0),
        "D2" => (&["women", "dresses"], "Acme", 110.0),
        "D3" => (&["women", "dresses"], "Zeta", 95.0),
        "D4" => (&["women", "dresses"], "Acme", 300.0),
        "OOS" => (&["women", "dresses"], "Acme", 105.0),
        "S1" => (&["women", "shoes"], "Acme", 80.0),
        "B1" => (&["accessories", "bags"], "Zeta", 60.0),
        "M1" => (&["men", "shirts"], "Northwind", 40.0),
        other => panic!("the scenario has no SKU {other}"),
    };
    json!({"sku": sku, "name": format!("Product {sku}"), "category": path, "brand": brand,
           "price": price, "currency": "EUR"})
}

fn view(e: &mut Events, who: &str, minutes: i64, sku: &str) {
    e.push(shopper_event(
        who,
        minutes,
        "product_viewed",
        json!({"product": item(sku)}),
    ));
}

fn cart_add(e: &mut Events, who: &str, minutes: i64, sku: &str) {
    e.push(shopper_event(
        who,
        minutes,
        "cart_item_added",
        json!({"cart_id": format!("k-{who}"), "product": item(sku), "quantity": 1}),
    ));
}

fn order(e: &mut Events, who: &str, minutes: i64, skus: &[&str]) {
    let items: Vec<Value> = skus
        .iter()
        .map(|sku| json!({"product": item(sku), "quantity": 1}))
        .collect();
    e.push(shopper_event(
        who,
        minutes,
        "order_completed",
        json!({"order_id": format!("o-{who}-{minutes}"), "items": items, "total": 100.0, "currency": "EUR"}),
    ));
}

/// The shop every test reads:
/// - 25 shoppers view D1 then D2 a minute later (viewed with), 2 of them D3 after;
///   2 more view D1 alone;
/// - OOS is viewed 40 times, then goes out of stock;
/// - 4 shoppers buy D1 with S1 (bought with);
/// - 3 shoppers view D3, then buy B1 (viewed then bought);
/// - M1 is viewed 22 times and added to 6 carts (most added to cart, view to cart);
/// - `c-main` clicked D1 searching "Dress", bought S1, views M1, D3, D2 and has D3 in
///   the cart; `anon-main` signed in as `c-main`.
fn shop() -> &'static Shop {
    static SHOP: OnceLock<Shop> = OnceLock::new();
    SHOP.get_or_init(|| {
        let mut e = Events::new();
        for sku in ["D1", "D2", "D3", "D4", "OOS", "S1", "B1", "M1"] {
            e.push(
                json!({"type": "stock_changed", "occurred_at": ts(0), "sku": sku,
                          "quantity": 10, "product": item(sku)}),
            );
        }
        for i in 0..25 {
            let who = format!("v{i}");
            view(&mut e, &who, 10 + i, "D1");
            view(&mut e, &who, 11 + i, "D2");
            if i < 2 {
                view(&mut e, &who, 12 + i, "D3");
            }
        }
        // D1 stays the most viewed in stock once c-main views D2 too.
        for i in 0..2 {
            view(&mut e, &format!("w{i}"), 60 + i, "D1");
        }
        for i in 0..40 {
            view(&mut e, &format!("o{i}"), 20 + i, "OOS");
        }
        e.stock("OOS", 70, 0);
        for i in 0..4 {
            order(&mut e, &format!("b{i}"), 80 + i, &["D1", "S1"]);
        }
        for i in 0..3 {
            let who = format!("t{i}");
            view(&mut e, &who, 90 + i, "D3");
            order(&mut e, &who, 95 + i, &["B1"]);
        }
        for i in 0..22 {
            let who = format!("m{i}");
            view(&mut e, &who, 100 + i, "M1");
            if i < 6 {
                cart_add(&mut e, &who, 101 + i, "M1");
            }
        }
        e.push(shopper_event(
            "anon-main",
            130,
            "search_result_clicked",
            json!({"query": "Dress", "sku": "D1"}),
        ));
        e.sign_in("c-main", "anon-main", 131);
        order(&mut e, "c-main", 132, &["S1"]);
        view(&mut e, "c-main", 140, "M1");
        view(&mut e, "c-main", 141, "D3");
        view(&mut e, "c-main", 142, "D2");
        cart_add(&mut e, "c-main", 143, "D3");

        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let config_path = dir.path().join("personalizer.toml");
        std::fs::write(&config_path, CONFIG).unwrap();
        let mut config = Config::load(Some(&config_path)).unwrap();
        config.state.dir = Some(state.clone());
        // An hour later: every pending product record has been published.
        replay_lines(&config, &e.lines, Some(200));
        Shop {
            _dir: dir,
            state,
            config: config_path,
        }
    })
}

/// Runs `personalizer query` and returns (exit success, JSON).
fn query_raw(shop: &Shop, path: &str, body: Option<&str>) -> (bool, Value) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_personalizer"));
    command
        .arg("query")
        .arg("--config")
        .arg(&shop.config)
        .arg("--state-dir")
        .arg(&shop.state);
    if let Some(body) = body {
        command.arg("--body").arg(body);
    }
    let output = command.arg(path).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{path}: not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.success(), json)
}

fn query(path: &str) -> Value {
    let (ok, json) = query_raw(shop(), path, None);
    assert!(ok, "{path} failed: {json}");
    json
}

/// (sku, because) of each item, in order.
fn items(answer: &Value) -> Vec<(String, String)> {
    answer["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {answer}"))
        .iter()
        .map(|i| {
            assert!(i["score"].is_number(), "every item has a score: {i}");
            assert_eq!(i["product"]["sku"], i["sku"], "the item's product: {i}");
            (
                i["sku"].as_str().unwrap().to_string(),
                i["because"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn recs(query_string: &str) -> Vec<(String, String)> {
    items(&query(&format!("/v1/recommendations?{query_string}")))
}

fn pair(sku: &str, because: &str) -> (String, String) {
    (sku.to_string(), because.to_string())
}

fn skus(items: &[(String, String)]) -> Vec<&str> {
    items.iter().map(|(sku, _)| sku.as_str()).collect()
}

#[test]
fn the_profile_of_a_shopper_and_of_an_anonymous_id_that_signed_in() {
    let profile = query("/v1/shoppers/c-main/profile");
    assert_eq!(profile["shopper"], "c-main");
    assert_eq!(profile["customer_id"], "c-main");
    assert_eq!(profile["recently_viewed"], json!(["D2", "D3", "M1"]));
    assert_eq!(profile["orders"], 1);
    // The anonymous id answers with the customer it became.
    let merged = query("/v1/shoppers/anon-main/profile");
    assert_eq!(merged["shopper"], "c-main");
    let (ok, unknown) = query_raw(shop(), "/v1/shoppers/nobody/profile", None);
    assert!(!ok);
    assert!(
        unknown["error"].as_str().unwrap().contains("nobody"),
        "{unknown}"
    );
}

#[test]
fn viewed_viewed_lists_the_viewed_with_neighbours_strongest_first() {
    let got = recs("type=viewed_viewed&sku=D1");
    assert_eq!(got[0], pair("D2", "viewed_with:D1"));
    assert!(!skus(&got).contains(&"D1"), "never the SKU asked about");
}

#[test]
fn bought_bought_lists_what_is_bought_with_it() {
    assert_eq!(
        recs("type=bought_bought&sku=D1")[0],
        pair("S1", "bought_with:D1")
    );
}

#[test]
fn viewed_bought_lists_what_was_bought_after_viewing_it() {
    assert_eq!(
        recs("type=viewed_bought&sku=D3")[0],
        pair("B1", "viewed_then_bought:D3")
    );
}

#[test]
fn more_like_this_is_the_same_leaf_category_in_the_price_band_same_brand_first() {
    let got = recs("type=more_like_this&sku=D1");
    assert_eq!(
        got,
        [
            pair("D2", "same_brand:Acme"),
            pair("D3", "same_category:women/dresses")
        ],
        "D4 is priced out of the ±30 % band, OOS is out of stock"
    );
}

#[test]
fn popularity_rankings_leave_out_what_is_out_of_stock() {
    // OOS has the most views of all, but no stock.
    assert_eq!(
        recs("type=most_viewed&limit=1"),
        [pair("D1", "most_viewed")]
    );
    assert_eq!(
        recs("type=most_viewed&category=men&limit=1"),
        [pair("M1", "most_viewed:men")]
    );
    assert_eq!(
        recs("type=most_added_to_cart&limit=1"),
        [pair("M1", "most_added_to_cart")]
    );
    let purchased = recs("type=most_purchased");
    assert!(
        ["D1", "S1"].contains(&purchased[0].0.as_str()),
        "{purchased:?}"
    );
    assert_eq!(
        recs("type=trending&category=women&limit=1"),
        [pair("D1", "trending:women")]
    );
    // Conversion needs 20 views: D1 (27 views, 4 orders) and M1 (22 views, 6 carts).
    assert_eq!(
        recs("type=view_to_purchase"),
        [pair("D1", "view_to_purchase")]
    );
    assert_eq!(recs("type=view_to_cart"), [pair("M1", "view_to_cart")]);
}

#[test]
fn recently_viewed_keeps_what_is_in_the_cart_and_leaves_out_recent_purchases() {
    assert_eq!(
        recs("type=recently_viewed&shopper=c-main"),
        [
            pair("D2", "recently_viewed"),
            pair("D3", "recently_viewed"),
            pair("M1", "recently_viewed")
        ]
    );
}

#[test]
fn recommended_for_you_follows_the_latest_views_and_leaves_out_cart_and_purchases() {
    let got = recs("type=recommended_for_you&shopper=c-main");
    assert_eq!(got[0], pair("D1", "viewed_with:D2"));
    for left_out in ["D3", "S1", "OOS"] {
        assert!(
            !skus(&got).contains(&left_out),
            "{left_out} must be left out: {got:?}"
        );
    }
    // Bought S1 within 30 days: not even the most purchased list offers it to them.
    assert!(!skus(&recs("type=most_purchased&shopper=c-main")).contains(&"S1"));
}

#[test]
fn an_unknown_shopper_gets_the_most_viewed() {
    assert_eq!(
        recs("type=recommended_for_you&shopper=stranger&limit=2"),
        [pair("D1", "most_viewed"), pair("D2", "most_viewed")]
    );
}

#[test]
fn complements_are_bought_with_the_cart_then_the_configured_categories() {
    // c-main's cart holds D3, which nobody bought with anything: the bags.
    assert_eq!(
        recs("type=complements&shopper=c-main")[0],
        pair("B1", "complements:accessories/bags")
    );
    let got = recs("type=complements&sku=D1");
    assert_eq!(got[0], pair("S1", "bought_with:D1"));
    assert_eq!(got[1], pair("B1", "complements:accessories/bags"));
}

#[test]
fn the_search_order_is_a_permutation_led_by_the_shoppers_own_clicks() {
    let skus_in = ["M1", "B1", "D3", "D1", "NOT-IN-CATALOG"];
    let body = json!({"query": "dress", "skus": skus_in}).to_string();
    let (ok, answer) = query_raw(shop(), "/v1/shoppers/c-main/search-order", Some(&body));
    assert!(ok, "{answer}");
    let got: Vec<&str> = answer["skus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let mut sorted_in = skus_in.to_vec();
    let mut sorted_out = got.clone();
    sorted_in.sort_unstable();
    sorted_out.sort_unstable();
    assert_eq!(sorted_in, sorted_out, "a permutation");
    assert_eq!(got[0], "D1", "clicked for this query before: {answer}");
    assert_eq!(got.last(), Some(&"NOT-IN-CATALOG"));
    let scores: Vec<f64> = answer["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    // A stranger with no signal: equal scores keep the input order of what nobody viewed.
    let body = json!({"query": "x", "skus": ["NOPE-2", "NOPE-1"]}).to_string();
    let (_, answer) = query_raw(shop(), "/v1/shoppers/stranger/search-order", Some(&body));
    assert_eq!(answer["skus"], json!(["NOPE-2", "NOPE-1"]));
}

#[test]
fn bad_requests_name_the_parameter() {
    for (path, parameter) in [
        ("/v1/recommendations?type=nope", "`type`"),
        ("/v1/recommendations?type=viewed_viewed", "`sku`"),
        ("/v1/recommendations?type=trending&limit=1000", "`limit`"),
    ] {
        let (ok, answer) = query_raw(shop(), path, None);
        assert!(!ok, "{path}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(parameter), "{path}: {error}");
    }
    let (ok, answer) = query_raw(
        shop(),
        "/v1/recommendations?type=bought_bought&sku=ZZZ",
        None,
    );
    assert!(!ok);
    assert!(
        answer["error"].as_str().unwrap().contains("ZZZ"),
        "{answer}"
    );
    let too_many: Vec<String> = (0..501).map(|i| format!("S{i}")).collect();
    let body = json!({"query": "q", "skus": too_many}).to_string();
    let (ok, answer) = query_raw(shop(), "/v1/shoppers/c-main/search-order", Some(&body));
    assert!(!ok);
    assert!(
        answer["error"].as_str().unwrap().contains("`skus`"),
        "{answer}"
    );
    let (ok, answer) = query_raw(shop(), "/v1/shoppers/c-main/search-order", Some("[1,2"));
    assert!(!ok);
    assert!(
        answer["error"].as_str().unwrap().contains("`body`"),
        "{answer}"
    );
}

#[test]
fn query_refuses_what_is_not_a_state_directory() {
    let output = Command::new(env!("CARGO_BIN_EXE_personalizer"))
        .args(["query", "--state-dir"])
        .arg(Path::new("/nonexistent/personalizer-state"))
        .arg("/v1/recommendations?type=trending")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a directory"), "{stderr}");
}
