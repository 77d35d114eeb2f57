//! The live runtime against a real Apache Kafka broker (started by `scripts/kafka`):
//! the same decisions as `replay`, exactly once through crashes and failover, bad
//! records to the dead-letter topic, state equal to an uninterrupted run.

mod common;

use common::compare::{
    assert_same_decisions, replay_of, replay_with_tombstones_of, run_until_decided,
    single_task_workload, workload, NO_WALL_CLOCK, PARTITIONS,
};
use common::live::{headers_of, terminate, wait_for_metric, with_sentinels, App};
use personalizer::config::Config;
use personalizer::store::{Family, Store};
use personalizer::time::parse_rfc3339;
use rdkafka::message::{Headers, Message};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// The rule state of a store: shoppers, products and their timers.
fn rule_state(dir: &Path, config: &Config) -> BTreeMap<(u8, Vec<u8>), Vec<u8>> {
    let store = Store::open(dir, &config.state).unwrap();
    let mut state = BTreeMap::new();
    for family in [
        Family::Shoppers,
        Family::ShopperTimers,
        Family::Products,
        Family::ProductTimers,
    ] {
        for (key, value) in store.scan_prefix(family, &[]).unwrap() {
            state.insert((family.code(), key), value);
        }
    }
    state
}

#[test]
fn a_backlog_gives_the_same_decisions_live_as_in_replay() {
    let app = App::new("backlog", PARTITIONS, "");
    let lines = workload(4_000, 7);
    app.produce(&app.producer(), &lines);
    let replay_state = tempfile::tempdir().unwrap();
    let (expected, expected_tombstones) =
        replay_with_tombstones_of(&app, &lines, Some(replay_state.path()));
    assert!(expected.len() > 20, "the workload should decide things");
    assert!(
        !expected_tombstones.is_empty(),
        "sign-ins tombstone anonymous profiles"
    );

    let state = app.dir.path().join("state");
    let log = app.dir.path().join("run.log");
    let mut child = app.spawn(&state, &log);
    app.wait_for_decisions(expected.len(), Duration::from_secs(120));
    assert_eq!(terminate(&mut child), Some(0), "SIGTERM exits 0");
    assert_same_decisions(&app.decisions(), &expected);
    assert_eq!(
        app.tombstones(),
        expected_tombstones,
        "the same profile tombstones"
    );
    assert_eq!(
        rule_state(&state, &app.config),
        rule_state(replay_state.path(), &app.config),
        "live state equals replay state"
    );
}

/// The situations of `tests/contract_rules.rs`, one shopper (or SKU) each, as one stream
/// in event-time order.
fn contract_scenarios() -> Vec<String> {
    let mut e = common::Events::new();
    // Abandoned carts: reminded in steps; activity postpones; a content change restarts.
    e.add("c1", 0, "k1", "S1", 1);
    e.view("c1", 30);
    e.add("c2", 0, "k2", "S1", 1);
    e.order("c2", 10, Some("k2"));
    e.add("c3", 0, "k3", "S1", 1);
    e.clear("c3", 5, "k3");
    e.add("c4", 0, "k4", "S1", 2);
    e.remove("c4", 3, "k4", "S1", 5);
    e.add("c6", 0, "k6", "S1", 1);
    e.add("c6", 90, "k6", "S2", 1);
    e.add("anon-5", 0, "k5", "S3", 1);
    e.sign_in("c5", "anon-5", 2);
    // Back in stock: requests wait for a restock; in-stock requests do nothing.
    e.stock("S9", 0, 0);
    e.notify_me("c7", 5, "S9");
    e.notify_me("c8", 6, "S9");
    e.stock("S9", 20, 5);
    e.stock("S10", 0, 10);
    e.notify_me("c9", 5, "S10");
    // Consent withdrawn, then given again.
    e.consent("c10", 0, false);
    e.add("c10", 1, "k10", "S1", 1);
    e.consent("c11", 0, false);
    e.consent("c11", 2, true);
    e.add("c11", 3, "k11", "S1", 1);
    // Erasure cancels what was pending, for good.
    e.stock("S11", 0, 0);
    e.add("c12", 0, "k12", "S1", 1);
    e.notify_me("c12", 1, "S11");
    e.erase("c12", 5);
    e.stock("S11", 30, 3);
    // A request made anonymously follows the shopper who signs in.
    e.stock("S12", 0, 0);
    e.notify_me("anon-13", 1, "S12");
    e.sign_in("c13", "anon-13", 2);
    e.stock("S12", 40, 2);
    // A redelivered event is skipped.
    let duplicate = e.lines[e.lines.len() - 3].clone();
    e.lines.push(duplicate);
    let mut lines = e.lines;
    lines.sort_by_key(|l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        parse_rfc3339(v["occurred_at"].as_str().unwrap()).unwrap()
    });
    lines
}

