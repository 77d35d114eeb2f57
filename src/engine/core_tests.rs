//! Unit tests of the task core: clocks, duplicates, forwarding, changes.

use super::*;
use crate::config::{Config, StateConfig};
use crate::decision::DecisionBody;
use crate::event::{decode_json, Decoded};

const T0: &str = "2026-01-01T00:";
const PARTITIONS: u16 = 4;

fn event(json: &str) -> Event {
    match decode_json(json.as_bytes()) {
        Ok(Decoded::Event(event)) => event,
        other => panic!("test event does not decode: {other:?}"),
    }
}

fn add_to_cart(id: &str, customer: &str, minute: u32) -> Event {
    event(&format!(
        r#"{{"event_id":"{id}","type":"cart_item_added","occurred_at":"{T0}{minute:02}:00Z","customer_id":"{customer}","cart_id":"k-{customer}","product":{{"sku":"S1"}},"quantity":1}}"#
    ))
}

fn view(id: &str, customer: &str, hour: u32) -> Event {
    event(&format!(
        r#"{{"event_id":"{id}","type":"page_viewed","occurred_at":"2026-01-01T{hour:02}:00:00Z","customer_id":"{customer}","page_type":"home"}}"#
    ))
}

/// Two customers whose tasks differ.
fn customers_on_two_tasks(core: &Core) -> (String, String) {
    let first = "c-0".to_string();
    let other = (1..)
        .map(|i| format!("c-{i}"))
        .find(|c| core.task_for(Side::Customer, c) != core.task_for(Side::Customer, &first))
        .expect("keys spread over partitions");
    (first, other)
}

fn core_with_every_task(store: &Store, clock: Clock) -> Core {
    // The email triggers alone: these tests count reminder timers, and profiles,
    // segments and product records arm timers of their own.
    let mut rules = Config::default().rules;
    rules.profiles.enabled = false;
    rules.segments.enabled = false;
    rules.products.enabled = false;
    let mut core = Core::new(rules, clock, [PARTITIONS, PARTITIONS]);
    for side in Side::ALL {
        for p in 0..PARTITIONS {
            core.open_task(store, (side, p), None).unwrap();
        }
    }
    core
}

fn apply(core: &mut Core, store: &Store, event: &Event) -> Outcome {
    let key = event
        .customer_id
        .as_deref()
        .expect("test events name a customer");
    let id = core.task_for(Side::Customer, key);
    core.process_event(store, id, key, event).unwrap()
}

