//! CONTRACT §5.3 (customer segments), sentence by sentence, through the replay driver.

mod common;

use common::*;
use personalizer::decision::{Decision, DecisionBody, Profile, Rfm, SegmentChange};
use serde_json::json;

const DAY: i64 = 24 * 60;

fn order(e: &mut Events, who: &str, minutes: i64, total: f64) -> String {
    let fields = json!({"order_id": format!("o-{who}-{minutes}"),
        "items": [{"product": {"sku": "S1", "category": ["home", "lamps"]}, "quantity": 1}],
        "total": total, "currency": "EUR"});
    e.push(shopper_event(who, minutes, "order_completed", fields))
}

/// (segment, change, decided_at in minutes) of each segment change of `who`.
fn changes(decisions: &[Decision], who: &str) -> Vec<(String, SegmentChange, i64)> {
    decisions
        .iter()
        .filter(|d| d.customer_id.as_deref() == Some(who))
        .filter_map(|d| match &d.body {
            DecisionBody::SegmentChanged { segment, change } => {
                Some((segment.clone(), *change, (d.decided_at - at(0)) / 60_000))
            }
            _ => None,
        })
        .collect()
}

fn entered(segment: &str, minute: i64) -> (String, SegmentChange, i64) {
    (segment.to_string(), SegmentChange::Entered, minute)
}

fn exited(segment: &str, minute: i64) -> (String, SegmentChange, i64) {
    (segment.to_string(), SegmentChange::Exited, minute)
}