#[test]
fn the_contract_scenarios_decide_the_same_live_as_in_replay() {
    let app = App::new("contract", PARTITIONS, "");
    let lines = contract_scenarios();
    let expected = replay_of(&app, &lines, None);
    let kinds: std::collections::BTreeSet<&str> =
        expected.iter().map(|d| d.decision_type().name()).collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        vec![
            "abandoned_cart",
            "back_in_stock",
            "profile",
            "segment_changed"
        ]
    );
    app.produce(&app.producer(), &lines);
    let live = run_until_decided(&app, expected.len());
    assert_same_decisions(&live, &expected);
}

#[test]
fn kill_9_while_events_flow_loses_and_repeats_nothing() {
    // A slice takes the processor about 100 ms; with one commit a second (interval
    // pacing: adaptive pacing commits as soon as a slice has been read), its decisions
    // wait most of that second in an open transaction: the kill waits for one (an
    // output partition whose high watermark is above its last stable offset), which
    // is the case to prove.
    // A killed process stays a member of the group until its session expires, and the
    // next incarnation's join waits for that: 10 s here instead of librdkafka's 45.
    let config = format!(
        "{NO_WALL_CLOCK}\ncommit_interval = \"1s\"\ncommit_pacing = \"interval\"\n\
         [kafka.properties]\n\"session.timeout.ms\" = \"10000\""
    );
    let app = App::new("kill9", PARTITIONS, &config);
    let lines = with_sentinels(workload(40_000, 11), PARTITIONS);
    let expected = replay_of(&app, &lines, None);
    let state = app.dir.path().join("state");
    let log = app.dir.path().join("run.log");

    // Events arrive in slices; the processor is killed at a random point while it works
    // through each (once its tasks are restored), and the next slice lands while it is
    // down.
    let slices: Vec<&[String]> = lines.chunks(lines.len() / 5 + 1).collect();
    let kills = app.kill_while_working_through(&slices, &state, &log, Duration::from_secs(60));
    let mut child = app.spawn(&state, &log);
    app.wait_for_decisions(expected.len(), Duration::from_secs(180));
    assert_eq!(terminate(&mut child), Some(0));
    assert!(kills >= 5);
    let live = app.decisions();
    assert_same_decisions(&live, &expected);

    // The kills left transactions open with decisions in them; the broker aborted them
    // when the next incarnation started. Their records are in the log, where a
    // read_uncommitted consumer sees them, and invisible to read_committed.
    let outputs = app.output_topics();
    let uncommitted = app.read_all(&outputs, "read_uncommitted").len();
    eprintln!(
        "decisions: {} committed, {uncommitted} in the log including aborted transactions",
        live.len()
    );
    assert!(
        uncommitted > live.len(),
        "no aborted decision in the log: {uncommitted} records, {} committed",
        live.len()
    );

    // An uninterrupted run of the same input ends in the same state.
    let calm = App::new("kill9-calm", PARTITIONS, &config);
    calm.produce(&calm.producer(), &lines);
    let calm_state = calm.dir.path().join("state");
    let mut calm_child = calm.spawn(&calm_state, &calm.dir.path().join("run.log"));
    calm.wait_for_decisions(expected.len(), Duration::from_secs(120));
    assert_eq!(terminate(&mut calm_child), Some(0));
    assert_eq!(
        rule_state(&state, &app.config),
        rule_state(&calm_state, &calm.config),
        "state after crashes equals the state of an uninterrupted run"
    );
}

