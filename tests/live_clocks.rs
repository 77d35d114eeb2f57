//! Clocks on the real broker: a live processor working off a backlog decides exactly
//! what `replay` decides, whatever its settings, and a quiet task follows the wall
//! clock only when it and every task that feeds it have read all there is.

mod common;

use common::compare::{
    assert_exactly_once, assert_same_decisions, replay_of, run_until_decided, workload,
    NO_WALL_CLOCK, PARTITIONS,
};
use common::live::{
    key_per_partition, terminate, wait_for_metric, wait_for_status, with_sentinels, App,
};
use personalizer::config::Config;
use personalizer::decision::DecisionBody;
use personalizer::load::now_millis;
use personalizer::time::format_rfc3339;
use std::time::Duration;

/// A backlog many fetches long, spread over every input topic, loaded before the
/// processor starts, with the default `max_task_idle` and `grace`. The processor must
/// never take a later event of one partition while another is known to be behind, and
/// no task may follow the wall clock (months after these events) while any task that
/// sends it messages is still catching up: either would fire reminders that later
/// events in the backlog cancel.
#[test]
fn a_backlog_of_many_fetches_decides_exactly_as_replay_with_default_settings() {
    let app = App::new("big-backlog", PARTITIONS, "");
    let defaults = Config::default();
    assert_eq!(app.config.kafka.max_task_idle, defaults.kafka.max_task_idle);
    assert_eq!(app.config.kafka.grace, defaults.kafka.grace);
    let lines = workload(200_000, 1);
    app.produce(&app.producer(), &lines);
    let expected = replay_of(&app, &lines, None);
    let steps = |step: u32| {
        expected
            .iter()
            .filter(|d| matches!(d.body, DecisionBody::AbandonedCart { step: s, .. } if s == step))
            .count()
    };
    assert!(
        steps(1) > 1_000 && steps(2) > 100,
        "the workload should remind many carts: {} first, {} second reminders",
        steps(1),
        steps(2)
    );
    assert!(
        expected
            .iter()
            .any(|d| matches!(d.body, DecisionBody::BackInStock { .. })),
        "the workload should serve back-in-stock requests"
    );
    let live = run_until_decided(&app, expected.len());
    assert_same_decisions(&live, &expected);
}

/// A second instance joins while the first is working off a backlog, after the first
/// has paused partitions whose buffers were full. Every partition is reassigned: the
/// paused ones must be fetched again by whoever owns them next (librdkafka keeps a
/// partition paused across a reassignment; before that was undone, both instances
/// stopped for good), and the first instance's open transaction is aborted at once
/// (not after the 30 s transaction timeout). Together they process every record, each
/// decision once.
///
/// Not asserted: equality with `replay`. A message between tasks of different
/// instances (a restock for a shopper's request, a cart merged at sign-in) can reach
/// its receiver after the receiver's clock has passed the message's time, and the
/// decision then differs (see BENCHMARKS.md and the README's known limits).
#[test]
fn an_instance_that_joins_mid_backlog_takes_over_paused_partitions() {
    let app = App::new("join-mid-backlog", PARTITIONS, NO_WALL_CLOCK);
    let lines = with_sentinels(workload(200_000, 3), PARTITIONS);
    app.produce(&app.producer(), &lines);
    let dir = app.dir.path();
    let first_log = dir.join("first.log");
    let mut first = app.spawn(&dir.join("first"), &first_log);
    let first_http = App::http_address(&first_log, Duration::from_secs(60));
    // Well into the backlog: the clickstream partitions (over 20,000 records each
    // beyond this point) have filled their buffers and been paused.
    wait_for_metric(
        std::slice::from_ref(&first_http),
        "personalizer_events_total",
        &[],
        20_000.0,
        Duration::from_secs(120),
    );
    let second_log = dir.join("second.log");
    let mut second = app.spawn(&dir.join("second"), &second_log);
    let second_http = App::http_address(&second_log, Duration::from_secs(60));
    wait_for_metric(
        std::slice::from_ref(&second_http),
        "personalizer_rebalances_total",
        &[],
        1.0,
        Duration::from_secs(60),
    );
    app.wait_until_input_processed(Duration::from_secs(180));
    assert_eq!(terminate(&mut second), Some(0), "SIGTERM exits 0");
    assert_eq!(terminate(&mut first), Some(0), "SIGTERM exits 0");
    let decisions = app.decisions();
    let repeated = std::panic::catch_unwind(|| assert_exactly_once(&decisions));
    if let Err(panic) = repeated {
        for (name, log) in [("first", &first_log), ("second", &second_log)] {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| !l.contains("task restored"))
                .collect();
            eprintln!("---- {name} instance's log:\n{}", lines.join("\n"));
        }
        std::panic::resume_unwind(panic);
    }
    assert!(decisions.len() > 5_000, "{} decisions", decisions.len());
    let second_log = std::fs::read_to_string(&second_log).unwrap();
    assert!(
        second_log
            .lines()
            .any(|l| l.contains("rebalanced") && !l.contains("customer_tasks=0")),
        "the second instance never owned a task:\n{second_log}"
    );
    let first_log = std::fs::read_to_string(&first_log).unwrap();
    assert!(
        !first_log.contains("cannot add offsets"),
        "a commit under way when the group rebalanced was refused:\n{first_log}"
    );
}

