//! `personalizer replay`, `generate` and `check-config` as a user runs them (CONTRACT §4).

mod common;

use common::*;
use personalizer::decision::{Decision, DecisionType};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn personalizer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_personalizer"))
}

fn run(args: &[&str]) -> Output {
    personalizer().args(args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut f = std::fs::File::create(path).unwrap();
    for line in lines {
        writeln!(f, "{line}").unwrap();
    }
}

fn generate(dir: &Path, events: u64, seed: u64) -> std::path::PathBuf {
    let path = dir.join(format!("events-{seed}.jsonl"));
    let out = run(&[
        "generate",
        "--shoppers",
        "500",
        "--events",
        &events.to_string(),
        "--seed",
        &seed.to_string(),
        "--span",
        "2d",
        "--output",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    path
}

#[test]
fn same_input_same_config_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), 20_000, 7);
    let replay = || {
        run(&[
            "replay",
            "--until",
            "2026-01-05T00:00:00Z",
            input.to_str().unwrap(),
        ])
    };
    let first = replay();
    assert!(first.status.success(), "{}", stderr(&first));
    let text = stdout(&first);
    assert!(
        text.lines().count() > 50,
        "a generated workload yields decisions:\n{text}"
    );
    assert!(text.contains("\"type\":\"abandoned_cart\""));
    assert!(text.contains("\"type\":\"back_in_stock\""));
    assert_eq!(first.stdout, replay().stdout);
}

