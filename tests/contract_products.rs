//! CONTRACT §5.4 (products: catalog, popularity, trending, conversion, co-occurrence,
//! segments, publishing), sentence by sentence, through the replay driver.

mod common;

use common::*;
use personalizer::config::Config;
use personalizer::decision::{Decision, DecisionBody, ProductRecord, ScoredSku};
use personalizer::generate::{planted_pairs, Generator, GeneratorSettings};
use serde_json::{json, Value};

const DAY: i64 = 24 * 60;

fn item(sku: &str, path: &[&str]) -> Value {
    json!({"sku": sku, "name": format!("Product {sku}"), "price": 20.0, "currency": "EUR", "category": path})
}

fn view(e: &mut Events, who: &str, minutes: i64, sku: &str) -> String {
    e.push(shopper_event(
        who,
        minutes,
        "product_viewed",
        json!({"product": item(sku, &["women", "dresses"])}),
    ))
}

fn order(e: &mut Events, who: &str, minutes: i64, lines: &[(&str, i64)]) -> String {
    let items: Vec<Value> = lines
        .iter()
        .map(|(sku, quantity)| json!({"product": item(sku, &["women", "dresses"]), "quantity": quantity}))
        .collect();
    e.push(shopper_event(
        who,
        minutes,
        "order_completed",
        json!({"order_id": format!("o-{who}-{minutes}"), "items": items, "total": 10.0, "currency": "EUR"}),
    ))
}

/// (decided_at in seconds after the start, record) of every product record of `sku`.
fn records(decisions: &[Decision], sku: &str) -> Vec<(i64, ProductRecord)> {
    decisions
        .iter()
        .filter_map(|d| match &d.body {
            DecisionBody::Product(r) if r.sku == sku => {
                assert_eq!(d.record_key(), sku, "keyed by SKU");
                assert_eq!(d.customer_id, None, "no customer");
                Some(((d.decided_at - at(0)) / 1000, (**r).clone()))
            }
            _ => None,
        })
        .collect()
}

fn last(decisions: &[Decision], sku: &str) -> ProductRecord {
    records(decisions, sku)
        .pop()
        .unwrap_or_else(|| panic!("no product record for {sku}"))
        .1
}

fn skus(list: &[ScoredSku]) -> Vec<&str> {
    list.iter().map(|n| n.sku.as_str()).collect()
}

fn replay_with(config: &Config, e: &Events, until: Option<i64>) -> Vec<Decision> {
    replay_lines(config, &e.lines, until).decisions
}

// ---- Catalog ---------------------------------------------------------------------------

#[test]
fn the_latest_product_object_by_event_time_is_the_catalog_entry_and_stock_its_quantity() {
    let mut e = Events::new();
    e.push(shopper_event(
        "c1",
        10,
        "product_viewed",
        json!({"product": {"sku": "S1", "name": "New name", "price": 25.0}}),
    ));
    // An older event (from another shopper) does not overwrite the newer details.
    e.push(shopper_event(
        "c2",
        5,
        "product_viewed",
        json!({"product": {"sku": "S1", "name": "Old name"}}),
    ));
    e.push(json!({"type": "stock_changed", "occurred_at": ts(12), "sku": "S1", "quantity": 7}));
    let decisions = replay(&e, Some(60));
    let record = last(&decisions, "S1");
    assert_eq!(record.product.unwrap().name.as_deref(), Some("New name"));
    assert_eq!(record.quantity, Some(7));
}

// ---- Popularity, trending, conversion --------------------------------------------------

#[test]
fn popularity_counts_views_cart_adds_and_units_purchased_decayed_over_three_and_a_half_days() {
    let mut e = Events::new();
    for i in 0..4 {
        view(&mut e, &format!("c{i}"), 0, "S1");
    }
    e.push(shopper_event(
        "c1",
        0,
        "cart_item_added",
        json!({"cart_id": "k1", "product": item("S1", &["women"]), "quantity": 3}),
    ));
    order(&mut e, "c1", 0, &[("S1", 3)]);
    // A stock change 3.5 days later publishes the record then: everything has halved.
    e.stock("S1", 84 * 60, 9);
    let record = last(&replay(&e, Some(84 * 60 + 1)), "S1");
    assert_eq!(record.popularity.views_7d, 2.0);
    assert_eq!(
        record.popularity.cart_adds_7d, 0.5,
        "one cart add, not 3 units"
    );
    assert_eq!(record.popularity.purchases_7d, 1.5, "3 units");
}

