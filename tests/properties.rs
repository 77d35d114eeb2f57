//! Property tests over generated event streams (proptest): replay is deterministic and
//! resumable, no decision is emitted twice, nobody who ordered after their last cart
//! change is reminded, and nobody erased or unconsented gets a decision.

mod common;

use common::*;
use personalizer::config::Config;
use personalizer::decision::{Decision, DecisionBody};
use proptest::prelude::*;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

const CUSTOMERS: [&str; 2] = ["c1", "c2"];
const ANONYMOUS: [&str; 2] = ["anon-1", "anon-2"];
const SKUS: [&str; 2] = ["S1", "S2"];
const CARTS: [&str; 2] = ["k1", "k2"];

#[derive(Debug, Clone)]
enum Op {
    Add(usize, usize, usize, i64),
    Remove(usize, usize, usize, i64),
    Clear(usize, usize),
    View(usize),
    Order(usize),
    NotifyMe(usize, usize),
    SignIn(usize, usize),
    Stock(usize, i64),
    Consent(usize, bool),
    Erase(usize),
    /// Redeliver the previous event unchanged.
    Duplicate,
}

/// Shoppers 0-1 are customers, 2-3 anonymous devices.
fn who(index: usize) -> &'static str {
    if index < 2 {
        CUSTOMERS[index]
    } else {
        ANONYMOUS[index - 2]
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4usize, 0..2usize, 0..2usize, 1..3i64).prop_map(|(w, c, s, q)| Op::Add(w, c, s, q)),
        2 => (0..4usize, 0..2usize, 0..2usize, 1..3i64).prop_map(|(w, c, s, q)| Op::Remove(w, c, s, q)),
        1 => (0..4usize, 0..2usize).prop_map(|(w, c)| Op::Clear(w, c)),
        3 => (0..4usize).prop_map(Op::View),
        1 => (0..4usize).prop_map(Op::Order),
        2 => (0..4usize, 0..2usize).prop_map(|(w, s)| Op::NotifyMe(w, s)),
        1 => (0..2usize, 0..2usize).prop_map(|(c, a)| Op::SignIn(c, a)),
        2 => (0..2usize, 0..3i64).prop_map(|(s, q)| Op::Stock(s, q)),
        1 => (0..2usize, any::<bool>()).prop_map(|(c, g)| Op::Consent(c, g)),
        1 => (0..2usize).prop_map(Op::Erase),
        1 => Just(Op::Duplicate),
    ]
}

/// Minutes between events: mostly short, now and then long enough for step 2.
fn gap() -> impl Strategy<Value = i64> {
    prop_oneof![6 => 0..40i64, 3 => 40..200i64, 1 => 600..2000i64]
}

fn stream() -> impl Strategy<Value = Vec<(i64, Op)>> {
    prop::collection::vec((gap(), op()), 1..60)
}

fn build(ops: &[(i64, Op)]) -> (Events, i64) {
    let mut e = Events::new();
    let mut minute = 0;
    for (gap, op) in ops {
        minute += gap;
        match op {
            Op::Add(w, c, s, q) => drop(e.add(who(*w), minute, CARTS[*c], SKUS[*s], *q)),
            Op::Remove(w, c, s, q) => drop(e.remove(who(*w), minute, CARTS[*c], SKUS[*s], *q)),
            Op::Clear(w, c) => drop(e.clear(who(*w), minute, CARTS[*c])),
            Op::View(w) => drop(e.view(who(*w), minute)),
            Op::Order(w) => drop(e.order(who(*w), minute, None)),
            Op::NotifyMe(w, s) => drop(e.notify_me(who(*w), minute, SKUS[*s])),
            Op::SignIn(c, a) => drop(e.sign_in(CUSTOMERS[*c], ANONYMOUS[*a], minute)),
            Op::Stock(s, q) => drop(e.stock(SKUS[*s], minute, *q)),
            Op::Consent(c, g) => drop(e.consent(CUSTOMERS[*c], minute, *g)),
            Op::Erase(c) => drop(e.erase(CUSTOMERS[*c], minute)),
            Op::Duplicate => {
                if let Some(last) = e.lines.last().cloned() {
                    e.lines.push(last);
                }
            }
        }
    }
    (e, minute + 3 * 24 * 60)
}

/// What the checker needs of each distinct input event, in input order.
struct Seen {
    id: String,
    time: i64,
    kind: String,
    customer: Option<String>,
    anonymous: Option<String>,
    email_marketing: Option<bool>,
}

fn distinct_events(lines: &[String]) -> Vec<Seen> {
    let mut ids = HashSet::new();
    let mut out = Vec::new();
    for line in lines {
        let v: Value = serde_json::from_str(line).unwrap();
        if !ids.insert(v["event_id"].as_str().unwrap().to_string()) {
            continue;
        }
        out.push(Seen {
            id: v["event_id"].as_str().unwrap().to_string(),
            time: personalizer::time::parse_rfc3339(v["occurred_at"].as_str().unwrap()).unwrap(),
            kind: v["type"].as_str().unwrap().to_string(),
            customer: v["customer_id"].as_str().map(str::to_string),
            anonymous: v["anonymous_id"].as_str().map(str::to_string),
            email_marketing: v["email_marketing"].as_bool(),
        });
    }
    out
}

/// The customer an event belongs to, following sign-ins as the engine does.
fn owner(e: &Seen, aliases: &HashMap<String, String>) -> Option<String> {
    e.customer
        .clone()
        .or_else(|| e.anonymous.as_ref().and_then(|a| aliases.get(a).cloned()))
}