/// After a restart, a partition whose committed offset is its end is caught up, though
/// the processor has read nothing from it since: quiet tasks follow the wall clock at
/// once, and a reminder falls due without waiting for every partition to see an event.
#[test]
fn after_a_restart_quiet_partitions_are_caught_up_and_reminders_fall_due() {
    let app = App::new("restart-quiet", PARTITIONS, "");
    let hours_ago = |h: i64| format_rfc3339(now_millis() - h * 3_600_000);
    let mut lines = Vec::new();
    for (i, key) in key_per_partition("quiet", PARTITIONS).iter().enumerate() {
        let at = hours_ago(2);
        lines.push(format!(
            r#"{{"event_id":"view-{i}","type":"page_viewed","occurred_at":"{at}","anonymous_id":"{key}","page_type":"home"}}"#
        ));
        lines.push(format!(
            r#"{{"event_id":"clear-{i}","type":"cart_cleared","occurred_at":"{at}","customer_id":"{key}","cart_id":"none"}}"#
        ));
        lines.push(format!(
            r#"{{"event_id":"consent-{i}","type":"consent_changed","occurred_at":"{at}","customer_id":"{key}","email_marketing":true}}"#
        ));
        lines.push(format!(
            r#"{{"event_id":"stock-{i}","type":"stock_changed","occurred_at":"{at}","sku":"{key}","quantity":3}}"#
        ));
    }
    app.produce(&app.producer(), &lines);
    let state = app.dir.path().join("state");
    let first_log = app.dir.path().join("first.log");
    let mut first = app.spawn(&state, &first_log);
    let http = App::http_address(&first_log, Duration::from_secs(60));
    let processed = ["outcome=\"processed\""];
    wait_for_metric(
        &[http],
        "personalizer_events_total",
        &processed,
        lines.len() as f64,
        Duration::from_secs(60),
    );
    assert_eq!(terminate(&mut first), Some(0), "SIGTERM exits 0");

    let second_log = app.dir.path().join("second.log");
    let mut second = app.spawn(&state, &second_log);
    let http = App::http_address(&second_log, Duration::from_secs(60));
    wait_for_status(&http, "/readyz", 200, Duration::from_secs(60));
    // Carts last touched 61 minutes ago: the first reminder (60 min) is a minute overdue.
    let added = format_rfc3339(now_millis() - 61 * 60_000);
    let carts: Vec<String> = ["late-1", "late-2"]
        .iter()
        .map(|who| {
            format!(
                r#"{{"event_id":"add-{who}","type":"cart_item_added","occurred_at":"{added}","customer_id":"{who}","cart_id":"cart-{who}","product":{{"sku":"S1"}},"quantity":1}}"#
            )
        })
        .collect();
    app.produce(&app.producer(), &carts);
    // The first run's events made segment changes and profiles already: wait for the
    // reminders themselves.
    let decided = app.wait_for_decisions_where("two reminders", Duration::from_secs(60), |d| {
        d.iter()
            .filter(|d| matches!(d.body, DecisionBody::AbandonedCart { .. }))
            .count()
            >= 2
    });
    assert_eq!(terminate(&mut second), Some(0), "SIGTERM exits 0");
    let mut reminded: Vec<(String, u32)> = decided
        .iter()
        .filter_map(|d| match d.body {
            DecisionBody::AbandonedCart { step, .. } => {
                Some((d.customer_id.clone().unwrap(), step))
            }
            _ => None,
        })
        .collect();
    reminded.sort();
    assert_eq!(
        reminded,
        vec![("late-1".to_string(), 1), ("late-2".to_string(), 1)]
    );
    // Restoring read every changelog to its end: that is no error.
    let log = std::fs::read_to_string(&second_log).unwrap();
    assert!(log.contains("task restored"), "{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "errors in the log: {errors:#?}");
}

/// A `page_viewed` stamped in the year 9999 would move its task's clock there and fire
/// every pending reminder of its partition at once, for good (the clock is kept in the
/// changelog). It goes to the dead-letter topic as `from_the_future` instead, and the
/// cart added before it waits for its hour.
#[test]
fn an_event_from_the_future_is_dead_lettered_and_moves_no_clock() {
    let app = App::new("future", PARTITIONS, "");
    let now = format_rfc3339(now_millis());
    let lines = vec![
        format!(
            r#"{{"event_id":"add-1","type":"cart_item_added","occurred_at":"{now}","customer_id":"c-future","cart_id":"k1","product":{{"sku":"S1"}},"quantity":1}}"#
        ),
        r#"{"event_id":"view-9999","type":"page_viewed","occurred_at":"9999-12-31T23:59:59Z","customer_id":"c-future","page_type":"home"}"#.to_string(),
    ];
    app.produce(&app.producer(), &lines);
    let state = app.dir.path().join("state");
    let log = app.dir.path().join("run.log");
    let mut child = app.spawn(&state, &log);
    let http = App::http_address(&log, Duration::from_secs(60));
    // Counts are published when their batch commits: once both show, so would any
    // decision the future event caused.
    let http = [http];
    let within = Duration::from_secs(60);
    let processed = ["outcome=\"processed\""];
    wait_for_metric(&http, "personalizer_events_total", &processed, 1.0, within);
    let future = ["reason=\"from_the_future\""];
    wait_for_metric(
        &http,
        "personalizer_dead_letters_total",
        &future,
        1.0,
        within,
    );
    assert_eq!(terminate(&mut child), Some(0), "SIGTERM exits 0");
    let stopped_at = now_millis();
    let decided = app.decisions();
    // The cart's segment change is decided at once; a reminder is not due for an hour,
    // and nothing may be dated after the moment the processor stopped.
    assert!(
        common::emails(decided.clone()).is_empty(),
        "no email is due yet: {decided:?}"
    );
    assert!(
        decided.iter().all(|d| d.decided_at <= stopped_at),
        "dated in the future: {decided:?}"
    );
    let dead = app.read_all(&[&app.config.kafka.topics.dead_letter], "read_committed");
    assert_eq!(dead.len(), 1);
    let header = |name: &str| {
        use rdkafka::message::{Headers, Message};
        dead[0]
            .headers()
            .and_then(|h| {
                h.iter()
                    .find(|x| x.key == name)
                    .and_then(|x| x.value.map(|v| String::from_utf8_lossy(v).to_string()))
            })
            .unwrap_or_default()
    };
    assert_eq!(header("error_reason"), "from_the_future");
    assert!(
        header("error").contains("9999-12-31"),
        "{}",
        header("error")
    );
}

/// A keyless `cart_item_added` that lands on another partition than its shopper's (a
/// producer that does not key by shopper). Applied where it landed, it would give the
/// shopper two carts with one id and a reminder for each, neither with both items; it
/// is passed on to the task that owns the shopper instead, counted as `misrouted`, and
/// the one cart is reminded once with both items.
#[test]
fn a_record_on_the_wrong_partition_is_applied_by_the_shoppers_task() {
    let app = App::new("misrouted", PARTITIONS, "");
    let who = "c-misrouted";
    let home = personalizer::engine::partitioner::partition_for(who.as_bytes(), PARTITIONS as u16);
    let elsewhere = (home + 1) % PARTITIONS as u16;
    // Added 61 minutes ago: the first reminder (60 min) falls due at once.
    let added = format_rfc3339(now_millis() - 61 * 60_000);
    let item = |id: &str, sku: &str| {
        format!(
            r#"{{"event_id":"{id}","type":"cart_item_added","occurred_at":"{added}","customer_id":"{who}","cart_id":"k1","product":{{"sku":"{sku}"}},"quantity":1}}"#
        )
    };
    let producer = app.producer();
    let cart = app.topic(personalizer::event::InputTopic::Cart).to_string();
    app.send(
        &producer,
        &cart,
        Some(who.as_bytes()),
        item("add-a", "A").as_bytes(),
    );
    let stray = item("add-b", "B");
    let record = rdkafka::producer::BaseRecord::<[u8], [u8]>::to(&cart)
        .payload(stray.as_bytes())
        .partition(i32::from(elsewhere));
    personalizer::load::send_when_room(&producer, record).unwrap();
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(10)).unwrap();

    let log = app.dir.path().join("run.log");
    let mut child = app.spawn(&app.dir.path().join("state"), &log);
    let http = App::http_address(&log, Duration::from_secs(60));
    wait_for_metric(
        std::slice::from_ref(&http),
        "personalizer_events_total",
        &["outcome=\"misrouted\""],
        1.0,
        Duration::from_secs(60),
    );
    app.wait_for_decisions_where("a reminder", Duration::from_secs(90), |d| {
        d.iter()
            .any(|d| matches!(d.body, DecisionBody::AbandonedCart { .. }))
    });
    assert_eq!(terminate(&mut child), Some(0), "SIGTERM exits 0");
    let decided = app.decisions();
    let reminders: Vec<(u32, Vec<String>)> = decided
        .iter()
        .filter_map(|d| match &d.body {
            DecisionBody::AbandonedCart { step, items, .. } => {
                Some((*step, items.iter().map(|i| i.sku.clone()).collect()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        reminders,
        vec![(1, vec!["A".to_string(), "B".to_string()])],
        "one cart, reminded once, with both items: {decided:#?}"
    );
}