#[test]
fn trending_is_the_24h_views_over_a_third_of_the_72h_views_plus_one_from_five_views() {
    let mut e = Events::new();
    for i in 0..4 {
        view(&mut e, &format!("c{i}"), 0, "S1");
    }
    let decisions = replay(&e, Some(10));
    assert_eq!(
        last(&decisions, "S1").trending_score,
        0.0,
        "4 views: below 5"
    );
    for i in 4..12 {
        view(&mut e, &format!("c{i}"), 0, "S1");
    }
    // 12 views: 12 / (12 / 3 + 1), each count decayed for the 5 s to the publish.
    let fg = 12.0 * (-5.0f64 / 86_400.0).exp2();
    let bg = 12.0 * (-5.0f64 / 259_200.0).exp2();
    let expected = (fg / (bg / 3.0 + 1.0) * 1e4).round() / 1e4;
    assert_eq!(last(&replay(&e, Some(10)), "S1").trending_score, expected);
    assert!((expected - 2.4).abs() < 1e-3);
}

#[test]
fn conversion_rates_are_null_below_twenty_views_then_the_decayed_ratios() {
    // 20 views, decayed for the 5 s until the record is published: just under 20.
    let mut e = Events::new();
    for i in 0..20 {
        view(&mut e, &format!("c{i}"), 0, "S1");
    }
    order(&mut e, "c1", 0, &[("S1", 2)]);
    let record = last(&replay(&e, Some(10)), "S1");
    assert_eq!((record.view_to_purchase, record.view_to_cart), (None, None));
    for i in 20..25 {
        view(&mut e, &format!("c{i}"), 0, "S1");
    }
    e.push(shopper_event(
        "c2",
        0,
        "cart_item_added",
        json!({"cart_id": "k", "product": item("S1", &["women"]), "quantity": 1}),
    ));
    let record = last(&replay(&e, Some(10)), "S1");
    // Both counts decay alike, so the ratios are exact: 2 units / 25, 1 add / 25.
    assert_eq!(record.view_to_purchase, Some(0.08));
    assert_eq!(record.view_to_cart, Some(0.04));
}

// ---- Co-occurrence ---------------------------------------------------------------------

#[test]
fn viewed_with_pairs_a_view_with_the_distinct_skus_viewed_in_the_30_minutes_before_it() {
    let mut e = Events::new();
    view(&mut e, "c1", 0, "OLD"); // 31 minutes and more before the others: outside
    view(&mut e, "c1", 31, "S1");
    view(&mut e, "c1", 35, "S1"); // the same SKU again: one neighbour
    view(&mut e, "c1", 40, "S2");
    let decisions = replay(&e, Some(60));
    assert_eq!(skus(&last(&decisions, "S2").viewed_with), ["S1"]);
    // Both ways.
    assert_eq!(skus(&last(&decisions, "S1").viewed_with), ["S2"]);
    assert!(last(&decisions, "OLD").viewed_with.is_empty());
}

#[test]
fn viewed_with_takes_only_the_five_most_recent_of_those() {
    let mut e = Events::new();
    for (i, sku) in ["A", "B", "C", "D", "E", "F"].iter().enumerate() {
        view(&mut e, "c1", i as i64, sku);
    }
    view(&mut e, "c1", 10, "X");
    let decisions = replay(&e, Some(60));
    let record = last(&decisions, "X");
    let mut neighbours = skus(&record.viewed_with);
    neighbours.sort();
    assert_eq!(neighbours, ["B", "C", "D", "E", "F"], "A is the sixth");
}

#[test]
fn bought_with_pairs_the_skus_of_one_order_both_ways_among_its_first_twenty_lines() {
    let mut e = Events::new();
    let lines: Vec<(String, i64)> = (0..22).map(|i| (format!("L{i:02}"), 1)).collect();
    let refs: Vec<(&str, i64)> = lines.iter().map(|(s, q)| (s.as_str(), *q)).collect();
    order(&mut e, "c1", 0, &refs);
    let decisions = replay(&e, Some(60));
    let first = last(&decisions, "L00");
    assert_eq!(
        first.bought_with.len(),
        19,
        "the other 19 of the first 20 lines"
    );
    assert!(!skus(&first.bought_with).contains(&"L20"));
    assert!(last(&decisions, "L21").bought_with.is_empty());
    assert_eq!(
        last(&decisions, "L21").popularity.purchases_7d,
        1.0,
        "still bought"
    );
}