#[test]
fn bad_lines_are_reported_with_their_number_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    e.lines.push("{not json".to_string());
    e.add("c1", 1, "k1", "S2", -3);
    e.lines.push(String::new()); // blank lines are not events
    e.push(serde_json::json!({"type": "coupon_copied", "occurred_at": ts(2), "customer_id": "c1"}));
    e.add("c1", 3, "k1", "S3", 1);
    let input = dir.path().join("in.jsonl");
    write_lines(&input, &e.lines);
    let out = run(&[
        "replay",
        "--types",
        "abandoned_cart",
        "--until",
        &ts(200),
        input.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let errors = stderr(&out);
    let name = input.display().to_string();
    assert!(
        errors.contains(&format!("{name}:2: not a JSON object")),
        "{errors}"
    );
    assert!(
        errors.contains(&format!("{name}:3: field `quantity`: negative quantity -3")),
        "{errors}"
    );
    assert_eq!(
        errors.lines().count(),
        2,
        "unknown types are skipped silently: {errors}"
    );
    let decisions = stdout(&out);
    assert_eq!(decisions.lines().count(), 1);
    assert!(
        decisions.contains("\"sku\":\"S3\""),
        "state kept the good lines: {decisions}"
    );
    assert!(!decisions.contains("\"sku\":\"S2\""));
}

#[test]
fn strict_makes_the_first_bad_line_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    e.lines.push("[]".into());
    write_lines(&input, &e.lines);
    let out = run(&["replay", "--strict", input.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(":2: not a JSON object"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn stdin_and_output_file_work() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    let output = dir.path().join("decisions.jsonl");
    let mut child = personalizer()
        .args([
            "replay",
            "--types",
            "abandoned_cart,back_in_stock",
            "--until",
            &ts(90),
            "--output",
            output.to_str().unwrap(),
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{}", e.lines[0]).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(output).unwrap();
    assert_eq!(written.lines().count(), 1, "{written}");
}

#[test]
fn a_replay_split_in_two_over_one_state_dir_equals_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), 30_000, 11);
    let text = std::fs::read_to_string(&input).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    let first_path = dir.path().join("first.jsonl");
    let second_path = dir.path().join("second.jsonl");
    write_lines(&first_path, first);
    write_lines(&second_path, second);
    let until = "2026-01-04T00:00:00Z";

    let whole = run(&["replay", "--until", until, input.to_str().unwrap()]);
    assert!(whole.status.success(), "{}", stderr(&whole));

    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let a = run(&["replay", "--state-dir", state, first_path.to_str().unwrap()]);
    let b = run(&[
        "replay",
        "--state-dir",
        state,
        "--until",
        until,
        second_path.to_str().unwrap(),
    ]);
    assert!(
        a.status.success() && b.status.success(),
        "{}{}",
        stderr(&a),
        stderr(&b)
    );
    let split = [a.stdout, b.stdout].concat();
    assert!(!whole.stdout.is_empty());
    assert_eq!(String::from_utf8(split).unwrap(), stdout(&whole));
}

#[test]
fn a_state_dir_written_with_other_partitions_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    write_lines(&input, &e.lines);
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    assert!(
        run(&["replay", "--state-dir", state, input.to_str().unwrap()])
            .status
            .success()
    );
    let out = personalizer()
        .args(["replay", "--state-dir", state, input.to_str().unwrap()])
        .env("PERSONALIZER_ENGINE__PARTITIONS", "3")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("`engine.partitions`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn stats_report_throughput_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), 5_000, 3);
    let out = run(&[
        "replay",
        "--stats",
        "--output",
        "/dev/null",
        input.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let summary: serde_json::Value = serde_json::from_str(stderr(&out).trim()).unwrap();
    assert_eq!(summary["lines"], 5_000);
    assert!(summary["events_per_second"].as_f64().unwrap() > 0.0);
    assert!(summary["peak_rss_bytes"].as_u64().unwrap() > 0);
    assert!(summary["timers_pending"].as_u64().is_some());
}

#[test]
fn check_config_names_the_bad_setting() {
    let dir = tempfile::tempdir().unwrap();
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/personalizer.toml");
    let out = run(&["check-config", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[rules.abandoned_cart]\nreminders = [\"1h\", \"soon\"]\n",
    )
    .unwrap();
    let out = run(&["check-config", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("rules.abandoned_cart.reminders[1]"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn replay_refuses_a_bad_until() {
    let out = run(&["replay", "--until", "tomorrow", "-"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--until"), "{}", stderr(&out));
}

#[test]
fn events_from_the_future_of_now_are_bad_lines_and_decide_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("future.jsonl");
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    // Two days after the cart: it would fire both reminders if it moved stream time.
    e.view("c1", 2 * 24 * 60);
    write_lines(&input, &e.lines);
    let input = input.to_str().unwrap();
    // Judged against an instant ten minutes after the cart: the view is from its future.
    let now = ts(10);
    let out = run(&["replay", "--now", &now, input]);
    assert!(out.status.success(), "{}", stderr(&out));
    for line in stdout(&out).lines() {
        let decision: Decision = serde_json::from_str(line).unwrap();
        assert!(decision.decided_at <= at(10), "dated after now: {line}");
        assert_ne!(
            decision.decision_type(),
            DecisionType::AbandonedCart,
            "{line}"
        );
    }
    let errors = stderr(&out);
    assert!(
        errors.contains(":2: field `occurred_at`") && errors.contains("engine.max_clock_skew"),
        "{errors}"
    );
    // Against the wall clock (months later) it is an ordinary event.
    let out = run(&["replay", "--types", "abandoned_cart", input]);
    assert_eq!(stderr(&out), "");
    assert_eq!(stdout(&out).lines().count(), 2, "both reminders");
    let out = run(&["replay", "--now", "yesterday", input]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--now"), "{}", stderr(&out));
}

#[test]
fn events_past_the_limits_are_reported_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("limits.toml");
    std::fs::write(&config, "[rules.limits]\nmax_cart_lines = 1\n").unwrap();
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    let second_line = e.add("c1", 1, "k1", "S2", 1);
    let mut lines = e.lines.clone();
    let huge = format!(
        r#"{{"event_id":"huge","type":"page_viewed","occurred_at":"{}","customer_id":"c2","page_type":"home","url":"{}"}}"#,
        ts(2),
        "u".repeat(70_000)
    );
    lines.push(huge);
    let input = dir.path().join("events.jsonl");
    write_lines(&input, &lines);
    let out = run(&[
        "replay",
        "--config",
        config.to_str().unwrap(),
        "--types",
        "abandoned_cart",
        "--stats",
        "--until",
        "2026-01-01T03:00:00Z",
        input.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let errors = stderr(&out);
    assert!(
        errors.contains(":2: limit_exceeded") && errors.contains("max_cart_lines"),
        "{errors}"
    );
    assert!(
        errors.contains(":3: the record is") && errors.contains("max_event_bytes"),
        "{errors}"
    );
    let summary: serde_json::Value = serde_json::from_str(errors.lines().last().unwrap()).unwrap();
    assert_eq!(summary["refused"], 1, "{summary}");
    assert_eq!(summary["bad_lines"], 1, "{summary}");
    // The refused line left the cart as it was: one line, reminded once.
    let decisions = stdout(&out);
    assert_eq!(decisions.lines().count(), 1, "{decisions}");
    assert!(
        decisions.contains(r#""sku":"S1""#) && !decisions.contains(&format!("event {second_line}")),
        "{decisions}"
    );
}

#[test]
fn types_keeps_only_the_named_decision_types() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Events::new();
    e.add("c1", 0, "k1", "S1", 1);
    e.erase("c1", 200);
    let input = dir.path().join("in.jsonl");
    write_lines(&input, &e.lines);
    let input = input.to_str().unwrap();
    let types_of = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["replay"];
        all.extend_from_slice(args);
        all.extend(["--until", "2026-01-02T00:00:00Z", input]);
        let out = run(&all);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let all = types_of(&[]);
    for t in [
        "abandoned_cart",
        "segment_changed",
        "profile",
        "profile_deleted",
    ] {
        assert!(all.iter().any(|x| x == t), "{t} in {all:?}");
    }
    assert!(types_of(&["--types", "abandoned_cart"])
        .iter()
        .all(|t| t == "abandoned_cart"));
    let profiles = types_of(&["--types", "profile"]);
    assert!(profiles
        .iter()
        .all(|t| t == "profile" || t == "profile_deleted"));
    assert!(
        profiles.iter().any(|t| t == "profile_deleted"),
        "tombstones are profiles: {profiles:?}"
    );
    let out = run(&["replay", "--types", "coupon", input]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("`coupon` is not a decision type")
            && stderr(&out).contains("segment_changed"),
        "{}",
        stderr(&out)
    );
}

/// CONTRACT §5.3 through `generate`'s defaults: months of regular customers before the
/// busy days take shoppers into and out of every lifecycle stage, every RFM group,
/// `high_value`, `cart_abandoner` and the interest segments.
#[test]
fn a_default_generated_run_enters_and_leaves_every_segment() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("default.jsonl");
    let out = run(&["generate", "--output", events.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&[
        "replay",
        "--types",
        "segment_changed",
        events.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut seen = std::collections::BTreeSet::new();
    for line in stdout(&out).lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(value["type"], "segment_changed", "{line}");
        let segment = value["segment"].as_str().unwrap();
        // Interest segments are named after departments: one family for this test.
        let segment = if segment.starts_with("interest:") {
            "interest:*"
        } else {
            segment
        };
        seen.insert((
            segment.to_string(),
            value["change"].as_str().unwrap().to_string(),
        ));
    }
    let mut expected: Vec<String> = ["high_value", "cart_abandoner", "interest:*"]
        .map(String::from)
        .to_vec();
    expected.extend(
        ["prospect", "new", "active", "at_risk", "lapsed"]
            .map(|stage| format!("lifecycle:{stage}")),
    );
    expected.extend(
        [
            "champions",
            "loyal",
            "potential_loyalist",
            "new",
            "promising",
            "need_attention",
            "about_to_sleep",
            "cant_lose",
            "at_risk",
            "hibernating",
        ]
        .map(|group| format!("rfm:{group}")),
    );
    for segment in &expected {
        for change in ["entered", "exited"] {
            assert!(
                seen.contains(&(segment.clone(), change.to_string())),
                "no `{segment}` {change} in a default run; seen: {seen:?}"
            );
        }
    }
}
