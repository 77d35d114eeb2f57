//! The product side live (CONTRACT §5.4), against a real broker: two instances share the
//! product tasks, each keeps a global table of the products topic, and the product
//! records come out as `replay` makes them, through a kill -9.
//!
//! What "as replay makes them" can mean live: a product task receives messages from
//! every shopper partition through the internal topic, in an order that depends on how
//! fast each instance works, so the stream time at which a record is published differs
//! (and with it every decayed number, which is reported at that time). So the last
//! record per SKU is compared as the contract defines it: the same product, stock,
//! segments and neighbours, and the same decayed counts once brought to the same time.
//! Neighbour scores and the `trending` segment rank against the other SKUs' records in
//! the product table, which each instance reads at its own pace: they are not compared.

mod common;

use common::compare::{replay_of, workload, NO_WALL_CLOCK, PARTITIONS};
use common::live::{key_per_partition, terminate, wait_for_metric, App};
use personalizer::decision::{Decision, DecisionBody, ProductRecord, ScoredSku};
use personalizer::store::{Family, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// Whole neighbour lists are published (at most 100 of 60 products), so which SKUs are
/// neighbours does not depend on scores.
const SETTINGS: &str = "[rules.recs]\nmax_neighbours = 100\ntop_n = 100\n";
const POPULARITY_HALF_LIFE_MS: f64 = 3.5 * 86_400_000.0;
const RECS_HALF_LIFE_MS: f64 = 90.0 * 86_400_000.0;

/// The last product record per SKU among `decisions`.
fn last_records(decisions: &[Decision]) -> BTreeMap<String, (i64, ProductRecord)> {
    let mut last = BTreeMap::new();
    for d in decisions {
        if let DecisionBody::Product(record) = &d.body {
            let newer = last
                .get(&record.sku)
                .is_none_or(|(at, _): &(i64, ProductRecord)| d.decided_at >= *at);
            if newer {
                last.insert(record.sku.clone(), (d.decided_at, (**record).clone()));
            }
        }
    }
    last
}

fn neighbours(list: &[ScoredSku]) -> BTreeSet<&str> {
    list.iter().map(|n| n.sku.as_str()).collect()
}

/// A decayed count reported at `from`, brought to `to`.
fn decay(value: f64, from: i64, to: i64, half_life: f64) -> f64 {
    value * (-((to - from) as f64) / half_life).exp2()
}

/// Why two last records of one SKU differ as the contract defines them; `None` if not.
fn difference(live: (i64, &ProductRecord), replayed: (i64, &ProductRecord)) -> Option<String> {
    let ((live_at, l), (replay_at, r)) = (live, replayed);
    let close = |a: f64, b: f64| (a - b).abs() <= 2e-3 + 1e-3 * b.abs();
    let counts = |record: &ProductRecord, at: i64| {
        let p = &record.popularity;
        let to_replay = |v| decay(v, at, replay_at, POPULARITY_HALF_LIFE_MS);
        let basis = |v| decay(v, at, replay_at, RECS_HALF_LIFE_MS);
        [
            to_replay(p.views_7d),
            to_replay(p.cart_adds_7d),
            to_replay(p.purchases_7d),
            basis(record.ranking_basis.views),
            basis(record.ranking_basis.orders),
        ]
    };
    let segments = |record: &ProductRecord| -> Vec<String> {
        // `trending` ranks against the table; `new_arrival` depends on the publish time.
        let mut s = record.segments.clone();
        s.retain(|s| s != "trending" && s != "new_arrival");
        s
    };
    let problem = if l.product != r.product {
        "product details"
    } else if l.quantity != r.quantity {
        "quantity"
    } else if segments(l) != segments(r) {
        "segments"
    } else if !counts(l, live_at)
        .iter()
        .zip(counts(r, replay_at))
        .all(|(a, b)| close(*a, b))
    {
        "decayed counts"
    } else {
        let kinds = [
            ("viewed_with", &l.viewed_with, &r.viewed_with),
            ("bought_with", &l.bought_with, &r.bought_with),
            (
                "viewed_then_bought",
                &l.viewed_then_bought,
                &r.viewed_then_bought,
            ),
        ];
        let (kind, live, replayed) = kinds
            .into_iter()
            .find(|(_, l, r)| neighbours(l) != neighbours(r))?;
        let (live, replayed) = (neighbours(live), neighbours(replayed));
        return Some(format!(
            "{kind} neighbours only live: {:?}, only in replay: {:?}",
            live.difference(&replayed).collect::<Vec<_>>(),
            replayed.difference(&live).collect::<Vec<_>>()
        ));
    };
    Some(format!(
        "{problem}: live at {live_at}: {l:?}\nreplay at {replay_at}: {r:?}"
    ))
}

/// Waits until the committed product records agree with `expected`; then returns them.
fn wait_for_product_records(
    app: &App,
    expected: &BTreeMap<String, (i64, ProductRecord)>,
    within: Duration,
) -> Vec<Decision> {
    let deadline = Instant::now() + within;
    loop {
        let decisions = app.decisions();
        let live = last_records(&decisions);
        let first_difference =
            expected
                .iter()
                .find_map(|(sku, (at, record))| match live.get(sku) {
                    None => Some(format!("{sku}: no record live")),
                    Some((live_at, l)) => {
                        difference((*live_at, l), (*at, record)).map(|why| format!("{sku}: {why}"))
                    }
                });
        let extra: Vec<&String> = live.keys().filter(|k| !expected.contains_key(*k)).collect();
        match first_difference {
            None if extra.is_empty() => return decisions,
            found => assert!(
                Instant::now() < deadline,
                "after {within:?}, the product records differ from replay's: {}",
                found.unwrap_or_else(|| format!("SKUs only live: {extra:?}"))
            ),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// An instance's product table, as its state directory holds it after a clean stop.
fn stored_table(dir: &Path, app: &App) -> BTreeMap<String, Decision> {
    let store = Store::open(dir, &app.config.state).unwrap();
    store
        .scan_prefix(Family::ProductTable, &[])
        .unwrap()
        .into_iter()
        .map(|(key, value)| {
            (
                String::from_utf8(key).unwrap(),
                serde_json::from_slice(&value).unwrap(),
            )
        })
        .collect()
}

fn http_address(log: &Path) -> String {
    App::http_address(log, Duration::from_secs(60))
}

/// One restock per product partition at a late time: moves every product task's clock
/// (and the replay's) past the last publish due.
fn product_sentinels() -> Vec<String> {
    key_per_partition("sentinel", PARTITIONS)
        .into_iter()
        .enumerate()
        .map(|(p, sku)| {
            format!(
                r#"{{"event_id":"end-stock-{p}","type":"stock_changed","occurred_at":"2026-01-10T00:00:00Z","sku":"{sku}","quantity":1}}"#
            )
        })
        .collect()
}

#[test]
fn two_instances_make_replays_product_records_and_each_holds_the_whole_table() {
    // No wall clock: the workload is in the past, and a product task that moved to the
    // wall clock would apply late messages a year later. The sentinels end the stream
    // once every message has reached the product side.
    let app = App::with_products("products", PARTITIONS, NO_WALL_CLOCK, SETTINGS);
    // Without sign-ins: an anonymous shopper's events that follow a sign-in travel to the
    // customer's task through a topic when it is on the other instance, and reach it
    // after the customer's later views, which replay applies after them. Which earlier
    // views a rerouted view pairs with then differs, as it would with Kafka Streams.
    let lines: Vec<String> = workload(3_000, 11)
        .into_iter()
        .filter(|line| !line.contains(r#""type":"signed_in""#))
        .collect();
    let sentinels = product_sentinels();
    let everything: Vec<String> = lines.iter().chain(&sentinels).cloned().collect();
    let expected = last_records(&replay_of(&app, &everything, None));
    assert!(
        expected.len() >= 40,
        "most products are touched: {}",
        expected.len()
    );
    assert!(
        expected.values().any(|(_, r)| !r.bought_with.is_empty())
            && expected
                .values()
                .any(|(_, r)| !r.viewed_then_bought.is_empty())
            && expected.values().any(|(_, r)| !r.viewed_with.is_empty()),
        "the workload makes every kind of neighbour"
    );
    app.produce(&app.producer(), &lines[..lines.len() / 2]);

    let (a_dir, b_dir) = (app.dir.path().join("a"), app.dir.path().join("b"));
    let (a_log, b_log) = (app.dir.path().join("a.log"), app.dir.path().join("b.log"));
    // Killed when `app` is dropped, also when the test fails.
    let mut running = [app.spawn(&a_dir, &a_log), app.spawn(&b_dir, &b_log)];
    // Once records flow, kill one instance mid-stream: its tasks move to the other and
    // come back when it restarts; nothing may be lost on the way.
    app.wait_for_decisions_where("product records", Duration::from_secs(120), |d| {
        d.iter().any(|d| matches!(d.body, DecisionBody::Product(_)))
    });
    running[1].kill().unwrap();
    running[1].wait().unwrap();
    app.produce(&app.producer(), &lines[lines.len() / 2..]);
    running[1] = app.spawn(&b_dir, &b_log);
    app.wait_until_input_processed(Duration::from_secs(180));
    let by_sku = format!("{}-by-sku", app.config.application_id);
    app.wait_until_internal_processed(&by_sku, Duration::from_secs(60));
    app.produce(&app.producer(), &sentinels);

    let decisions = wait_for_product_records(&app, &expected, Duration::from_secs(240));
    let published = last_records(&decisions).len();
    // Both tables hold every SKU before they stop (each reads every partition).
    let addresses = [http_address(&a_log), http_address(&b_log)];
    for address in &addresses {
        wait_for_metric(
            std::slice::from_ref(address),
            "personalizer_product_table_skus",
            &[],
            published as f64,
            Duration::from_secs(60),
        );
    }
    for child in &mut running {
        assert_eq!(terminate(child), Some(0), "SIGTERM exits 0");
    }

    // Each table is the last record per SKU on the topic, exactly.
    let on_topic: BTreeMap<String, Decision> = {
        let mut last = BTreeMap::new();
        for d in app.decisions() {
            if let DecisionBody::Product(record) = &d.body {
                last.insert(record.sku.clone(), d.clone());
            }
        }
        last
    };
    assert_eq!(on_topic.len(), published);
    for dir in [&a_dir, &b_dir] {
        assert_eq!(stored_table(dir, &app), on_topic, "{}", dir.display());
    }
}