/// The events that came before decision `d` was made: up to the event that triggered
/// it (a restock names its event, before which it is decided; a segment change names
/// the event after which it is), else those strictly before its time (a timer fires
/// before any event at its due time).
fn before<'e>(d: &Decision, events: &'e [Seen]) -> impl Iterator<Item = (usize, &'e Seen)> {
    let named = |marker: &str| {
        d.reason
            .split(marker)
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .map(|id| {
                events
                    .iter()
                    .position(|e| e.id == id)
                    .unwrap_or_else(|| panic!("{d:?} names an event that is not in the input"))
            })
    };
    // (index, whether the named event itself came before the decision)
    let trigger = named("restocked by event ")
        .map(|t| (t, false))
        .or_else(|| named("after event ").map(|t| (t, true)));
    let decided_at = d.decided_at;
    events
        .iter()
        .enumerate()
        .filter(move |(i, e)| match trigger {
            Some((t, inclusive)) => *i < t || (inclusive && *i == t),
            None => e.time < decided_at,
        })
}

/// Checks one decision against everything that happened before it was made.
fn check_decision(d: &Decision, events: &[Seen], require_consent: bool) -> Result<(), String> {
    // Profiles of anonymous shoppers and tombstones promise nothing checked here.
    let Some(customer) = d.customer_id.as_deref() else {
        return Ok(());
    };
    if d.is_tombstone() {
        return Ok(());
    }
    let mut aliases: HashMap<String, String> = HashMap::new();
    // Input positions of the customer's latest cart change and order; an anonymous
    // device's cart changes become the customer's when it signs in, unless the customer
    // ordered after them (then the engine leaves that cart behind).
    let mut last_change: Option<usize> = None;
    let mut last_order: Option<usize> = None;
    let mut anonymous_changes: HashMap<String, usize> = HashMap::new();
    let mut erased = false;
    let mut consent: Option<bool> = None;
    for (i, e) in before(d, events) {
        let owner = owner(e, &aliases);
        let mine = owner.as_deref() == Some(customer);
        if e.kind == "customer_erased" {
            // Erasure unlinks the customer's anonymous ids, whoever the decision is for.
            let erased_customer = e.customer.clone().unwrap();
            aliases.retain(|_, c| *c != erased_customer);
        }
        match e.kind.as_str() {
            "signed_in" => {
                let (c, a) = (e.customer.clone().unwrap(), e.anonymous.clone().unwrap());
                if c == customer && !aliases.contains_key(&a) {
                    if let Some(change) = anonymous_changes.remove(&a) {
                        if last_order.is_none_or(|o| change > o) {
                            last_change = last_change.max(Some(change));
                        }
                    }
                }
                aliases.insert(a, c);
            }
            "customer_erased" if mine => {
                erased = true;
                consent = None;
                last_change = None;
                last_order = None;
                continue;
            }
            "consent_changed" if mine => consent = e.email_marketing,
            "cart_item_added" | "cart_item_removed" if mine => last_change = Some(i),
            "cart_item_added" | "cart_item_removed" if owner.is_none() => {
                anonymous_changes.insert(e.anonymous.clone().unwrap(), i);
            }
            "order_completed" if mine => last_order = Some(i),
            "order_completed" if owner.is_none() => {
                anonymous_changes.remove(e.anonymous.as_ref().unwrap());
            }
            _ => {}
        }
        if mine {
            erased = false; // new events for the customer after an erasure
        }
    }
    if erased {
        return Err(format!("decision for erased customer: {d:?}"));
    }
    // Profiles and segments are the storefront's and the marketer's, not emails: they
    // are kept whatever the consent.
    let emails = matches!(
        d.body,
        DecisionBody::AbandonedCart { .. }
            | DecisionBody::BackInStock { .. }
            | DecisionBody::DiscountOffer { .. }
    );
    if emails && !consent.unwrap_or(!require_consent) {
        return Err(format!("decision without consent: {d:?}"));
    }
    if let DecisionBody::AbandonedCart { .. } = d.body {
        if let (Some(change), Some(order)) = (last_change, last_order) {
            if order > change {
                return Err(format!(
                    "reminder after an order that followed the last cart change: {d:?}"
                ));
            }
        }
    }
    Ok(())
}

fn check(
    decisions: &[Decision],
    lines: &[String],
    require_consent: bool,
) -> Result<(), TestCaseError> {
    let mut ids = HashSet::new();
    for d in decisions {
        prop_assert!(
            ids.insert(d.decision_id.clone()),
            "decision emitted twice: {:?}",
            d
        );
    }
    let events = distinct_events(lines);
    for d in decisions {
        if let Err(problem) = check_decision(d, &events, require_consent) {
            return Err(TestCaseError::fail(problem));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn replay_is_deterministic_and_keeps_the_promises(ops in stream(), require_consent in any::<bool>()) {
        let (events, until) = build(&ops);
        let mut config = Config::default();
        config.rules.require_consent = require_consent;
        let first = replay_lines(&config, &events.lines, Some(until));
        let second = replay_lines(&config, &events.lines, Some(until));
        prop_assert_eq!(&first.output, &second.output);
        check(&first.decisions, &events.lines, require_consent)?;
    }

    #[test]
    fn stopping_anywhere_and_resuming_from_the_state_dir_changes_nothing(ops in stream(), cut in any::<prop::sample::Index>()) {
        let (events, until) = build(&ops);
        let whole = replay_lines(&Config::default(), &events.lines, Some(until));
        let split_at = cut.index(events.lines.len() + 1);
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.state.dir = Some(dir.path().to_path_buf());
        config.engine.commit_every_events = 3;
        let a = replay_lines(&config, &events.lines[..split_at], None);
        let b = replay_lines(&config, &events.lines[split_at..], Some(until));
        prop_assert_eq!(format!("{}{}", a.output, b.output), whole.output);
    }
}
