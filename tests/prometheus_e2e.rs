//! A real Prometheus (the Debian package's `prometheus`) scrapes `personalizer run` on
//! the real broker: the counts it reads back through its HTTP API are the events
//! produced and the decisions on the output topics, the alert rules load, and every
//! query of the Grafana dashboard returns data.

mod common;
#[path = "common/promql.rs"]
mod promql;

use common::live::{http_get, metric_sum, terminate, wait_for_status, App};
use personalizer::decision::{DecisionBody, SegmentChange};
use personalizer::generate::{Generator, GeneratorSettings};
use personalizer::time::parse_rfc3339;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Prometheus {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second, with the project's alert rules.
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alerts.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: personalizer\n    static_configs:\n      - targets: [\"{target}\"]\n",
            rules.display()
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("`prometheus` runs (scripts/install-deps installs the Debian package)");
        let prometheus = Prometheus {
            child,
            address,
            _dir: dir,
        };
        wait_for_status(
            &prometheus.address,
            "/-/ready",
            200,
            Duration::from_secs(60),
        );
        prometheus
    }

    /// The result vector of an instant query.
    fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let response = ureq::get(&format!("http://{}/api/v1/query", self.address))
            .query("query", promql)
            .call()
            .unwrap_or_else(|e| panic!("query `{promql}`: {e}"));
        let body: serde_json::Value =
            serde_json::from_str(&response.into_body().read_to_string().unwrap()).unwrap();
        assert_eq!(body["status"], "success", "`{promql}`: {body}");
        body["data"]["result"].as_array().unwrap().clone()
    }

    /// The single value of a query, if it has one.
    fn value(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql);
        result
            .first()
            .map(|sample| sample["value"][1].as_str().unwrap().parse::<f64>().unwrap())
    }

    /// Waits until `promql` evaluates to `expected`.
    fn wait_for(&self, promql: &str, expected: f64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.value(promql);
            if got == Some(expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "`{promql}` is {got:?}, not {expected}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

#[test]
fn prometheus_scrapes_the_processor_and_counts_what_it_did() {
    let app = App::new(
        "prometheus",
        2,
        "grace = \"3650d\"\n[log]\nformat = \"json\"",
    );
    let lines: Vec<String> = Generator::new(GeneratorSettings {
        shoppers: 200,
        events: 3_000,
        seed: 5,
        start: parse_rfc3339("2026-01-01T00:00:00Z").unwrap(),
        span: 86_400_000,
        history: 0,
        products: 30,
        lateness: 0,
    })
    .map(|e| e.to_json_line())
    .collect();

    let log = app.dir.path().join("run.log");
    let mut child = app.spawn(&app.dir.path().join("state"), &log);
    let http = App::http_address(&log, Duration::from_secs(30));
    assert_eq!(http_get(&http, "/healthz").0, 200);
    let ready = wait_for_status(&http, "/readyz", 200, Duration::from_secs(60));
    assert_eq!(ready.trim(), "ready");
    let prometheus = Prometheus::start(&http);

    let producer = app.producer();
    app.produce(&producer, &lines);
    app.send(
        &producer,
        &app.config.kafka.topics.cart,
        Some(b"poison"),
        b"{not json",
    );
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(10)).unwrap();
    let records = lines.len() as f64 + 1.0;

    // The processor's own scrape: everything consumed and committed, nothing waiting.
    let deadline = Instant::now() + Duration::from_secs(120);
    let metrics = loop {
        let (_, text) = http_get(&http, "/metrics");
        let lag = metric_sum(&text, "personalizer_consumer_lag_records", &[]);
        if metric_sum(&text, "personalizer_events_total", &[]) == records && lag == 0.0 {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "not all records counted:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let decisions = app.decisions();
    assert!(!decisions.is_empty());
    let processed = metric_sum(
        &metrics,
        "personalizer_events_total",
        &["outcome=\"processed\""],
    );
    let duplicates = metric_sum(
        &metrics,
        "personalizer_events_total",
        &["outcome=\"duplicate\""],
    );
    assert_eq!(processed + duplicates, lines.len() as f64);
    assert_eq!(
        metric_sum(
            &metrics,
            "personalizer_events_total",
            &["outcome=\"invalid\""]
        ),
        1.0
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "personalizer_dead_letters_total",
            &[
                "reason=\"syntax\"",
                &format!("topic=\"{}\"", app.config.kafka.topics.cart)
            ]
        ),
        1.0
    );
    // Profile tombstones are keys without a value on Kafka, counted as profiles.
    let tombstones = app.tombstones().len();
    assert!(tombstones > 0, "sign-ins tombstone anonymous profiles");
    assert_eq!(
        metric_sum(&metrics, "personalizer_decisions_total", &[]),
        (decisions.len() + tombstones) as f64
    );
    for (kind, mut count) in count_by_type(&decisions) {
        if kind == "profile" {
            count += tombstones as u64;
        }
        assert_eq!(
            metric_sum(
                &metrics,
                "personalizer_decisions_total",
                &[&format!("type=\"{kind}\"")]
            ),
            count as f64,
            "{kind}"
        );
    }
    // Customers per lifecycle stage: where the lifecycle decisions left each customer,
    // less those erased since (who leave their stage without a decision).
    let mut stage_of: std::collections::BTreeMap<String, (i64, Option<String>)> =
        std::collections::BTreeMap::new();
    for d in &decisions {
        if let DecisionBody::SegmentChanged { segment, change } = &d.body {
            if let Some(stage) = segment.strip_prefix("lifecycle:") {
                let customer = d.customer_id.clone().expect("segments are for customers");
                let entry = stage_of.entry(customer).or_insert((i64::MIN, None));
                if *change == SegmentChange::Entered && d.decided_at >= entry.0 {
                    *entry = (d.decided_at, Some(stage.to_string()));
                }
            }
        }
    }
    for line in &lines {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        if event["type"] == "customer_erased" {
            let customer = event["customer_id"].as_str().unwrap();
            let at = parse_rfc3339(event["occurred_at"].as_str().unwrap()).unwrap();
            if let Some(entry) = stage_of.get_mut(customer) {
                if entry.0 <= at {
                    entry.1 = None;
                }
            }
        }
    }
    for stage in ["prospect", "new", "active", "at_risk", "lapsed"] {
        let expected = stage_of
            .values()
            .filter(|(_, s)| s.as_deref() == Some(stage))
            .count() as f64;
        let label = format!("stage=\"{stage}\"");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The gauges are refreshed once a second.
            let (_, text) = http_get(&http, "/metrics");
            let gauge = metric_sum(
                &text,
                "personalizer_customers_by_lifecycle_stage",
                &[&label],
            );
            if gauge == expected {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{stage}: gauge {gauge}, decisions say {expected}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    assert!(
        stage_of.values().any(|(_, s)| s.is_some()),
        "the workload puts customers in stages"
    );
    assert_eq!(
        metric_sum(&metrics, "personalizer_tasks_assigned", &[]),
        4.0
    );
    assert_eq!(
        metric_sum(&metrics, "personalizer_tasks_restoring", &[]),
        0.0
    );
    assert!(metric_sum(&metrics, "personalizer_commits_total", &[]) > 0.0);
    assert!(
        metric_sum(
            &metrics,
            "personalizer_event_to_decision_seconds_count",
            &[]
        ) >= processed
    );
    assert!(metric_sum(&metrics, "personalizer_rebalances_total", &[]) >= 1.0);
    assert_eq!(metric_sum(&metrics, "personalizer_ready", &[]), 1.0);

    // The read API answers from committed state (and is counted): the profile of the
    // last shopper who viewed a product lists that product first among recently viewed;
    // a bad request is a 400 naming the parameter.
    let last_view: serde_json::Value = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .rfind(|e| e["type"] == "product_viewed")
        .unwrap();
    let key = last_view["customer_id"]
        .as_str()
        .or(last_view["anonymous_id"].as_str())
        .unwrap();
    let (status, body) = http_get(&http, &format!("/v1/shoppers/{key}/profile"));
    assert_eq!(status, 200, "{body}");
    let profile: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        profile["recently_viewed"][0], last_view["product"]["sku"],
        "{body}"
    );
    let (status, body) = http_get(&http, "/v1/recommendations?type=nope");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("`type`"), "{body}");
    prometheus.wait_for(
        "sum(personalizer_api_requests_total{route=~\"profile|recommendations\"})",
        2.0,
    );

    // The same counts, read back through Prometheus.
    prometheus.wait_for(
        "sum(personalizer_decisions_total)",
        (decisions.len() + tombstones) as f64,
    );
    prometheus.wait_for("sum(personalizer_events_total)", records);
    prometheus.wait_for(
        "sum(personalizer_events_total{outcome=~\"processed|duplicate\"})",
        lines.len() as f64,
    );
    prometheus.wait_for("sum(personalizer_dead_letters_total)", 1.0);
    prometheus.wait_for("sum(up{job=\"personalizer\"})", 1.0);
    // State keys and RocksDB figures are refreshed every second.
    prometheus.wait_for(
        "count(personalizer_state_keys{family=\"shoppers\"} > 0)",
        1.0,
    );

    // The alert rules load, evaluate, and none fires on a healthy processor.
    let response = ureq::get(&format!("http://{}/api/v1/rules", prometheus.address))
        .call()
        .unwrap();
    let rules: serde_json::Value =
        serde_json::from_str(&response.into_body().read_to_string().unwrap()).unwrap();
    let loaded = rules["data"]["groups"][0]["rules"].as_array().unwrap();
    assert!(loaded.len() >= 7, "{rules}");
    for rule in loaded {
        assert_eq!(rule["health"], "ok", "{rule}");
        assert_eq!(rule["state"], "inactive", "{rule}");
    }

    // Every query of the Grafana dashboard is valid and has data to show (a rate needs
    // two scrapes inside its window).
    let deadline = Instant::now() + Duration::from_secs(30);
    for (title, expr) in promql::dashboard_queries() {
        let expr = expr
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*");
        while prometheus.query(&expr).is_empty() {
            assert!(
                Instant::now() < deadline,
                "panel {title}: `{expr}` returns nothing"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    assert_eq!(terminate(&mut child), Some(0));

    // With `log.format = "json"` every line is a JSON object, and the dead letter's
    // names the task, topic, partition and offset.
    let log_text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = log_text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect();
    let dead_letter = lines
        .iter()
        .find(|l| l["message"] == "record sent to the dead-letter topic")
        .unwrap_or_else(|| panic!("no dead-letter line in\n{log_text}"));
    assert_eq!(dead_letter["level"], "WARN");
    assert_eq!(dead_letter["topic"], app.config.kafka.topics.cart.as_str());
    assert_eq!(dead_letter["reason"], "syntax");
    for field in ["task", "partition", "offset", "error", "timestamp"] {
        assert!(
            !dead_letter[field].is_null(),
            "{field} missing: {dead_letter}"
        );
    }
}

fn count_by_type(
    decisions: &[personalizer::decision::Decision],
) -> std::collections::BTreeMap<&'static str, u64> {
    let mut counts = std::collections::BTreeMap::new();
    for d in decisions {
        *counts.entry(d.decision_type().name()).or_default() += 1;
    }
    counts
}
