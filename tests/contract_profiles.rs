//! CONTRACT §5.1 (interests, recently viewed), §5.2 (site suggestion) and §5.6
//! (profiles), sentence by sentence, through the replay driver.

mod common;

use common::*;
use personalizer::config::{Config, SiteConfig};
use personalizer::decision::{Decision, DecisionBody, DecisionType, Profile};
use serde_json::{json, Value};

const DAY: i64 = 24 * 60;

fn item(sku: &str, path: &[&str]) -> Value {
    json!({"sku": sku, "name": format!("Product {sku}"), "price": 20.0, "currency": "EUR", "category": path})
}

fn viewed(e: &mut Events, who: &str, minutes: i64, sku: &str, path: &[&str]) -> String {
    e.push(shopper_event(
        who,
        minutes,
        "product_viewed",
        json!({"product": item(sku, path)}),
    ))
}

/// (record key, profile, decided_at in seconds after the start) of each profile record.
fn profiles(decisions: &[Decision]) -> Vec<(String, Profile, i64)> {
    decisions
        .iter()
        .filter_map(|d| match &d.body {
            DecisionBody::Profile(p) => Some((
                d.record_key().to_string(),
                (**p).clone(),
                (d.decided_at - at(0)) / 1000,
            )),
            _ => None,
        })
        .collect()
}

/// The last profile published for `key`.
fn last_profile(decisions: &[Decision], key: &str) -> Profile {
    profiles(decisions)
        .into_iter()
        .rev()
        .find(|(k, _, _)| k == key)
        .map(|(_, p, _)| p)
        .unwrap_or_else(|| panic!("no profile for {key} in {decisions:#?}"))
}

fn scores(profile: &Profile) -> Vec<(&str, f64)> {
    profile
        .top_categories
        .iter()
        .map(|c| (c.category.as_str(), c.score))
        .collect()
}

fn replay_with(config: &Config, e: &Events, until: Option<i64>) -> Vec<Decision> {
    replay_lines(config, &e.lines, until).decisions
}

// ---- §5.1 Interests and recently viewed -----------------------------------------------

#[test]
fn each_kind_of_event_adds_its_weight_to_the_products_category_path() {
    let mut e = Events::new();
    viewed(&mut e, "c1", 0, "S1", &["women", "dresses"]); // 1
    e.push(shopper_event(
        "c1",
        0,
        "wishlist_added",
        json!({"product": item("S2", &["women", "shoes"])}),
    )); // 3
    e.push(shopper_event(
        "c1",
        0,
        "cart_item_added",
        json!({"cart_id": "k1", "product": item("S3", &["men"]), "quantity": 5}),
    )); // 4, not per unit
    e.push(shopper_event(
        "c1",
        0,
        "order_completed",
        json!({"order_id": "o1", "items": [
            {"product": item("S4", &["home", "lamps"]), "quantity": 2},
            {"product": item("S5", &["home", "lamps"]), "quantity": 1}],
            "total": 60.0, "currency": "EUR"}),
    )); // 8 per line
    e.push(shopper_event(
        "c1",
        0,
        "category_viewed",
        json!({"category": ["women", "dresses"]}),
    )); // 0.5
    let d = replay(&e, Some(1));
    let p = last_profile(&d, "c1");
    assert_eq!(
        scores(&p),
        vec![
            ("home/lamps", 16.0),
            ("men", 4.0),
            ("women/shoes", 3.0),
            ("women/dresses", 1.5)
        ]
    );
}

#[test]
fn interest_halves_every_fourteen_days() {
    let mut e = Events::new();
    e.push(shopper_event(
        "c1",
        0,
        "cart_item_added",
        json!({"cart_id": "k1", "product": item("S1", &["women"]), "quantity": 1}),
    ));
    viewed(&mut e, "c1", 14 * DAY, "S2", &["men"]);
    let d = replay(&e, Some(14 * DAY + 1));
    let p = last_profile(&d, "c1");
    assert_eq!(scores(&p), vec![("women", 2.0), ("men", 1.0)]);
}

