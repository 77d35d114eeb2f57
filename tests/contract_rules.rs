//! CONTRACT §3, sentence by sentence, through the replay driver.

mod common;

use common::*;
use personalizer::config::Config;
use personalizer::decision::{Decision, DecisionBody};

const DAY: i64 = 24 * 60;

/// The email decisions of a replay (this file is about §3; profiles are published
/// beside them and checked in `contract_profiles.rs`).
fn replay(events: &Events, until_minutes: Option<i64>) -> Vec<Decision> {
    emails(common::replay(events, until_minutes))
}

fn c1(step: u32, minute: i64) -> (String, u32, i64) {
    ("c1".to_string(), step, minute)
}

// ---- Abandoned cart ------------------------------------------------------------------

#[test]
fn an_identified_cart_is_reminded_at_last_activity_plus_each_reminder() {
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    let d = replay(&e, Some(3 * DAY));
    assert_eq!(reminders(&d), vec![c1(1, 60), c1(2, DAY)]);
}

#[test]
fn a_reminder_carries_what_the_email_needs() {
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 2);
    let last_change = e.add("c1", 5, "k1", "S2", 1);
    let d = replay(&e, Some(120));
    assert_eq!(d.len(), 1);
    let decision = &d[0];
    assert_eq!(decision.customer_id.as_deref(), Some("c1"));
    assert_eq!(decision.decided_at, at(65));
    assert!(
        decision.reason.contains("abandoned_cart step 1"),
        "{}",
        decision.reason
    );
    assert!(
        decision.reason.contains(&last_change),
        "{}",
        decision.reason
    );
    match &decision.body {
        DecisionBody::AbandonedCart {
            cart_id,
            step,
            items,
            cart_value,
            currency,
            last_activity_at,
        } => {
            assert_eq!((cart_id.as_str(), *step), ("k1", 1));
            assert_eq!(items.len(), 2);
            assert_eq!(items[0].quantity, 2);
            assert_eq!(items[0].url.as_deref(), Some("https://shop.example/p/S1"));
            assert_eq!(*cart_value, 60.0);
            assert_eq!(currency.as_deref(), Some("EUR"));
            assert_eq!(*last_activity_at, at(5));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_anonymous_cart_is_not_reminded() {
    let mut e = Events::new();
    e.add("anon-1", 0, "k1", "S1", 1);
    assert!(replay(&e, Some(3 * DAY)).is_empty());
}

#[test]
fn a_shopper_identified_through_signed_in_is_reminded_for_the_anonymous_cart() {
    let mut e = Events::new();
    e.add("anon-1", 0, "k1", "S1", 1);
    e.sign_in("c1", "anon-1", 10);
    let d = replay(&e, Some(3 * DAY));
    assert_eq!(reminders(&d), vec![c1(1, 70), c1(2, 10 + DAY)]);
}

#[test]
fn activity_only_moves_the_due_time_later() {
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    e.view("c1", 30);
    e.view("c1", 50);
    // A late event (older than the last activity) does not pull the due time earlier.
    e.view("c1", 10);
    let d = replay(&e, Some(3 * 60));
    assert_eq!(reminders(&d), vec![c1(1, 110)]);
}

#[test]
fn activity_between_steps_postpones_the_next_step() {
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    e.view("c1", 120); // after step 1 (at 60), before step 2
    let d = replay(&e, Some(3 * DAY));
    assert_eq!(reminders(&d), vec![c1(1, 60), c1(2, 120 + DAY)]);
}

#[test]
fn each_step_is_sent_once_and_a_content_change_restarts_at_step_one() {
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    e.add("c1", 90, "k1", "S2", 1); // after step 1: new contents
    e.remove("c1", 200, "k1", "S2", 1); // after step 1 again: new contents again
    let d = replay(&e, Some(3 * DAY));
    assert_eq!(
        reminders(&d),
        vec![c1(1, 60), c1(1, 150), c1(1, 260), c1(2, 200 + DAY)]
    );
    let ids: std::collections::HashSet<&str> = d.iter().map(|x| x.decision_id.as_str()).collect();
    assert_eq!(ids.len(), d.len(), "every decision has its own id");
}

#[test]
fn activity_without_a_content_change_does_not_repeat_a_step() {
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    e.view("c1", 70); // after step 1
    e.view("c1", 75);
    let d = replay(&e, Some(DAY / 2));
    assert_eq!(reminders(&d), vec![c1(1, 60)]);
}

#[test]
fn order_completed_ends_the_reminders() {
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    e.order("c1", 70, Some("k1"));
    let d = replay(&e, Some(3 * DAY));
    assert_eq!(reminders(&d), vec![c1(1, 60)]);
}

#[test]
fn an_order_without_a_cart_id_still_ends_the_reminders() {
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    e.order("c1", 30, None);
    assert!(replay(&e, Some(3 * DAY)).is_empty());
}

#[test]
fn cart_cleared_ends_the_reminders() {
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    e.clear("c1", 30, "k1");
    assert!(replay(&e, Some(3 * DAY)).is_empty());
}

#[test]
fn removing_the_last_item_ends_the_reminders() {
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 2);
    e.remove("c1", 30, "k1", "S1", 5); // more than is there empties the line
    assert!(replay(&e, Some(3 * DAY)).is_empty());
}

#[test]
fn a_cart_filled_again_after_it_ended_starts_at_step_one() {
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    e.clear("c1", 30, "k1");
    e.add("c1", 40, "k1", "S2", 1);
    let d = replay(&e, Some(200));
    assert_eq!(reminders(&d), vec![c1(1, 100)]);
}

// ---- Back in stock -------------------------------------------------------------------

#[test]
fn a_restock_notifies_every_valid_request_once_oldest_first() {
    let mut e = Events::new();
    e.stock("S1", 0, 0);
    e.notify_me("c2", 10, "S1");
    e.notify_me("c1", 5, "S1"); // older, though it arrives later
    e.stock("S1", 60, 5);
    e.stock("S1", 70, 0);
    e.stock("S1", 80, 5); // the requests are gone: nothing more
    let d = replay(&e, None);
    assert_eq!(
        restock_notices(&d),
        vec![("c1".into(), "S1".into()), ("c2".into(), "S1".into())]
    );
}

#[test]
fn a_back_in_stock_decision_carries_the_product_and_the_request() {
    let mut e = Events::new();
    e.stock("S1", 0, 0);
    let request = e.notify_me("c1", 10, "S1");
    let restock = e.stock("S1", 60, 7);
    let d = replay(&e, None);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].decided_at, at(60));
    assert!(
        d[0].reason.contains(&request) && d[0].reason.contains(&restock),
        "{}",
        d[0].reason
    );
    match &d[0].body {
        DecisionBody::BackInStock {
            sku,
            product,
            requested_at,
            quantity_available,
        } => {
            assert_eq!(sku, "S1");
            assert_eq!(product.name.as_deref(), Some("Product S1"));
            assert_eq!(*requested_at, at(10));
            assert_eq!(*quantity_available, 7);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_request_for_a_sku_of_unknown_stock_waits_for_its_first_stock() {
    let mut e = Events::new();
    e.notify_me("c1", 0, "S9");
    e.stock("S9", 30, 2);
    assert_eq!(
        restock_notices(&replay(&e, None)),
        vec![("c1".into(), "S9".into())]
    );
}

#[test]
fn a_request_for_a_sku_in_stock_does_nothing() {
    let mut e = Events::new();
    e.stock("S1", 0, 4);
    e.notify_me("c1", 10, "S1");
    e.stock("S1", 20, 0);
    e.stock("S1", 30, 4);
    assert!(replay(&e, None).is_empty());
}

#[test]
fn only_a_move_from_zero_is_a_restock() {
    let mut e = Events::new();
    e.stock("S1", 0, 0);
    e.notify_me("c1", 5, "S1");
    e.stock("S1", 10, 0);
    let d = replay(&e, None);
    assert!(d.is_empty());
    e.stock("S1", 20, 3);
    e.stock("S1", 30, 9); // 3 → 9 is not a restock
    assert_eq!(replay(&e, None).len(), 1);
}

#[test]
fn requests_expire_after_request_ttl() {
    let mut e = Events::new();
    e.stock("S1", 0, 0);
    e.notify_me("c1", 0, "S1");
    e.notify_me("c2", 2 * DAY, "S1");
    e.stock("S1", 30 * DAY + 1, 5); // c1's request is 30 days and a minute old
    assert_eq!(
        restock_notices(&replay(&e, None)),
        vec![("c2".into(), "S1".into())]
    );
}

#[test]
fn max_per_unit_caps_a_restock_and_keeps_the_rest_for_the_next() {
    let mut config = Config::default();
    config.rules.back_in_stock.max_per_unit = Some(1);
    let mut e = Events::new();
    e.stock("S1", 0, 0);
    for (i, who) in ["c1", "c2", "c3"].iter().enumerate() {
        e.notify_me(who, 1 + i as i64, "S1");
    }
    e.stock("S1", 10, 2);
    e.stock("S1", 20, 0);
    e.stock("S1", 30, 1);
    let d = emails(replay_lines(&config, &e.lines, None).decisions);
    let served: Vec<String> = restock_notices(&d).into_iter().map(|(c, _)| c).collect();
    assert_eq!(served, vec!["c1", "c2", "c3"]);
    assert_eq!(d[2].decided_at, at(30));
}

// ---- Consent and erasure -------------------------------------------------------------

#[test]
fn no_email_decisions_after_consent_is_withdrawn_until_it_is_given_again() {
    let mut e = Events::new();
    e.consent("c1", 0, false);
    e.add("c1", 1, "k1", "S1", 1);
    e.stock("S1", 2, 0);
    e.notify_me("c1", 3, "S1");
    e.stock("S1", 10, 5);
    let d = replay(&e, Some(3 * DAY));
    assert!(d.is_empty(), "{d:?}");
    e.consent("c1", 3 * DAY + 1, true);
    e.add("c1", 3 * DAY + 2, "k1", "S2", 1);
    let d = replay(&e, Some(4 * DAY));
    assert_eq!(reminders(&d), vec![c1(1, 3 * DAY + 62)]);
}

#[test]
fn with_require_consent_unknown_consent_counts_as_refused() {
    let mut config = Config::default();
    config.rules.require_consent = true;
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    e.add("c2", 0, "k2", "S1", 1);
    e.consent("c2", 1, true);
    let d = emails(replay_lines(&config, &e.lines, Some(120)).decisions);
    assert_eq!(reminders(&d), vec![("c2".to_string(), 1, 60)]);
}

#[test]
fn erasure_cancels_pending_reminders_and_requests_for_good() {
    let mut e = Events::new();
    e.stock("S1", 0, 0);
    e.add("c1", 1, "k1", "S1", 1);
    e.notify_me("c1", 2, "S1");
    e.erase("c1", 30);
    e.stock("S1", 40, 5);
    assert!(replay(&e, Some(3 * DAY)).is_empty());
}

#[test]
fn erasure_also_forgets_the_anonymous_history_merged_into_the_customer() {
    let mut e = Events::new();
    e.stock("S1", 0, 0);
    e.notify_me("anon-1", 1, "S1");
    e.sign_in("c1", "anon-1", 2);
    e.erase("c1", 3);
    e.add("anon-1", 4, "k9", "S2", 1); // the device is anonymous again
    e.stock("S1", 10, 5);
    assert!(replay(&e, Some(3 * DAY)).is_empty());
}

#[test]
fn a_customer_erased_then_active_again_is_treated_as_new() {
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    e.erase("c1", 10);
    e.add("c1", 100, "k2", "S2", 1);
    let d = replay(&e, Some(200));
    assert_eq!(reminders(&d), vec![c1(1, 160)]);
}

// ---- Duplicates ----------------------------------------------------------------------

#[test]
fn an_event_id_seen_within_the_dedupe_window_is_skipped() {
    let mut e = Events::new();
    let first = e.add("c1", 0, "k1", "S1", 1);
    let again = e.lines[0].clone();
    e.lines.push(again); // exact redelivery
    let d = replay(&e, Some(120));
    match &d[0].body {
        DecisionBody::AbandonedCart { items, .. } => {
            assert_eq!(items[0].quantity, 1, "{first} counted once")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_event_id_seen_longer_ago_than_the_window_is_processed_again() {
    let mut e = Events::new();
    e.push(
        serde_json::json!({"event_id": "dup", "type": "cart_item_added", "occurred_at": ts(0),
        "customer_id": "c1", "cart_id": "k1", "product": product("S1"), "quantity": 1}),
    );
    e.order("c1", 10, Some("k1"));
    e.push(serde_json::json!({"event_id": "dup", "type": "cart_item_added", "occurred_at": ts(DAY + 30),
        "customer_id": "c1", "cart_id": "k1", "product": product("S1"), "quantity": 1}));
    let d = replay(&e, Some(DAY + 120));
    assert_eq!(reminders(&d), vec![c1(1, DAY + 90)]);
}

#[test]
fn a_redelivered_duplicate_does_not_move_stream_time() {
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    let late_copy = e.lines[0].replace(&ts(0), &ts(500));
    e.lines.push(late_copy); // same id, claims a later time: skipped entirely
    assert!(replay(&e, None).is_empty());
}

// ---- Stitching -----------------------------------------------------------------------

#[test]
fn after_sign_in_anonymous_only_events_count_as_the_customers_activity() {
    let mut e = Events::new();
    e.add("anon-1", 0, "k1", "S1", 1);
    e.sign_in("c1", "anon-1", 5);
    e.view("anon-1", 40); // the device no longer sends the customer id
    let d = replay(&e, Some(3 * 60));
    assert_eq!(reminders(&d), vec![c1(1, 100)]);
}

#[test]
fn a_notify_me_made_anonymously_reaches_the_customer_after_sign_in() {
    let mut e = Events::new();
    e.stock("S1", 0, 0);
    e.notify_me("anon-1", 1, "S1");
    e.sign_in("c1", "anon-1", 2);
    e.stock("S1", 10, 5);
    assert_eq!(
        restock_notices(&replay(&e, None)),
        vec![("c1".into(), "S1".into())]
    );
}

#[test]
fn an_anonymous_cart_older_than_the_customers_order_is_not_reminded() {
    let mut e = Events::new();
    e.add("anon-1", 0, "k9", "S2", 1);
    e.add("c1", 1, "k1", "S1", 1);
    e.order("c1", 2, Some("k1"));
    e.sign_in("c1", "anon-1", 3);
    assert!(replay(&e, Some(3 * DAY)).is_empty());
}

#[test]
fn carts_of_the_customer_and_the_anonymous_device_are_merged() {
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    e.add("anon-1", 1, "k1", "S2", 1);
    e.sign_in("c1", "anon-1", 2);
    let d = replay(&e, Some(120));
    match &d[0].body {
        DecisionBody::AbandonedCart { items, .. } => assert_eq!(items.len(), 2),
        other => panic!("{other:?}"),
    }
}

// ---- Sign-in merges carts ------------------------------------------------------------

/// A reminder as (cart, step, minute, [(sku, quantity)]).
type CartReminder = (String, u32, i64, Vec<(String, u32)>);

fn cart_reminders(decisions: &[personalizer::decision::Decision]) -> Vec<CartReminder> {
    decisions
        .iter()
        .filter_map(|d| match &d.body {
            DecisionBody::AbandonedCart {
                cart_id,
                step,
                items,
                ..
            } => Some((
                cart_id.clone(),
                *step,
                (d.decided_at - at(0)) / 60_000,
                items.iter().map(|i| (i.sku.clone(), i.quantity)).collect(),
            )),
            _ => None,
        })
        .collect()
}

fn items(list: &[(&str, u32)]) -> Vec<(String, u32)> {
    list.iter().map(|(s, q)| (s.to_string(), *q)).collect()
}

#[test]
fn at_sign_in_the_anonymous_lines_join_the_customers_open_cart() {
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    e.add("anon-1", 1, "g1", "S1", 2);
    e.add("anon-1", 2, "g1", "S2", 1);
    e.sign_in("c1", "anon-1", 5);
    let d = replay(&e, Some(3 * DAY));
    // One cart, the customer's id, quantities summed; step 1 due after the sign-in.
    let merged = items(&[("S1", 3), ("S2", 1)]);
    assert_eq!(
        cart_reminders(&d),
        vec![
            ("k1".to_string(), 1, 65, merged.clone()),
            ("k1".to_string(), 2, 5 + DAY, merged),
        ]
    );
}

#[test]
fn a_customer_without_an_open_cart_takes_the_anonymous_cart() {
    let mut e = Events::new();
    e.view("c1", 0);
    e.add("anon-1", 1, "g1", "S1", 1);
    e.sign_in("c1", "anon-1", 5);
    let d = replay(&e, Some(3 * DAY));
    let guest = items(&[("S1", 1)]);
    assert_eq!(
        cart_reminders(&d),
        vec![
            ("g1".to_string(), 1, 65, guest.clone()),
            ("g1".to_string(), 2, 5 + DAY, guest),
        ]
    );
}

#[test]
fn a_merge_after_a_reminder_starts_again_at_step_one() {
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    e.add("anon-1", 90, "g1", "S2", 1);
    let sign_in = e.sign_in("c1", "anon-1", 100);
    let d = replay(&e, Some(3 * DAY));
    let before = items(&[("S1", 1)]);
    let merged = items(&[("S1", 1), ("S2", 1)]);
    assert_eq!(
        cart_reminders(&d),
        vec![
            ("k1".to_string(), 1, 60, before),
            ("k1".to_string(), 1, 160, merged.clone()),
            ("k1".to_string(), 2, 100 + DAY, merged),
        ]
    );
    // The new step 1 is another email: its evidence is the sign-in, its id differs.
    assert_ne!(d[0].decision_id, d[1].decision_id);
    assert!(d[1].reason.contains(&sign_in), "{}", d[1].reason);
}

#[test]
fn an_erased_customer_signing_in_again_gets_only_the_new_cart() {
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    e.erase("c1", 10);
    e.add("anon-1", 20, "g1", "S2", 1);
    e.sign_in("c1", "anon-1", 30);
    let d = replay(&e, Some(3 * DAY));
    let guest = items(&[("S2", 1)]);
    assert_eq!(
        cart_reminders(&d),
        vec![
            ("g1".to_string(), 1, 90, guest.clone()),
            ("g1".to_string(), 2, 30 + DAY, guest),
        ]
    );
}