fn reminders(output: &Output) -> Vec<(String, u32)> {
    output
        .decisions
        .iter()
        .filter_map(|d| match d.body {
            DecisionBody::AbandonedCart { step, .. } => {
                Some((d.customer_id.clone().unwrap(), step))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn with_a_shared_clock_any_event_fires_every_task_s_due_timers() {
    let store = Store::open_temporary(&StateConfig::default()).unwrap();
    let mut core = core_with_every_task(&store, Clock::Shared);
    let (a, b) = customers_on_two_tasks(&core);
    apply(&mut core, &store, &add_to_cart("e1", &a, 0));
    apply(&mut core, &store, &view("e2", &b, 2));
    let output = core.take_output();
    assert_eq!(reminders(&output), vec![(a, 1)]);
    assert_eq!(output.stats.timers_fired, 1);
}

#[test]
fn with_a_clock_per_task_only_the_task_s_own_inputs_move_it() {
    let store = Store::open_temporary(&StateConfig::default()).unwrap();
    let mut core = core_with_every_task(&store, Clock::PerTask);
    let (a, b) = customers_on_two_tasks(&core);
    apply(&mut core, &store, &add_to_cart("e1", &a, 0));
    apply(&mut core, &store, &view("e2", &b, 2));
    assert!(reminders(&core.take_output()).is_empty());
    let task_a = core.task_for(Side::Customer, &a);
    assert_eq!(
        core.next_due(task_a),
        Some(add_to_cart("x", &a, 0).occurred_at + 3_600_000)
    );
    apply(&mut core, &store, &view("e3", &a, 2));
    assert_eq!(reminders(&core.take_output()), vec![(a, 1)]);
}

#[test]
fn a_duplicate_is_counted_and_moves_no_clock() {
    let store = Store::open_temporary(&StateConfig::default()).unwrap();
    let mut core = core_with_every_task(&store, Clock::PerTask);
    let first = add_to_cart("e1", "c1", 0);
    assert_eq!(apply(&mut core, &store, &first), Outcome::Processed);
    let mut late_copy = view("e1", "c1", 3);
    late_copy.event_id = "e1".into();
    assert_eq!(apply(&mut core, &store, &late_copy), Outcome::Duplicate);
    let output = core.take_output();
    assert_eq!(output.stats.duplicates, 1);
    assert!(
        reminders(&output).is_empty(),
        "the duplicate's time fired nothing"
    );
    assert_eq!(
        core.stream_time(core.task_for(Side::Customer, "c1")),
        Some(first.occurred_at)
    );
}

fn notify_me(customer: &str) -> Event {
    event(&format!(
        r#"{{"event_id":"n-{customer}","type":"back_in_stock_requested","occurred_at":"{T0}05:00Z","customer_id":"{customer}","product":{{"sku":"S9"}}}}"#
    ))
}

#[test]
fn a_message_to_a_task_it_holds_is_applied_at_once_and_others_go_to_the_driver() {
    let store = Store::open_temporary(&StateConfig::default()).unwrap();
    let mut core = core_with_every_task(&store, Clock::PerTask);
    apply(&mut core, &store, &notify_me("c1"));
    let output = core.take_output();
    assert!(output.remote.is_empty());
    assert_eq!(
        output.forwarded.get(&(Side::Product, Delivery::InProcess)),
        Some(&1)
    );
    let sku_task = core.task_for(Side::Product, "S9");
    assert_eq!(
        core.stream_time(sku_task),
        Some(notify_me("c1").occurred_at)
    );

    // Without the SKU's task, the same request is handed back for the topic.
    let store = Store::open_temporary(&StateConfig::default()).unwrap();
    let mut core = Core::new(
        Config::default().rules,
        Clock::PerTask,
        [PARTITIONS, PARTITIONS],
    );
    let shopper_task = core.task_for(Side::Customer, "c1");
    core.open_task(&store, shopper_task, None).unwrap();
    apply(&mut core, &store, &notify_me("c1"));
    let output = core.take_output();
    assert_eq!(output.remote.len(), 1);
    assert_eq!(Side::addressee(&output.remote[0]).1, "S9");
    assert_eq!(
        output.forwarded.get(&(Side::Product, Delivery::Topic)),
        Some(&1)
    );
}

#[test]
fn only_per_task_clocks_are_part_of_a_task_s_changes() {
    for (clock, kept) in [(Clock::PerTask, true), (Clock::Shared, false)] {
        let store = Store::open_temporary(&StateConfig::default()).unwrap();
        let mut core = core_with_every_task(&store, clock);
        apply(&mut core, &store, &add_to_cart("e1", "c1", 0));
        let mut changes = Vec::new();
        core.take_changes(core.task_for(Side::Customer, "c1"), &mut changes);
        let time_key = stream_time_key(Side::Customer, core.task_for(Side::Customer, "c1").1);
        let has_clock = changes
            .iter()
            .any(|c| c == &Store::meta_change(&time_key, add_to_cart("x", "c1", 0).occurred_at));
        assert_eq!(has_clock, kept, "{clock:?}");
        assert!(changes.len() >= 2, "the cart and its timer: {changes:?}");
    }
}

fn add_named(id: &str, customer: &str, sku: &str, name_bytes: usize) -> Event {
    let name = "n".repeat(name_bytes);
    event(&format!(
        r#"{{"event_id":"{id}","type":"cart_item_added","occurred_at":"{T0}01:00Z","customer_id":"{customer}","cart_id":"k-{customer}","product":{{"sku":"{sku}","name":"{name}"}},"quantity":1}}"#
    ))
}

fn core_with_limits(store: &Store, limits: crate::config::LimitsConfig) -> Core {
    let mut rules = Config::default().rules;
    rules.limits = limits;
    let mut core = Core::new(rules, Clock::PerTask, [PARTITIONS, PARTITIONS]);
    for p in 0..PARTITIONS {
        core.open_task(store, (Side::Customer, p), None).unwrap();
    }
    core
}

fn cart_lines(core: &mut Core, store: &Store, customer: &str) -> usize {
    let id = core.task_for(Side::Customer, customer);
    let mut changes = Vec::new();
    core.take_changes(id, &mut changes);
    store.write(&changes).unwrap();
    let bytes = store
        .get(
            crate::store::Family::Shoppers,
            &crate::store::keys::entity_key(id.1, customer),
        )
        .unwrap()
        .expect("the shopper is stored");
    let state =
        <crate::state::ShopperState as crate::state::VersionedState>::decode(&bytes).unwrap();
    state.carts.iter().map(|c| c.lines.len()).sum()
}

#[test]
fn an_item_beyond_the_cart_line_limit_is_refused_and_changes_nothing() {
    let store = Store::open_temporary(&StateConfig::default()).unwrap();
    let limits = crate::config::LimitsConfig {
        max_cart_lines: 2,
        ..Default::default()
    };
    let mut core = core_with_limits(&store, limits);
    assert_eq!(
        apply(&mut core, &store, &add_named("e1", "c1", "A", 3)),
        Outcome::Processed
    );
    assert_eq!(
        apply(&mut core, &store, &add_named("e2", "c1", "B", 3)),
        Outcome::Processed
    );
    let third = apply(&mut core, &store, &add_named("e3", "c1", "C", 3));
    assert_eq!(
        third,
        Outcome::Refused(crate::rules::Refusal::CartFull {
            cart_id: "k-c1".into(),
            limit: 2
        })
    );
    // More of a line the cart has is no new line.
    assert_eq!(
        apply(&mut core, &store, &add_named("e4", "c1", "A", 3)),
        Outcome::Processed
    );
    assert_eq!(cart_lines(&mut core, &store, "c1"), 2);
}

#[test]
fn an_event_that_would_outgrow_the_state_limit_is_refused_and_the_state_kept() {
    let store = Store::open_temporary(&StateConfig::default()).unwrap();
    let limits = crate::config::LimitsConfig {
        max_event_bytes: 2_048,
        max_cart_lines: 100,
        max_state_bytes: 8_192,
        ..Default::default()
    };
    let mut core = core_with_limits(&store, limits);
    let mut accepted = 0;
    let mut refused = None;
    for i in 0..20 {
        match apply(
            &mut core,
            &store,
            &add_named(&format!("e{i}"), "c1", &format!("S{i}"), 1_500),
        ) {
            Outcome::Processed => accepted += 1,
            Outcome::Refused(refusal) => {
                refused = Some(refusal);
                break;
            }
            Outcome::Duplicate => panic!("no duplicates here"),
        }
    }
    let refusal = refused.expect("the state limit is reached within 20 lines of 1.5 KB");
    assert!(
        matches!(refusal, crate::rules::Refusal::StateTooLarge { limit: 8_192, bytes, .. } if bytes > 8_192),
        "{refusal:?}"
    );
    assert!((4..=5).contains(&accepted), "{accepted} lines fit in 8 KiB");
    // The refused event left nothing behind, and what is stored fits the limit.
    assert_eq!(cart_lines(&mut core, &store, "c1"), accepted);
    // A state at its limit can still shrink.
    let clear = event(
        r#"{"event_id":"clr","type":"cart_cleared","occurred_at":"2026-01-01T00:02:00Z","customer_id":"c1","cart_id":"k-c1"}"#,
    );
    assert_eq!(apply(&mut core, &store, &clear), Outcome::Processed);
    assert_eq!(cart_lines(&mut core, &store, "c1"), 0);
}

#[test]
fn customers_per_lifecycle_stage_are_counted_kept_with_the_task_and_read_back() {
    let store = Store::open_temporary(&StateConfig::default()).unwrap();
    let rules = Config::default().rules;
    let open = |store: &Store| {
        let mut core = Core::new(rules.clone(), Clock::PerTask, [PARTITIONS, PARTITIONS]);
        for side in Side::ALL {
            for p in 0..PARTITIONS {
                core.open_task(store, (side, p), None).unwrap();
            }
        }
        core
    };
    let mut core = open(&store);
    let (first, other) = customers_on_two_tasks(&core);
    for (i, customer) in [&first, &other].into_iter().enumerate() {
        apply(&mut core, &store, &view(&format!("v{i}"), customer, 1));
    }
    let counts = core.lifecycle_counts();
    assert_eq!(counts.get(LifecycleStage::Prospect), 2);
    assert_eq!(counts.get(LifecycleStage::New), 0);

    let mut changes = Vec::new();
    for id in core.task_ids().collect::<Vec<_>>() {
        core.take_changes(id, &mut changes);
    }
    let task = core.task_for(Side::Customer, &first);
    assert!(changes
        .iter()
        .any(|c| c == &Store::meta_change(&lifecycle_key(task.1, LifecycleStage::Prospect), 1)));
    store.write(&changes).unwrap();
    // Nothing changed since: nothing more to write.
    let mut again = Vec::new();
    core.take_changes(task, &mut again);
    assert!(
        again
            .iter()
            .all(|c| !String::from_utf8_lossy(&c.key).contains("lifecycle")),
        "{again:?}"
    );

    // A task opened on that store (a restart, or the task moved here) counts on.
    let reopened = open(&store);
    assert_eq!(reopened.lifecycle_counts(), counts);
    assert!(task_meta_keys(Side::Customer, task.1)
        .contains(&lifecycle_key(task.1, LifecycleStage::Lapsed)));
    assert_eq!(
        task_meta_keys(Side::Product, 0),
        [stream_time_key(Side::Product, 0)]
    );
}

/// Takes every task's changes and writes them, as a commit does.
fn commit(core: &mut Core, store: &Store) {
    let mut changes = Vec::new();
    let ids: Vec<TaskId> = core.task_ids().collect();
    for id in ids {
        core.take_changes(id, &mut changes);
    }
    store.write_sorted(&mut changes).unwrap();
}

/// Four carts on one task, each with its two reminder steps armed.
fn four_abandoned_carts(core: &mut Core, store: &Store) -> TaskId {
    let first = "c-0".to_string();
    let task = core.task_for(Side::Customer, &first);
    let same_task: Vec<String> = (0..)
        .map(|i| format!("c-{i}"))
        .filter(|c| core.task_for(Side::Customer, c) == task)
        .take(4)
        .collect();
    for (minute, customer) in same_task.iter().enumerate() {
        apply(
            core,
            store,
            &add_to_cart(&format!("e{minute}"), customer, minute as u32),
        );
    }
    task
}

#[test]
fn a_budget_fires_that_many_timers_and_the_next_call_goes_on_where_it_stopped() {
    let until = view("x", "c", 23).occurred_at + 3 * 86_400_000;
    let unbounded = {
        let store = Store::open_temporary(&StateConfig::default()).unwrap();
        let mut core = core_with_every_task(&store, Clock::PerTask);
        let task = four_abandoned_carts(&mut core, &store);
        let mut budget = usize::MAX;
        let advanced = core.advance(&store, task, until, &mut budget).unwrap();
        assert_eq!(advanced, Advanced::Reached);
        reminders(&core.take_output())
    };
    assert_eq!(unbounded.len(), 8, "two steps for each of four carts");

    let store = Store::open_temporary(&StateConfig::default()).unwrap();
    let mut core = core_with_every_task(&store, Clock::PerTask);
    let task = four_abandoned_carts(&mut core, &store);
    let mut budget = 3;
    let advanced = core.advance(&store, task, until, &mut budget).unwrap();
    assert_eq!((advanced, budget), (Advanced::Interrupted, 0));
    let first = core.take_output();
    assert_eq!(first.stats.timers_fired, 3);
    let third_due = add_to_cart("x", "c", 2).occurred_at + 3_600_000;
    assert_eq!(
        core.tasks[&task].stream_time(),
        Some(third_due),
        "the clock waits at the last timer fired"
    );
    let mut fired = reminders(&first);
    let mut rounds = 1;
    loop {
        let mut budget = 3;
        let advanced = core.advance(&store, task, until, &mut budget).unwrap();
        fired.extend(reminders(&core.take_output()));
        rounds += 1;
        if advanced == Advanced::Reached {
            assert_eq!(budget, 1, "the last round fired two");
            break;
        }
        assert!(rounds < 10, "advancing never ends");
    }
    assert_eq!(rounds, 3);
    assert_eq!(fired, unbounded, "the same reminders in the same order");
    assert_eq!(core.tasks[&task].stream_time(), Some(until));
}

#[test]
fn duplicates_are_recognised_from_the_stored_chunks_and_commits_do_not_rewrite_every_id() {
    let store = Store::open_temporary(&StateConfig::default()).unwrap();
    let mut core = core_with_every_task(&store, Clock::PerTask);
    let task = core.task_for(Side::Customer, "c1");
    let mut dedupe_bytes_per_commit = Vec::new();
    for minute in 0..30 {
        let event = add_to_cart(&format!("e{minute}"), "c1", minute);
        assert_eq!(apply(&mut core, &store, &event), Outcome::Processed);
        let mut changes = Vec::new();
        core.take_changes(task, &mut changes);
        let dedupe: Vec<_> = changes
            .iter()
            .filter(|c| c.family == crate::store::Family::ShopperDedupe)
            .collect();
        assert!(!dedupe.is_empty(), "the new id is written");
        dedupe_bytes_per_commit.push(
            dedupe
                .iter()
                .map(|c| c.value.as_ref().map_or(0, Vec::len))
                .sum::<usize>(),
        );
        store.write(&changes).unwrap();
    }
    // Rewriting every id at every commit would write 9 + 16 n bytes at the n-th; the
    // chunks (merged like a binary counter) write under a quarter of that in all.
    let rewrite_bytes: usize = (1..=30).map(|n| 9 + 16 * n).sum();
    let written: usize = dedupe_bytes_per_commit.iter().sum();
    assert!(
        written < rewrite_bytes / 4,
        "{written} of {rewrite_bytes} bytes: {dedupe_bytes_per_commit:?}"
    );
    // A core opened on the store (a restart) knows every id from the chunks.
    let mut reopened = core_with_every_task(&store, Clock::PerTask);
    for minute in [0, 17, 29] {
        let copy = add_to_cart(&format!("e{minute}"), "c1", 30);
        assert_eq!(
            apply(&mut reopened, &store, &copy),
            Outcome::Duplicate,
            "e{minute}"
        );
    }
    let fresh = add_to_cart("e30", "c1", 30);
    assert_eq!(apply(&mut reopened, &store, &fresh), Outcome::Processed);
}

fn stock_changed(id: &str, minute: u32, quantity: u32) -> Event {
    event(&format!(
        r#"{{"event_id":"{id}","type":"stock_changed","occurred_at":"{T0}{minute:02}:00Z","sku":"S9","quantity":{quantity}}}"#
    ))
}

/// Commits every task's changes; returns the families the SKU's task wrote to.
fn product_changes(core: &mut Core, store: &Store) -> Vec<crate::store::Family> {
    let sku_task = core.task_for(Side::Product, "S9");
    let mut families = Vec::new();
    for id in core.task_ids().collect::<Vec<_>>() {
        let mut changes = Vec::new();
        core.take_changes(id, &mut changes);
        store.write(&changes).unwrap();
        if id == sku_task {
            families.extend(changes.iter().map(|c| c.family));
        }
    }
    families
}

#[test]
fn a_sku_s_waiting_requests_are_written_only_when_they_change_and_read_back() {
    use crate::store::Family;
    let store = Store::open_temporary(&StateConfig::default()).unwrap();
    let mut core = core_with_every_task(&store, Clock::PerTask);
    let sku_task = core.task_for(Side::Product, "S9");
    let out_of_stock = stock_changed("s1", 1, 0);
    core.process_event(&store, sku_task, "S9", &out_of_stock)
        .unwrap();
    assert!(!product_changes(&mut core, &store).contains(&Family::ProductRequests));

    for customer in ["c1", "c2"] {
        apply(&mut core, &store, &notify_me(customer));
    }
    assert!(product_changes(&mut core, &store).contains(&Family::ProductRequests));

    // Another visit that leaves the requests as they were rewrites the state alone.
    let still_out = stock_changed("s2", 6, 0);
    core.process_event(&store, sku_task, "S9", &still_out)
        .unwrap();
    let families = product_changes(&mut core, &store);
    assert!(families.contains(&Family::Products), "{families:?}");
    assert!(!families.contains(&Family::ProductRequests), "{families:?}");
    // One more request writes that request alone.
    apply(&mut core, &store, &notify_me("c3"));
    let families = product_changes(&mut core, &store);
    let written = families
        .iter()
        .filter(|f| **f == Family::ProductRequests)
        .count();
    assert_eq!(written, 1, "{families:?}");

    // A core opened on the store (a restart) has the requests: a restock serves them.
    let mut reopened = core_with_every_task(&store, Clock::PerTask);
    let restock = stock_changed("s3", 7, 5);
    reopened
        .process_event(&store, sku_task, "S9", &restock)
        .unwrap();
    let mut served: Vec<String> = reopened
        .take_output()
        .decisions
        .iter()
        .filter(|d| matches!(d.body, DecisionBody::BackInStock { .. }))
        .map(|d| d.customer_id.clone().unwrap())
        .collect();
    served.sort();
    assert_eq!(served, ["c1", "c2", "c3"]);
    // Served, the requests are deleted from the store too.
    let mut changes = Vec::new();
    reopened.take_changes(sku_task, &mut changes);
    let requests: Vec<_> = changes
        .iter()
        .filter(|c| c.family == Family::ProductRequests)
        .collect();
    assert_eq!(requests.len(), 3, "one per request: {changes:?}");
    assert!(requests.iter().all(|c| c.value.is_none()), "{changes:?}");
    assert!(requests[0].key.ends_with(b"c1") && requests[2].key.ends_with(b"c3"));
}

#[path = "core_cache_tests.rs"]
mod cache;