#[test]
fn a_shopper_keeps_at_most_max_categories_paths_dropping_the_lowest() {
    let mut config = Config::default();
    config.rules.interests.max_categories = 2;
    let mut e = Events::new();
    viewed(&mut e, "c1", 0, "S1", &["a"]);
    viewed(&mut e, "c1", 0, "S2", &["a"]);
    viewed(&mut e, "c1", 0, "S3", &["b"]);
    viewed(&mut e, "c1", 0, "S4", &["c"]);
    viewed(&mut e, "c1", 0, "S5", &["c"]);
    let p = last_profile(&replay_with(&config, &e, Some(1)), "c1");
    assert_eq!(scores(&p), vec![("a", 2.0), ("c", 2.0)]);
}

#[test]
fn the_preferred_department_is_the_top_level_with_the_highest_summed_score() {
    let mut e = Events::new();
    // women = 2 + 2 (two paths under it) beats men = 3, though no single women path does.
    viewed(&mut e, "c1", 0, "S1", &["women", "dresses"]);
    viewed(&mut e, "c1", 0, "S2", &["women", "dresses"]);
    viewed(&mut e, "c1", 0, "S3", &["women", "shoes"]);
    viewed(&mut e, "c1", 0, "S4", &["women", "shoes"]);
    e.push(shopper_event(
        "c1",
        0,
        "wishlist_added",
        json!({"product": item("S5", &["men"])}),
    ));
    let p = last_profile(&replay(&e, Some(1)), "c1");
    assert_eq!(p.preferred_department.as_deref(), Some("women"));
    assert_eq!(p.top_categories[0].category, "men");
}

#[test]
fn no_preferred_department_below_the_minimum_score_and_ties_go_alphabetically() {
    let mut e = Events::new();
    viewed(&mut e, "c1", 0, "S1", &["women"]);
    viewed(&mut e, "c1", 0, "S2", &["women"]);
    let p = last_profile(&replay(&e, Some(1)), "c1");
    assert_eq!(p.preferred_department, None, "2 < interests.min_score 3");

    let mut e = Events::new();
    for (n, department) in ["men", "kids"].iter().cycle().take(8).enumerate() {
        viewed(&mut e, "c2", 0, &format!("S{n}"), &[department]);
    }
    let p = last_profile(&replay(&e, Some(1)), "c2");
    assert_eq!(p.preferred_department.as_deref(), Some("kids"));
}

#[test]
fn top_categories_lists_top_n_paths_highest_first_rounded_to_three_decimals() {
    let mut e = Events::new();
    for (n, path) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
        for k in 0..=n {
            viewed(&mut e, "c1", 0, &format!("S{n}-{k}"), &[path]);
        }
    }
    // A day later the scores are no longer whole numbers.
    viewed(&mut e, "c1", DAY, "T1", &["z"]);
    let p = last_profile(&replay(&e, Some(DAY + 1)), "c1");
    assert_eq!(p.top_categories.len(), 5, "interests.top_n");
    let names: Vec<&str> = p
        .top_categories
        .iter()
        .map(|c| c.category.as_str())
        .collect();
    assert_eq!(names, ["f", "e", "d", "c", "b"]);
    // 6 · 2^(−1/14) = 5.7102…, published 10 s after the view, which does not move the
    // third decimal.
    assert_eq!(p.top_categories[0].score, 5.71);
    assert_eq!(p.top_categories[1].score, 4.758, "5 · 2^(−1/14) = 4.7585…");
}

#[test]
fn recently_viewed_holds_the_latest_distinct_skus_newest_first() {
    let mut e = Events::new();
    for n in 0..25 {
        viewed(&mut e, "c1", n, &format!("S{n}"), &["a"]);
    }
    viewed(&mut e, "c1", 30, "S10", &["a"]);
    let p = last_profile(&replay(&e, Some(31)), "c1");
    assert_eq!(p.recently_viewed.len(), 20, "interests.recent_max");
    assert_eq!(p.recently_viewed[0], "S10");
    assert_eq!(p.recently_viewed[1], "S24");
    assert_eq!(p.recently_viewed.iter().filter(|s| *s == "S10").count(), 1);
    assert_eq!(p.recently_viewed[19], "S5");
}