#[test]
fn viewed_then_bought_goes_from_each_sku_viewed_in_the_last_seven_days_and_not_bought() {
    let mut e = Events::new();
    view(&mut e, "c1", 0, "LONG-AGO");
    view(&mut e, "c1", 6 * DAY, "LOOKED");
    view(&mut e, "c1", 6 * DAY + 1, "BOUGHT");
    order(&mut e, "c1", 8 * DAY, &[("BOUGHT", 1)]);
    let decisions = replay(&e, Some(8 * DAY + 10));
    assert_eq!(
        skus(&last(&decisions, "LOOKED").viewed_then_bought),
        ["BOUGHT"]
    );
    assert!(last(&decisions, "LONG-AGO").viewed_then_bought.is_empty());
    assert!(
        last(&decisions, "BOUGHT").viewed_then_bought.is_empty(),
        "from the viewed SKU to the bought one, not back"
    );
}

#[test]
fn neighbours_rank_by_cosine_so_a_popular_product_does_not_dominate() {
    let mut e = Events::new();
    // P is co-viewed with BIG twice and with NICHE once; BIG is viewed by everyone.
    for i in 0..40 {
        view(&mut e, &format!("x{i}"), 0, "BIG");
    }
    view(&mut e, "a", 1, "BIG");
    view(&mut e, "a", 2, "P");
    view(&mut e, "b", 1, "BIG");
    view(&mut e, "b", 2, "P");
    view(&mut e, "c", 1, "NICHE");
    view(&mut e, "c", 2, "P");
    // Another change to P after BIG and NICHE were published ranks against their records.
    e.stock("P", 30, 4);
    let decisions = replay(&e, Some(60));
    let record = last(&decisions, "P");
    assert_eq!(skus(&record.viewed_with), ["NICHE", "BIG"]);
    // count / √(views(P) · views(neighbour)): 1/√(3·1) and 2/√(3·42), give or take
    // the minutes of decay between the views and the publish.
    let cosine = |count: f64, theirs: f64| count / (3.0 * theirs).sqrt();
    assert!((record.viewed_with[0].score - cosine(1.0, 1.0)).abs() < 1e-3);
    assert!((record.viewed_with[1].score - cosine(2.0, 42.0)).abs() < 1e-3);
}

#[test]
fn each_sku_keeps_its_strongest_neighbours_and_the_record_lists_the_top_n() {
    let mut config = Config::default();
    config.rules.recs.max_neighbours = 3;
    config.rules.recs.top_n = 2;
    let mut e = Events::new();
    for (minute, (who, other)) in [
        ("a", "N1"),
        ("b", "N1"),
        ("c", "N2"),
        ("d", "N3"),
        ("e", "N4"),
    ]
    .iter()
    .enumerate()
    {
        view(&mut e, who, minute as i64, other);
        view(&mut e, who, minute as i64 + 1, "P");
    }
    let record = last(&replay_with(&config, &e, Some(60)), "P");
    assert_eq!(record.viewed_with.len(), 2, "top_n");
    assert_eq!(
        record.viewed_with[0].sku, "N1",
        "counted twice: kept and first"
    );
}

// ---- Segments and publishing -----------------------------------------------------------

#[test]
fn stock_segments_follow_the_quantity() {
    let mut e = Events::new();
    e.stock("OUT", 0, 0);
    e.stock("LOW", 0, 5);
    e.stock("PLENTY", 0, 6);
    let decisions = replay(&e, Some(10));
    assert!(last(&decisions, "OUT")
        .segments
        .contains(&"out_of_stock".to_string()));
    assert!(last(&decisions, "LOW")
        .segments
        .contains(&"low_stock".to_string()));
    let plenty = last(&decisions, "PLENTY").segments;
    assert!(
        !plenty.contains(&"low_stock".to_string()) && !plenty.contains(&"out_of_stock".to_string())
    );
}

