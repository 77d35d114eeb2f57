//! CONTRACT §5.5 (offers), sentence by sentence, through the replay driver.

mod common;

use common::*;
use personalizer::config::{Config, Dur, OfferConfig};
use personalizer::decision::{Decision, DecisionBody};
use serde_json::json;

const DAY: i64 = 24 * 60;

fn config() -> Config {
    let mut config = Config::default();
    config.rules.offers.codes = vec![
        OfferConfig {
            code: "DRESSES10".into(),
            category: "women/dresses".into(),
            min_score: 8.0,
        },
        OfferConfig {
            code: "WOMEN5".into(),
            category: "women".into(),
            min_score: 12.0,
        },
    ];
    config
}

fn wish(e: &mut Events, who: &str, minutes: i64, sku: &str, path: &[&str]) -> String {
    let product = json!({"product": {"sku": sku, "category": path}});
    e.push(shopper_event(who, minutes, "wishlist_added", product))
}

fn order_in(e: &mut Events, who: &str, minutes: i64, path: &[&str]) -> String {
    e.push(
        json!({"type": "order_completed", "occurred_at": ts(minutes), "customer_id": who,
        "order_id": format!("o-{minutes}"), "total": 30.0, "currency": "EUR",
        "items": [{"product": {"sku": "X", "category": path}, "quantity": 1}]}),
    )
}

/// (customer, code, score, decided_at in minutes) of each offer.
fn offers(decisions: &[Decision]) -> Vec<(String, String, f64, i64)> {
    decisions
        .iter()
        .filter_map(|d| match &d.body {
            DecisionBody::DiscountOffer { code, score, .. } => Some((
                d.customer_id.clone().unwrap(),
                code.clone(),
                *score,
                (d.decided_at - at(0)) / 60_000,
            )),
            _ => None,
        })
        .collect()
}

fn run(e: &Events) -> Vec<Decision> {
    replay_lines(&config(), &e.lines, None).decisions
}

#[test]
fn reaching_the_minimum_score_for_the_prefix_sends_the_offer_once() {
    let mut e = Events::new();
    wish(&mut e, "c1", 0, "S1", &["women", "dresses", "maxi"]); // 3
    wish(&mut e, "c1", 1, "S2", &["women", "dresses"]); // 6
    let third = wish(&mut e, "c1", 2, "S3", &["women", "dresses", "midi"]); // 9 ≥ 8
    wish(&mut e, "c1", 3, "S4", &["women", "dresses"]); // still above: no second offer
    let d = run(&e);
    let sent = offers(&d);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (customer, code, score, minute) = &sent[0];
    assert_eq!(
        (customer.as_str(), code.as_str(), *minute),
        ("c1", "DRESSES10", 2)
    );
    assert!(
        (score - 9.0).abs() < 0.01,
        "the score of the prefix: {score}"
    );
    let offer = d
        .iter()
        .find(|d| matches!(d.body, DecisionBody::DiscountOffer { .. }))
        .unwrap();
    assert!(offer.reason.contains(&third), "{}", offer.reason);
    match &offer.body {
        DecisionBody::DiscountOffer { category, .. } => assert_eq!(category, "women/dresses"),
        _ => unreachable!(),
    }
}

#[test]
fn each_offer_has_its_own_threshold_and_goes_once_per_code_ever() {
    let mut e = Events::new();
    for n in 0..4 {
        wish(&mut e, "c1", n, &format!("S{n}"), &["women", "dresses"]);
    }
    // 12 in women: the department offer too, once.
    e.erase("c2", 5); // someone else: changes nothing for c1
    for n in 10..14 {
        wish(&mut e, "c1", n, &format!("T{n}"), &["women", "shoes"]);
    }
    let codes: Vec<String> = offers(&run(&e)).into_iter().map(|o| o.1).collect();
    assert_eq!(codes, ["DRESSES10", "WOMEN5"]);
}

#[test]
fn anonymous_shoppers_get_no_offer_until_they_are_identified() {
    let mut e = Events::new();
    for n in 0..3 {
        wish(&mut e, "anon-1", n, &format!("S{n}"), &["women", "dresses"]);
    }
    assert!(offers(&run(&e)).is_empty());
    // At sign-in the anonymous interests become the customer's: the offer goes then.
    e.sign_in("c1", "anon-1", 10);
    let sent = offers(&run(&e));
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0].0.as_str(), sent[0].3), ("c1", 10));
}

#[test]
fn no_offer_without_consent_until_it_is_given() {
    let mut e = Events::new();
    e.consent("c1", 0, false);
    for n in 1..4 {
        wish(&mut e, "c1", n, &format!("S{n}"), &["women", "dresses"]);
    }
    assert!(offers(&run(&e)).is_empty());
    e.consent("c1", 10, true);
    let sent = offers(&run(&e));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].3, 10);
}

#[test]
fn an_order_in_the_category_within_the_lookback_holds_the_offer_back() {
    let mut e = Events::new();
    order_in(&mut e, "c1", 0, &["women", "dresses", "maxi"]); // 8 points, but ordered
    assert!(offers(&run(&e)).is_empty());
    // 31 days later the order is outside the 30-day lookback; interest decayed to
    // 8 · 2^(−31/14) ≈ 1.7, and three wishes bring it over 8 again.
    for n in 0..3 {
        wish(
            &mut e,
            "c1",
            31 * DAY + n,
            &format!("S{n}"),
            &["women", "dresses"],
        );
    }
    let sent = offers(&run(&e));
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].3, 31 * DAY + 2);

    let mut config = config();
    config.rules.offers.lookback = Dur::hours(24 * 60);
    let d = replay_lines(&config, &e.lines, None).decisions;
    assert!(offers(&d).is_empty(), "within a 60-day lookback");
}

#[test]
fn an_order_in_another_category_does_not_hold_the_offer_back() {
    let mut e = Events::new();
    order_in(&mut e, "c1", 0, &["women", "shoes"]);
    for n in 1..4 {
        wish(&mut e, "c1", n, &format!("S{n}"), &["women", "dresses"]);
    }
    assert_eq!(offers(&run(&e)).len(), 1);
}