#[test]
fn sign_in_merges_interests_and_views_and_tombstones_the_anonymous_profile() {
    let mut e = Events::new();
    viewed(&mut e, "c1", 0, "S1", &["women"]);
    viewed(&mut e, "anon-1", 1, "S2", &["women"]);
    viewed(&mut e, "anon-1", 1, "S3", &["men"]);
    let sign_in = e.sign_in("c1", "anon-1", 10);
    let d = replay(&e, Some(11));
    // The anonymous shopper had a profile of its own first.
    let anonymous = last_profile(&d, "anon-1");
    assert_eq!(anonymous.recently_viewed, ["S3", "S2"]);
    let tombstone = d
        .iter()
        .find(|d| d.is_tombstone())
        .expect("the anonymous profile gets a tombstone");
    assert_eq!(tombstone.record_key(), "anon-1");
    assert_eq!(tombstone.customer_id, None);
    assert!(tombstone.reason.contains(&sign_in), "{}", tombstone.reason);
    let p = last_profile(&d, "c1");
    assert_eq!(p.anonymous_id.as_deref(), Some("anon-1"));
    assert_eq!(p.recently_viewed, ["S3", "S2", "S1"]);
    let women = p
        .top_categories
        .iter()
        .find(|c| c.category == "women")
        .unwrap();
    assert!((women.score - 2.0).abs() < 0.001, "{women:?}");
    // Nothing more is published for the anonymous key after its tombstone.
    let tombstone_at = d.iter().position(|d| d.is_tombstone()).unwrap();
    assert!(!d[tombstone_at..]
        .iter()
        .any(|d| d.record_key() == "anon-1" && !d.is_tombstone()));
}

// ---- §5.2 Site suggestion --------------------------------------------------------------

fn sites_config() -> Config {
    let mut config = Config::default();
    for (code, countries) in [("au", vec!["AU", "NZ"]), ("us", vec!["US"])] {
        config.rules.sites.insert(
            code.to_string(),
            SiteConfig {
                countries: countries.into_iter().map(String::from).collect(),
            },
        );
    }
    config
}

fn visit(e: &mut Events, who: &str, minutes: i64, site: &str, country: &str, type_: &str) {
    let mut event = shopper_event(who, minutes, type_, json!({"page_type": "home"}));
    if type_ != "page_viewed" {
        event.as_object_mut().unwrap().remove("page_type");
    }
    event["site"] = json!(site);
    event["country"] = json!(country);
    e.push(event);
}

#[test]
fn a_shopper_browsing_from_another_sites_country_is_suggested_that_site() {
    let mut e = Events::new();
    visit(&mut e, "c1", 0, "us", "NZ", "page_viewed");
    let d = replay_with(&sites_config(), &e, Some(1));
    let p = last_profile(&d, "c1");
    assert_eq!(p.site.as_deref(), Some("us"));
    assert_eq!(p.suggested_site.as_deref(), Some("au"));

    visit(&mut e, "c1", 2, "au", "NZ", "page_viewed");
    let p = last_profile(&replay_with(&sites_config(), &e, Some(3)), "c1");
    assert_eq!(p.site.as_deref(), Some("au"));
    assert_eq!(
        p.suggested_site, None,
        "already on the site of their country"
    );
}

#[test]
fn after_site_selected_no_suggestion_until_the_country_changes() {
    let mut e = Events::new();
    visit(&mut e, "c1", 0, "au", "US", "page_viewed");
    visit(&mut e, "c1", 1, "au", "US", "site_selected");
    visit(&mut e, "c1", 2, "au", "US", "page_viewed");
    let p = last_profile(&replay_with(&sites_config(), &e, Some(3)), "c1");
    assert_eq!(p.suggested_site, None);
    visit(&mut e, "c1", 5, "au", "CA", "page_viewed");
    visit(&mut e, "c1", 6, "au", "US", "page_viewed");
    let p = last_profile(&replay_with(&sites_config(), &e, Some(7)), "c1");
    assert_eq!(p.suggested_site.as_deref(), Some("us"));
}

// ---- §5.6 Profiles ---------------------------------------------------------------------

