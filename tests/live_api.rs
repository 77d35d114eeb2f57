//! The read API live (CONTRACT §5.7, "any instance answers any key"), against a real
//! broker: two instances share the customer partitions, and every shopper's profile is
//! answered, identically, by both: one answers from its own state, the other forwards
//! the request to it through the instances topic's directory.

mod common;

use common::live::{http_get, metric_sum, terminate, wait_for_status, App};
use personalizer::generate::{Generator, GeneratorSettings};
use personalizer::time::parse_rfc3339;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 4;

fn shopper_keys(lines: &[String]) -> BTreeSet<String> {
    lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|e| {
            e["customer_id"]
                .as_str()
                .or(e["anonymous_id"].as_str())
                .map(str::to_string)
        })
        .collect()
}

/// GETs `path` from `address` until it answers something other than a 503 (the
/// directory of instances still settling after the rebalance), for at most `within`.
fn settled_get(address: &str, path: &str, within: Duration) -> (u16, String) {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = http_get(address, path);
        if status != 503 || Instant::now() >= deadline {
            return (status, body);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_instances_answer_every_shopper_identically() {
    // No wall clock: a quiet task's stream time (a profile's `as_of`) stays where the
    // events left it, so two answers a moment apart are the same answer.
    let app = App::new("api-two", PARTITIONS, "grace = \"3650d\"");
    let lines: Vec<String> = Generator::new(GeneratorSettings {
        shoppers: 150,
        events: 3_000,
        seed: 11,
        start: parse_rfc3339("2026-01-01T00:00:00Z").unwrap(),
        span: 86_400_000,
        history: 0,
        products: 40,
        lateness: 0,
    })
    .map(|e| e.to_json_line())
    .collect();

    let logs = [app.dir.path().join("a.log"), app.dir.path().join("b.log")];
    let mut children = [
        app.spawn(&app.dir.path().join("a"), &logs[0]),
        app.spawn(&app.dir.path().join("b"), &logs[1]),
    ];
    let http: Vec<String> = logs
        .iter()
        .map(|log| App::http_address(log, Duration::from_secs(30)))
        .collect();
    for address in &http {
        wait_for_status(address, "/readyz", 200, Duration::from_secs(90));
    }
    let producer = app.producer();
    app.produce(&producer, &lines);
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(10)).unwrap();
    app.wait_until_input_processed(Duration::from_secs(120));
    // Sign-ins and product messages travel on between tasks: wait for those too.
    for suffix in ["by-customer", "by-sku"] {
        app.wait_until_internal_processed(
            &format!("{}-{suffix}", app.name),
            Duration::from_secs(120),
        );
    }

    let keys = shopper_keys(&lines);
    let mut answered = 0;
    for key in &keys {
        let path = format!("/v1/shoppers/{key}/profile");
        let (status_a, body_a) = settled_get(&http[0], &path, Duration::from_secs(30));
        let (status_b, body_b) = settled_get(&http[1], &path, Duration::from_secs(30));
        assert_eq!(status_a, status_b, "{key}: {body_a} / {body_b}");
        if ![200, 404].contains(&status_a) {
            for log in &logs {
                let text = std::fs::read_to_string(log).unwrap();
                let lines: Vec<&str> = text
                    .lines()
                    .filter(|l| {
                        l.contains("announced") || l.contains("restored") || l.contains("rebalance")
                    })
                    .collect();
                eprintln!("{}:\n{}", log.display(), lines.join("\n"));
            }
            panic!("{key}: {status_a} {body_a}");
        }
        let json_a: serde_json::Value = serde_json::from_str(&body_a).unwrap();
        let json_b: serde_json::Value = serde_json::from_str(&body_b).unwrap();
        assert_eq!(json_a, json_b, "{key} is answered differently");
        if status_a == 200 {
            answered += 1;
        }
    }
    // Nearly every shopper has a profile (erased ones do not).
    assert!(
        answered * 10 >= keys.len() * 9,
        "{answered} of {} shoppers answered",
        keys.len()
    );
    // Each instance answered about half of them by asking the other.
    for address in &http {
        let (_, metrics) = http_get(address, "/metrics");
        let forwarded = metric_sum(
            &metrics,
            "personalizer_api_forwards_total",
            &["outcome=\"answered\""],
        );
        assert!(
            forwarded >= (keys.len() / 4) as f64,
            "{address} forwarded only {forwarded} of {} requests",
            keys.len()
        );
    }
    // A search order for a shopper on the other instance is forwarded, body and all.
    let key = keys.iter().next().unwrap();
    let order = |address: &str| {
        ureq::post(&format!("http://{address}/v1/shoppers/{key}/search-order"))
            .header("Content-Type", "application/json")
            .send(r#"{"query": "dress", "skus": ["SKU-00001", "SKU-00002", "SKU-00003"]}"#)
            .unwrap()
            .into_body()
            .read_to_string()
            .unwrap()
    };
    assert_eq!(order(&http[0]), order(&http[1]));

    for child in &mut children {
        assert_eq!(terminate(child), Some(0));
    }
}
