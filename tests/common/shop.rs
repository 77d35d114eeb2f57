//! The planted shop the read API's tests read: a hand-written scenario replayed once
//! into a state directory (`tests/contract_api.rs` asks it through `personalizer query`
//! and through the HTTP server; the examples of `docs/api.md` are its answers).
#![allow(dead_code)] // each test binary uses its own subset

use super::*;
use personalizer::config::Config;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::OnceLock;

/// `[rules.recs.complements]` of the scenario: a dress goes with a bag.
pub const CONFIG: &str = r#"
[rules.recs.complements]
"women/dresses" = ["accessories/bags"]
"#;

pub struct Shop {
    _dir: tempfile::TempDir,
    pub state: PathBuf,
    pub config: PathBuf,
    /// What the replay decided, in order.
    pub decisions: Vec<personalizer::decision::Decision>,
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
pub fn shop() -> &'static Shop {
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
        let decisions = replay_lines(&config, &e.lines, Some(200)).decisions;
        Shop {
            _dir: dir,
            state,
            config: config_path,
            decisions,
        }
    })
}