fn last_profile(decisions: &[Decision], key: &str) -> Profile {
    decisions
        .iter()
        .rev()
        .find_map(|d| match &d.body {
            DecisionBody::Profile(p) if d.record_key() == key => Some((**p).clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no profile for {key}"))
}

#[test]
fn a_customer_without_orders_is_a_prospect() {
    let mut e = Events::new();
    e.view("c1", 0);
    let d = replay(&e, Some(1));
    assert_eq!(changes(&d, "c1"), vec![entered("lifecycle:prospect", 0)]);
}

#[test]
fn lifecycle_moves_new_active_at_risk_lapsed_on_timers_at_exact_boundaries() {
    let mut e = Events::new();
    e.view("c1", 0);
    order(&mut e, "c1", 10, 20.0);
    let d = replay(&e, Some(400 * DAY));
    let lifecycle: Vec<_> = changes(&d, "c1")
        .into_iter()
        .filter(|(s, _, _)| s.starts_with("lifecycle:"))
        .collect();
    assert_eq!(
        lifecycle,
        vec![
            entered("lifecycle:prospect", 0),
            exited("lifecycle:prospect", 10),
            entered("lifecycle:new", 10),
            exited("lifecycle:new", 10 + 30 * DAY),
            entered("lifecycle:active", 10 + 30 * DAY),
            exited("lifecycle:active", 10 + 90 * DAY),
            entered("lifecycle:at_risk", 10 + 90 * DAY),
            exited("lifecycle:at_risk", 10 + 180 * DAY),
            entered("lifecycle:lapsed", 10 + 180 * DAY),
        ]
    );
    let time_driven = d
        .iter()
        .find(|d| d.reason.contains("lifecycle:active entered"))
        .unwrap();
    assert!(
        time_driven.reason.contains("as stream time reached"),
        "{}",
        time_driven.reason
    );
}

#[test]
fn a_new_order_brings_a_lapsed_customer_back_to_active() {
    let mut e = Events::new();
    order(&mut e, "c1", 0, 20.0);
    order(&mut e, "c1", 200 * DAY, 20.0);
    let d = replay(&e, Some(200 * DAY + 1));
    let last: Vec<_> = changes(&d, "c1")
        .into_iter()
        .filter(|(s, _, m)| s.starts_with("lifecycle:") && *m == 200 * DAY)
        .collect();
    assert_eq!(
        last,
        vec![
            exited("lifecycle:lapsed", 200 * DAY),
            entered("lifecycle:active", 200 * DAY)
        ]
    );
}

#[test]
fn high_value_is_entered_at_the_threshold_and_left_when_orders_age_out() {
    let mut e = Events::new();
    order(&mut e, "c1", 0, 300.0);
    order(&mut e, "c1", DAY, 200.0);
    let d = replay(&e, Some(400 * DAY));
    let high: Vec<_> = changes(&d, "c1")
        .into_iter()
        .filter(|(s, _, _)| s == "high_value")
        .collect();
    assert_eq!(
        high,
        vec![entered("high_value", DAY), exited("high_value", 365 * DAY)]
    );
}

#[test]
fn rfm_groups_follow_recency_and_frequency_and_the_profile_carries_the_scores() {
    let mut e = Events::new();
    for n in 0..4 {
        order(&mut e, "c1", n * DAY, 50.0);
    }
    let d = replay(&e, Some(3 * DAY + 1));
    let p = last_profile(&d, "c1");
    assert_eq!(
        p.rfm,
        Some(Rfm { r: 5, f: 4, m: 3 }),
        "200 reaches 50 and 150"
    );
    assert!(p.segments.contains(&"rfm:champions".to_string()), "{p:?}");
    // Two months without an order: R 3 (≤ 120 days), F 4: loyal.
    let d = replay(&e, Some(3 * DAY + 61 * DAY));
    let group: Vec<_> = changes(&d, "c1")
        .into_iter()
        .filter(|(s, c, _)| s.starts_with("rfm:") && *c == SegmentChange::Entered)
        .map(|(s, _, _)| s)
        .collect();
    assert_eq!(
        group,
        [
            "rfm:new",
            "rfm:potential_loyalist",
            "rfm:champions",
            "rfm:loyal"
        ]
    );
}

#[test]
fn the_preferred_department_is_an_interest_segment() {
    let mut e = Events::new();
    for n in 0..3 {
        e.push(
            json!({"type": "wishlist_added", "occurred_at": ts(n), "customer_id": "c1",
            "product": {"sku": format!("S{n}"), "category": ["women", "dresses"]}}),
        );
    }
    let d = replay(&e, Some(10));
    assert!(changes(&d, "c1").contains(&entered("interest:women", 0)));
    let p = last_profile(&d, "c1");
    assert_eq!(
        p.segments,
        ["interest:women", "lifecycle:prospect"],
        "sorted"
    );
}

#[test]
fn cart_abandoner_after_a_reminder_until_seven_days_pass_or_an_order() {
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    let d = replay(&e, Some(10 * DAY));
    let abandoner: Vec<_> = changes(&d, "c1")
        .into_iter()
        .filter(|(s, _, _)| s == "cart_abandoner")
        .collect();
    // Step 1 at 60 minutes, step 2 at 24 hours: seven days after the latest.
    assert_eq!(
        abandoner,
        vec![
            entered("cart_abandoner", 60),
            exited("cart_abandoner", DAY + 7 * DAY)
        ]
    );

    let mut e = Events::new();
    e.add("c2", 0, "k1", "S1", 1);
    order(&mut e, "c2", 120, 20.0);
    let d = replay(&e, Some(10 * DAY));
    let abandoner: Vec<_> = changes(&d, "c2")
        .into_iter()
        .filter(|(s, _, _)| s == "cart_abandoner")
        .collect();
    assert_eq!(
        abandoner,
        vec![entered("cart_abandoner", 60), exited("cart_abandoner", 120)]
    );
}

#[test]
fn anonymous_shoppers_have_no_segments_until_they_sign_in() {
    let mut e = Events::new();
    order(&mut e, "anon-1", 0, 600.0);
    let d = replay(&e, Some(10));
    assert!(d
        .iter()
        .all(|d| !matches!(d.body, DecisionBody::SegmentChanged { .. })));
    // After sign-in the guest order is the customer's.
    e.sign_in("c1", "anon-1", 20);
    let d = replay(&e, Some(30));
    let now: Vec<_> = changes(&d, "c1")
        .into_iter()
        .filter(|(_, c, _)| *c == SegmentChange::Entered)
        .map(|(s, _, _)| s)
        .collect();
    // The guest order's lamps (8 points) make home their preferred department too.
    assert_eq!(
        now,
        ["high_value", "interest:home", "lifecycle:new", "rfm:new"]
    );
}

#[test]
fn each_change_has_its_own_stable_id_and_names_its_evidence() {
    let mut e = Events::new();
    let first = order(&mut e, "c1", 0, 20.0);
    let a = replay(&e, Some(100 * DAY));
    let b = replay(&e, Some(100 * DAY));
    assert_eq!(a, b);
    let ids: std::collections::HashSet<&str> = a.iter().map(|d| d.decision_id.as_str()).collect();
    assert_eq!(ids.len(), a.len());
    let entered_new = a
        .iter()
        .find(|d| d.reason.contains("lifecycle:new entered"))
        .unwrap();
    assert!(
        entered_new.reason.contains(&first),
        "{}",
        entered_new.reason
    );
}

#[test]
fn erasure_ends_segments_without_more_changes() {
    let mut e = Events::new();
    order(&mut e, "c1", 0, 20.0);
    e.erase("c1", 10);
    let d = replay(&e, Some(400 * DAY));
    assert!(changes(&d, "c1").iter().all(|(_, _, m)| *m == 0), "{d:#?}");
}