#[test]
fn a_changed_profile_is_published_at_most_once_per_interval_showing_the_latest_state() {
    let mut e = Events::new();
    // Changes at 0 s, 3 s, 9 s and 14 s of stream time; the first starts the 10 s timer.
    for (second, sku) in [(0, "S1"), (3, "S2"), (9, "S3"), (14, "S4")] {
        let mut v = shopper_event(
            "c1",
            0,
            "product_viewed",
            json!({"product": item(sku, &["a"])}),
        );
        v["occurred_at"] = json!(personalizer::time::format_rfc3339(at(0) + second * 1000));
        e.push(v);
    }
    let d = replay(&e, Some(2));
    let published = profiles(&d);
    let times: Vec<i64> = published.iter().map(|(_, _, t)| *t).collect();
    assert_eq!(times, [10, 24]);
    assert_eq!(published[0].1.recently_viewed, ["S3", "S2", "S1"]);
    assert_eq!(published[1].1.recently_viewed, ["S4", "S3", "S2", "S1"]);
    let reason = &d
        .iter()
        .find(|d| matches!(d.body, DecisionBody::Profile(_)))
        .unwrap()
        .reason;
    assert!(reason.contains("changed 3 times"), "{reason}");
}

#[test]
fn an_unchanged_profile_is_not_published_again() {
    let mut e = Events::new();
    viewed(&mut e, "c1", 0, "S1", &["a"]);
    e.view("c1", 5); // a page view changes nothing the profile shows
    let d = replay(&e, Some(DAY));
    assert_eq!(profiles(&d).len(), 1);
}

#[test]
fn anonymous_shoppers_have_profiles_keyed_by_anonymous_id() {
    let mut e = Events::new();
    viewed(&mut e, "anon-7", 0, "S1", &["a"]);
    let d = replay(&e, Some(1));
    let profile = d
        .iter()
        .find(|d| matches!(d.body, DecisionBody::Profile(_)))
        .unwrap();
    assert_eq!(profile.customer_id, None);
    assert_eq!(profile.record_key(), "anon-7");
    let line: Value = serde_json::to_value(profile).unwrap();
    assert_eq!(line["customer_id"], Value::Null);
    assert_eq!(line["anonymous_id"], "anon-7");
}

#[test]
fn the_profile_carries_consent_and_orders() {
    let mut e = Events::new();
    e.consent("c1", 0, false);
    e.order("c1", 1, None);
    e.order("c1", 2, None);
    let p = last_profile(&replay(&e, Some(3)), "c1");
    assert_eq!(p.consent, Some(false));
    assert_eq!(p.orders, 2);
    assert_eq!(p.last_order_at, Some(at(2)));
}

#[test]
fn an_erased_customer_gets_a_tombstone_and_nothing_else() {
    let mut e = Events::new();
    viewed(&mut e, "c1", 0, "S1", &["a"]);
    let erase = e.erase("c1", 5);
    viewed(&mut e, "c1", 6, "S2", &["b"]);
    let d = replay(&e, Some(DAY));
    let for_c1: Vec<&Decision> = d
        .iter()
        .filter(|d| d.record_key() == "c1" && d.decision_type() == DecisionType::Profile)
        .collect();
    assert_eq!(for_c1.len(), 3, "{for_c1:#?}");
    assert!(for_c1[1].is_tombstone());
    assert!(for_c1[1].reason.contains(&erase));
    // New events after the erasure start a new profile that knows nothing from before.
    let p = last_profile(&d, "c1");
    assert_eq!(p.recently_viewed, ["S2"]);
}

#[test]
fn erasure_before_the_first_publish_cancels_it_and_sends_no_tombstone() {
    let mut e = Events::new();
    let mut v = shopper_event(
        "c1",
        0,
        "product_viewed",
        json!({"product": item("S1", &["a"])}),
    );
    v["occurred_at"] = json!(ts(0));
    e.push(v);
    e.push(json!({"type": "customer_erased", "occurred_at": personalizer::time::format_rfc3339(at(0) + 2000), "customer_id": "c1"}));
    let d = replay(&e, Some(DAY));
    assert!(
        !d.iter().any(|d| d.decision_type() == DecisionType::Profile),
        "{d:#?}"
    );
}