#[test]
fn new_arrival_lasts_fourteen_days_from_first_seen_and_its_end_is_published() {
    let mut e = Events::new();
    view(&mut e, "c1", 0, "S1");
    let decisions = replay(&e, Some(20 * DAY));
    let published = records(&decisions, "S1");
    assert!(published[0].1.segments.contains(&"new_arrival".to_string()));
    let (at_end, end) = published.last().unwrap();
    assert_eq!(
        *at_end,
        14 * DAY * 60 + 5,
        "published when it ended (plus the interval)"
    );
    assert!(!end.segments.contains(&"new_arrival".to_string()));
}

#[test]
fn trending_marks_the_top_trending_scores_of_the_department() {
    let mut config = Config::default();
    config.rules.products.trending_top = 1;
    let mut e = Events::new();
    for i in 0..10 {
        view(&mut e, &format!("a{i}"), 0, "HOT");
    }
    for i in 0..6 {
        view(&mut e, &format!("b{i}"), 0, "WARM");
    }
    // Later views republish both, ranked against each other's published records.
    view(&mut e, "z1", 10, "HOT");
    view(&mut e, "z2", 10, "WARM");
    let decisions = replay_with(&config, &e, Some(30));
    assert!(last(&decisions, "HOT")
        .segments
        .contains(&"trending".to_string()));
    assert!(!last(&decisions, "WARM")
        .segments
        .contains(&"trending".to_string()));
}

#[test]
fn a_record_is_published_at_most_once_per_five_seconds_of_stream_time_per_sku() {
    let mut e = Events::new();
    for second in 0..20 {
        e.push(json!({"type": "stock_changed", "occurred_at": format_seconds(second), "sku": "S1", "quantity": second + 1}));
    }
    let published = records(&replay(&e, Some(10)), "S1");
    let times: Vec<i64> = published.iter().map(|(t, _)| *t).collect();
    // The first change (0 s) arms the timer; each publish is the state just before the
    // change at its own second, which arms the next.
    assert_eq!(times, [5, 10, 15, 20], "at most once per 5 s");
    let quantities: Vec<Option<u64>> = published.iter().map(|(_, r)| r.quantity).collect();
    assert_eq!(
        quantities,
        [Some(5), Some(10), Some(15), Some(20)],
        "the latest state"
    );
}

fn format_seconds(seconds: i64) -> String {
    personalizer::time::format_rfc3339(at(0) + seconds * 1000)
}

#[test]
fn the_product_side_can_be_turned_off() {
    let mut config = Config::default();
    config.rules.products.enabled = false;
    let mut e = Events::new();
    view(&mut e, "c1", 0, "S1");
    e.stock("S1", 1, 3);
    assert!(records(&replay_with(&config, &e, Some(60)), "S1").is_empty());
}

// ---- generate ---------------------------------------------------------------------------

#[test]
fn the_planted_pairs_of_a_generated_stream_come_out_on_top_of_bought_with() {
    let products = 60;
    let lines: Vec<String> = Generator::new(GeneratorSettings {
        shoppers: 3_000,
        events: 60_000,
        seed: 5,
        start: at(0),
        span: 5 * 86_400_000,
        history: 0,
        products,
        lateness: 0,
    })
    .map(|event| event.to_json_line())
    .collect();
    let decisions = replay_lines(&Config::default(), &lines, None).decisions;
    let mut checked = 0;
    for (sku, companion) in planted_pairs(products as usize) {
        let Some((_, record)) = records(&decisions, &sku).pop() else {
            continue;
        };
        // A pair bought together once ties with any other pair bought once.
        let together = |n: &&ScoredSku| n.sku == companion;
        let Some(companion_orders) = records(&decisions, &companion)
            .pop()
            .map(|(_, r)| r.ranking_basis.orders)
        else {
            continue;
        };
        if record.bought_with.iter().find(together).is_none() || companion_orders < 2.9 {
            continue;
        }
        assert_eq!(
            record.bought_with[0].sku, companion,
            "{sku}: {:?}",
            record.bought_with
        );
        checked += 1;
    }
    let planted = planted_pairs(products as usize).len();
    assert_eq!(planted, 6);
    assert!(
        checked >= 5,
        "only {checked} of {planted} planted pairs were bought together often enough"
    );
}