#[test]
fn bad_records_go_to_the_dead_letter_topic_and_the_rest_flows() {
    let app = App::new("poison", PARTITIONS, "");
    let lines = workload(1_500, 3);
    let producer = app.producer();
    let (first, second) = lines.split_at(lines.len() / 2);
    app.produce(&producer, first);
    let poison: [(&str, &[u8]); 4] = [
        (app.config.kafka.topics.clickstream.as_str(), b"{not json"),
        (
            app.config.kafka.topics.cart.as_str(),
            br#"{"event_id":"p2","type":"cart_item_added","occurred_at":"2026-01-02T00:00:00Z","customer_id":"c","cart_id":"k","product":{"sku":"s"},"quantity":-3}"#,
        ),
        (
            app.config.kafka.topics.stock.as_str(),
            br#"{"event_id":"p3","type":"stock_changed","occurred_at":"2026-01-02T00:00:00Z"}"#,
        ),
        (app.config.kafka.topics.customers.as_str(), b"\x00\x01binary"),
    ];
    for (topic, value) in poison {
        app.send(&producer, topic, Some(b"poison"), value);
    }
    app.produce(&producer, second);
    let expected = replay_of(&app, &lines, None);

    let live = run_until_decided(&app, expected.len());
    assert_same_decisions(&live, &expected);

    let dead = app.read_all(
        &[app.config.kafka.topics.dead_letter.as_str()],
        "read_committed",
    );
    assert_eq!(dead.len(), 4, "one dead letter per poison record");
    let mut sources = Vec::new();
    for record in &dead {
        let headers = headers_of(record);
        for name in [
            "source_topic",
            "source_partition",
            "source_offset",
            "error",
            "error_reason",
        ] {
            assert!(
                headers.contains_key(name),
                "header {name} missing: {headers:?}"
            );
        }
        assert_eq!(
            record.key(),
            Some(&b"poison"[..]),
            "the original key is kept"
        );
        sources.push(headers["source_topic"].clone());
    }
    sources.sort();
    let mut inputs = vec![
        app.config.kafka.topics.cart.clone(),
        app.config.kafka.topics.clickstream.clone(),
        app.config.kafka.topics.customers.clone(),
        app.config.kafka.topics.stock.clone(),
    ];
    inputs.sort();
    assert_eq!(sources, inputs);
}

/// Parses `task restored` log lines: (processor, task, records, wiped).
fn restores(log: &Path) -> Vec<(String, u16, u64, bool)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("task restored"))
        .map(|l| {
            let field = |name: &str| -> String {
                let start = l.find(&format!("{name}=")).unwrap() + name.len() + 1;
                l[start..].split_whitespace().next().unwrap().to_string()
            };
            (
                field("processor"),
                field("task").parse().unwrap(),
                field("records").parse().unwrap(),
                field("wiped") == "true",
            )
        })
        .collect()
}

/// Waits until the log shows at least `count` task restores after the first `before`.
fn wait_for_restores(log: &Path, before: usize, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while restores(log).len() < before + count {
        assert!(
            Instant::now() < deadline,
            "{count} task restores expected; the log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_second_instance_takes_over_and_a_returning_one_restores_only_the_gap() {
    let app = App::new("failover", PARTITIONS, NO_WALL_CLOCK);
    let lines = with_sentinels(single_task_workload(8_000, 5), PARTITIONS);
    let expected = replay_of(&app, &lines, None);
    let (a_state, a_log) = (app.dir.path().join("a"), app.dir.path().join("a.log"));
    let (b_state, b_log) = (app.dir.path().join("b"), app.dir.path().join("b.log"));
    let quarter = lines.len() / 4;

    // A starts alone and owns every task, so whichever tasks it gets when it returns,
    // it has local state for them.
    let mut a = app.spawn(&a_state, &a_log);
    wait_for_restores(&a_log, 0, 2 * PARTITIONS as usize);
    app.produce_while_paused(&[&a], &lines[..quarter]);
    let mut b = app.spawn(&b_state, &b_log);
    // B has joined once it has restored the tasks the group gave it.
    wait_for_restores(&b_log, 0, 1);
    app.produce_while_paused(&[&a, &b], &lines[quarter..2 * quarter]);
    // Both have worked off the second quarter before A dies.
    let addresses: Vec<String> = [&a_log, &b_log]
        .iter()
        .map(|log| App::http_address(log, Duration::from_secs(30)))
        .collect();
    let seen = 2 * quarter;
    wait_for_metric(
        &addresses,
        "personalizer_events_total",
        &[],
        seen as f64,
        Duration::from_secs(90),
    );

    // A dies; B takes every partition, restoring A's tasks from the changelogs.
    a.kill().unwrap();
    a.wait().unwrap();
    app.produce_while_paused(&[&b], &lines[2 * quarter..3 * quarter]);
    let deadline = Instant::now() + Duration::from_secs(90);
    while restores(&b_log).iter().filter(|r| r.2 > 0).count() == 0 {
        assert!(
            Instant::now() < deadline,
            "B never restored A's tasks; its log:\n{}",
            std::fs::read_to_string(&b_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // A comes back on its old state and reads only the changelog records it lacks.
    let before = restores(&a_log).len();
    let mut a = app.spawn(&a_state, &a_log);
    wait_for_restores(&a_log, before, 1);
    app.produce_while_paused(&[&a, &b], &lines[3 * quarter..]);
    app.wait_for_decisions(expected.len(), Duration::from_secs(180));
    assert_eq!(terminate(&mut a), Some(0));
    assert_eq!(terminate(&mut b), Some(0));
    assert_same_decisions(&app.decisions(), &expected);

    let returned: Vec<_> = restores(&a_log).into_iter().skip(before).collect();
    assert!(!returned.is_empty(), "A restored its tasks on return");
    assert!(
        returned.iter().all(|r| !r.3),
        "a returning task keeps its local state: {returned:?}; A's restores:\n{}",
        std::fs::read_to_string(&a_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("task restored") || l.contains("partitions"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let changelog_records: u64 = app
        .read_all(
            &[
                format!("{}-customer-changelog", app.name).as_str(),
                format!("{}-product-changelog", app.name).as_str(),
            ],
            "read_committed",
        )
        .len() as u64;
    let gap: u64 = returned.iter().map(|r| r.2).sum();
    assert!(
        gap < changelog_records,
        "restore on return read {gap} records, not the whole changelog ({changelog_records})"
    );
}

#[test]
fn at_least_once_also_decides_everything() {
    let app = App::new(
        "alo",
        PARTITIONS,
        "processing_guarantee = \"at_least_once\"",
    );
    let lines = workload(2_000, 13);
    app.produce(&app.producer(), &lines);
    let expected = replay_of(&app, &lines, None);
    let live = run_until_decided(&app, expected.len());
    assert_same_decisions(&live, &expected);
}

/// Adaptive pacing commits a slice of live input as soon as it has been read, long before
/// `commit_interval`, and decides the same as replay.
#[test]
fn adaptive_commit_pacing_commits_live_input_without_waiting_for_the_interval() {
    // Slices arrive while the processor runs: without the wall clock, a quiet task
    // would fire the timers a later slice cancels. A slice's records reach the
    // consumer partition by partition; on a loaded machine one partition's fetch can
    // come later than the default `max_task_idle` after another's, and its records are
    // then taken after later ones (as Kafka Streams would), unlike replay: the longer
    // idle keeps the order replay's.
    let config = format!(
        "{NO_WALL_CLOCK}\ncommit_interval = \"30s\"\ncommit_pacing = \"adaptive\"\nmax_task_idle = \"2s\""
    );
    let app = App::new("adaptive", PARTITIONS, &config);
    let events = workload(3_000, 17);
    let lines = with_sentinels(events.clone(), PARTITIONS);
    let expected = replay_of(&app, &lines, None);
    let state = app.dir.path().join("state");
    let log = app.dir.path().join("run.log");
    let mut child = app.spawn(&state, &log);
    let address = App::http_address(&log, Duration::from_secs(30));
    let producer = app.producer();
    let mut sent = 0;
    // The sentinels, which move every task's clock past all pending reminders, go last
    // in a slice of their own, once everything before them has been applied: a cart
    // event taken after its task's sentinel would arm a reminder that no later event
    // fires.
    let slices = events
        .chunks(events.len() / 3 + 1)
        .chain(std::iter::once(&lines[events.len()..]));
    for slice in slices {
        app.produce(&producer, slice);
        sent += slice.len();
        // Input is counted when its batch commits: with interval pacing a slice would
        // wait 30 s for its commit.
        wait_for_metric(
            std::slice::from_ref(&address),
            "personalizer_events_total",
            &[],
            sent as f64,
            Duration::from_secs(20),
        );
    }
    app.wait_for_decisions(expected.len(), Duration::from_secs(60));
    assert_eq!(terminate(&mut child), Some(0));
    assert_same_decisions(&app.decisions(), &expected);
}

/// `topics create` makes every compacted topic with the configured segment size (so the
/// log cleaner can compact what a restore reads) and leaves the others alone.
#[test]
fn compacted_topics_are_created_with_the_configured_segment_size() {
    let app = App::new(
        "segments",
        PARTITIONS,
        "compacted_segment_bytes = 2097152\n",
    );
    assert_eq!(app.config.kafka.compacted_segment_bytes, 2 << 20);
    let layout = personalizer::runtime::topics::TopicLayout::new(&app.config);
    let cluster = personalizer::runtime::topics::ClusterTopics::fetch(&app.config, &layout)
        .expect("describe the topics");
    let compacted: Vec<&str> = layout.compacted_names().collect();
    assert!(
        compacted.len() >= 4,
        "changelogs, profiles and products: {compacted:?}"
    );
    for name in compacted {
        let info = &cluster.topics[name];
        assert_eq!(info.cleanup_policy.as_deref(), Some("compact"), "{name}");
        assert_eq!(info.segment_bytes, Some(2 << 20), "{name}");
    }
}

#[test]
fn waiting_for_deliveries_ends_when_the_broker_acknowledges() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let app = App::new("deliveries", PARTITIONS, "");
    let producer: BaseProducer = personalizer::runtime::clients::base(&app.config)
        .create()
        .unwrap();
    let topic = &app.config.kafka.topics.clickstream;
    // The fastest of a few rounds: rdkafka's own flush never took less than 100 ms.
    let fastest = (0..5)
        .map(|round| {
            for n in 0..10 {
                let key = format!("{round}-{n}");
                producer
                    .send(BaseRecord::<str, str>::to(topic).key(&key).payload("{}"))
                    .map_err(|(e, _)| e)
                    .unwrap();
            }
            let started = Instant::now();
            personalizer::runtime::clients::deliver_outstanding(&producer, Duration::from_secs(30))
                .unwrap();
            assert_eq!(producer.in_flight_count(), 0);
            started.elapsed()
        })
        .min()
        .unwrap();
    assert!(fastest < Duration::from_millis(80), "{fastest:?}");
}

#[test]
fn run_refuses_topics_that_are_not_co_partitioned_and_names_them() {
    let app = App::new("copart", PARTITIONS, "");
    let mut config = app.config.clone();
    let other = format!("{}.cart-3", app.name);
    config.kafka.topics.cart = other.clone();
    personalizer::runtime::topics::create(
        &config,
        &[(
            personalizer::runtime::topics::TopicSpec {
                name: other.clone(),
                setting: "kafka.topics.cart".into(),
                role: personalizer::runtime::topics::Role::CustomerInput,
                compacted: false,
            },
            3,
        )],
    )
    .unwrap();
    let path = app.dir.path().join("copart.toml");
    let text = std::fs::read_to_string(&app.config_path).unwrap().replace(
        &format!("cart = \"{}.cart\"", app.name),
        &format!("cart = \"{other}\""),
    );
    std::fs::write(&path, text).unwrap();
    let output = app
        .command()
        .args(["run", "--config"])
        .arg(&path)
        .arg("--state-dir")
        .arg(app.dir.path().join("state"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("`{other}`")) && stderr.contains("kafka.topics.cart"),
        "{stderr}"
    );
    assert!(stderr.contains("3 partitions but must have 4"), "{stderr}");
}

/// Valid events that would make a state too big for its changelog record: two items
/// with a 600 KB product name (once a state the broker refused, which stalled every
/// partition for good while health stayed green) and an item beyond the cart's line
/// limit. Each goes to the dead-letter topic with its reason; everything else is
/// decided exactly as `replay` decides it.
#[test]
fn events_past_the_limits_are_dead_lettered_and_the_rest_flows() {
    let app = App::new(
        "limits",
        PARTITIONS,
        "[rules.limits]\nmax_cart_lines = 20\n",
    );
    let lines = workload(1_500, 4);
    let producer = app.producer();
    let (first, second) = lines.split_at(lines.len() / 2);
    app.produce(&producer, first);
    // In event-time order with the stream: as late as the last event before them.
    let last: serde_json::Value = serde_json::from_str(first.last().unwrap()).unwrap();
    let at = last["occurred_at"].as_str().unwrap().to_string();
    let huge_name = "n".repeat(600_000);
    for id in ["big-1", "big-2"] {
        let huge = format!(
            r#"{{"event_id":"{id}","type":"cart_item_added","occurred_at":"{at}","customer_id":"c-big","cart_id":"k-big","product":{{"sku":"{id}","name":"{huge_name}"}},"quantity":1}}"#
        );
        app.send(
            &producer,
            &app.config.kafka.topics.cart,
            Some(b"c-big"),
            huge.as_bytes(),
        );
    }
    // One line more than the cart may hold: the last one is refused.
    let full: Vec<String> = (0..21)
        .map(|i| {
            format!(
                r#"{{"event_id":"full-{i}","type":"cart_item_added","occurred_at":"{at}","customer_id":"c-full","cart_id":"k-full","product":{{"sku":"F{i}"}},"quantity":1}}"#
            )
        })
        .collect();
    app.produce(&producer, &full);
    app.produce(&producer, second);
    let replayed: Vec<String> = first.iter().chain(&full).chain(second).cloned().collect();
    let expected = replay_of(&app, &replayed, None);
    assert!(
        expected
            .iter()
            .any(|d| d.customer_id.as_deref() == Some("c-full")),
        "the cart within its limit is reminded"
    );

    let live = run_until_decided(&app, expected.len());
    assert_same_decisions(&live, &expected);

    let dead = app.read_all(
        &[app.config.kafka.topics.dead_letter.as_str()],
        "read_committed",
    );
    let mut reasons: Vec<(String, String)> = dead
        .iter()
        .map(|record| {
            let header = |name: &str| {
                record
                    .headers()
                    .expect("dead letters carry headers")
                    .iter()
                    .find(|h| h.key == name)
                    .map(|h| String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
                    .unwrap_or_default()
            };
            (
                header("error_reason"),
                String::from_utf8_lossy(record.key().unwrap_or_default()).into_owned(),
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            ("limit_exceeded".to_string(), "c-full".to_string()),
            ("too_large".to_string(), "c-big".to_string()),
            ("too_large".to_string(), "c-big".to_string()),
        ]
    );
    let refused = dead
        .iter()
        .find(|r| r.key() == Some(&b"c-full"[..]))
        .expect("the refused item");
    let value = String::from_utf8_lossy(refused.payload().unwrap_or_default());
    assert!(
        value.contains(r#""event_id":"full-20""#),
        "the refused event itself: {value}"
    );
}
