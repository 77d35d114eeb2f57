//! Avro on the output topics with a real Schema Registry: decisions read back with the
//! schemas registered for them at start-up, schemas the registry refuses or lacks,
//! Confluent's own Python client on both sides, and a registry behind TLS.

mod common;

use common::certificates::certificates_for_loopback;
use common::compare::{assert_same_decisions, replay_of, run_until_decided, workload, PARTITIONS};
use common::live::{http_get, metric_sum, terminate, wait_for_metric, App};
use common::registry::{
    produce_as_avro, register, registry, start_up_failure, subjects, TLS_REGISTRY_PORT,
};
use personalizer::decision::{Decision, DecisionType};
use personalizer::event_encoder::EventEncoder;
use rdkafka::message::Message;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn avro_decisions_read_back_with_the_schemas_registered_for_them() {
    let registry = registry();
    // All Avro: two input topics and every output, the product table included.
    let settings = format!(
        "[kafka.formats]\nclickstream = \"avro\"\ncart = \"avro\"\noutputs = \"avro\"\n\
         [schema_registry]\nurl = \"{registry}\"\n"
    );
    let app = App::with_products("avro-out", PARTITIONS, &settings, "");
    let lines = workload(1_500, 23);
    let expected: Vec<_> = replay_of(&app, &lines, None)
        .into_iter()
        .filter(|d| d.decision_type() != DecisionType::Product)
        .collect();
    produce_as_avro(&app, &app.producer(), registry, &lines);
    let log = app.dir.path().join("run.log");
    let mut child = app.spawn(&app.dir.path().join("state"), &log);
    let address = App::http_address(&log, Duration::from_secs(60));
    app.wait_for_decisions_where("every replayed decision", Duration::from_secs(180), |d| {
        d.iter()
            .filter(|d| d.decision_type() != DecisionType::Product)
            .count()
            >= expected.len()
    });
    // The product table read every product record back from its Avro topic: each is
    // applied, or superseded by a later one for its SKU read with it.
    let products = app.read_all(
        &[app.config.kafka.topics.products.as_str()],
        "read_committed",
    );
    let skus: std::collections::BTreeSet<&[u8]> = products.iter().filter_map(|r| r.key()).collect();
    assert!(!products.is_empty(), "the workload makes product records");
    wait_for_metric(
        std::slice::from_ref(&address),
        "personalizer_product_table_records_total",
        &[],
        products.len() as f64,
        Duration::from_secs(60),
    );
    let (_, metrics) = http_get(&address, "/metrics");
    let counted = |outcome: &str| {
        metric_sum(
            &metrics,
            "personalizer_product_table_records_total",
            &[&format!("outcome=\"{outcome}\"")],
        )
    };
    assert_eq!(counted("unreadable"), 0.0);
    assert_eq!(counted("deleted"), 0.0);
    assert!(
        counted("applied") >= skus.len() as f64,
        "every SKU's latest record applied: {} applied for {} SKUs",
        counted("applied"),
        skus.len()
    );
    // The processor may publish more while this runs: read the topic again, after the
    // metrics, to check that no record was counted twice.
    let on_topic_now = app
        .read_all(
            &[app.config.kafka.topics.products.as_str()],
            "read_committed",
        )
        .len();
    assert!(
        counted("applied") + counted("superseded") <= on_topic_now as f64,
        "{} applied and {} superseded of {on_topic_now} records",
        counted("applied"),
        counted("superseded")
    );
    assert_eq!(terminate(&mut child), Some(0));

    let records = app.read_all(&app.output_topics(), "read_committed");
    assert!(records
        .iter()
        .filter_map(|r| r.payload())
        .all(|p| p[0] == 0 && p.len() > 5));
    let live: Vec<_> = app
        .decisions()
        .into_iter()
        .filter(|d| d.decision_type() != DecisionType::Product)
        .collect();
    assert_same_decisions(&live, &expected);
    let registered = subjects(registry);
    for kind in DecisionType::ALL {
        let subject = format!("{}-value", app.config.kafka.topics.for_decision(kind));
        assert!(registered.contains(&subject), "{subject} in {registered:?}");
    }
}

#[test]
fn output_schemas_the_registry_refuses_or_lacks_stop_start_up_naming_the_subject() {
    let registry = registry();
    let outputs = |how: &str| {
        format!(
            "[kafka.formats]\noutputs = \"avro\"\n[schema_registry]\nurl = \"{registry}\"\n\
             output_schemas = \"{how}\"\n"
        )
    };
    // A subject whose rule is BACKWARD and whose last version has a required field our
    // Profile schema lacks: ours cannot read its records, and the registry refuses it.
    let app = App::new("avro-refused", PARTITIONS, &outputs("register"));
    let subject = format!("{}-value", app.config.kafka.topics.profiles);
    let config = ureq::put(&format!("{registry}/config/{subject}"))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .send(r#"{"compatibility": "BACKWARD"}"#)
        .unwrap();
    assert_eq!(config.status(), 200);
    register(
        registry,
        &subject,
        r#"{"type":"record","name":"Profile","namespace":"com.personalizer.decisions",
            "fields":[{"name":"legacy_id","type":"string"}]}"#,
    );
    let stderr = start_up_failure(&app);
    assert!(stderr.contains("kafka.formats.outputs"), "{stderr}");
    assert!(stderr.contains(&format!("subject `{subject}`")), "{stderr}");
    assert!(stderr.contains("Incompatible"), "{stderr}");

    // `check` with nothing registered: the first schema it looks for is missing.
    let app = App::new("avro-unregistered", PARTITIONS, &outputs("check"));
    let stderr = start_up_failure(&app);
    assert!(
        stderr.contains("schema_registry.output_schemas"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "subject `{}-value`",
            app.config.kafka.topics.abandoned_cart
        )),
        "{stderr}"
    );
}

fn confluent_python() -> PathBuf {
    let python = std::env::var_os("PERSONALIZER_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap())
                .join(".cache/personalizer/python/bin/python")
        });
    assert!(
        python.exists(),
        "{} is missing: `scripts/install-deps --tests` installs confluent-kafka there",
        python.display()
    );
    python
}

/// How long one run of the Python client may take: it handles a few thousand records,
/// so a run past this has hung (on the broker or the registry), and says so.
const CONFLUENT_CLIENT_DEADLINE: Duration = Duration::from_secs(240);

/// Runs `tests/interop/confluent_avro.py` with `args`; its standard output.
fn confluent_client(args: &[&str]) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/confluent_avro.py"
    );
    // Files rather than pipes: a client that writes more than a pipe holds never blocks.
    let output = tempfile::tempdir().unwrap();
    let stdout_path = output.path().join("stdout");
    let stderr_path = output.path().join("stderr");
    let mut child = Command::new(confluent_python())
        .arg(script)
        .args(args)
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + CONFLUENT_CLIENT_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "confluent_avro.py {} still running after {CONFLUENT_CLIENT_DEADLINE:?}: {}",
                args[0],
                std::fs::read_to_string(&stderr_path).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(status.success(), "confluent_avro.py {}: {stderr}", args[0]);
    std::fs::read_to_string(&stdout_path).unwrap()
}

#[test]
fn confluents_python_client_writes_the_events_and_reads_the_decisions() {
    let registry = registry();
    let app = App::new(
        "avro-python",
        PARTITIONS,
        &format!(
            "[kafka.formats]\nclickstream = \"avro\"\ncart = \"avro\"\noutputs = \"avro\"\n\
             [schema_registry]\nurl = \"{registry}\"\n"
        ),
    );
    let lines = workload(1_500, 24);
    let expected = replay_of(&app, &lines, None);

    // The shop's producer is Confluent's: its AvroSerializer registers our schemas.
    let records: String = lines
        .iter()
        .map(|line| {
            let routed = app.route(line);
            let format = match app.config.kafka.formats.of(routed.event.body.topic()) {
                personalizer::config::Format::Avro => "avro",
                personalizer::config::Format::Json => "json",
            };
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            serde_json::json!({
                "topic": routed.topic, "key": routed.key, "format": format, "event": event
            })
            .to_string()
                + "\n"
        })
        .collect();
    let records_path = app.dir.path().join("records.jsonl");
    std::fs::write(&records_path, records).unwrap();
    let schemas = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/events");
    confluent_client(&[
        "produce",
        &app.bootstrap,
        registry,
        schemas,
        records_path.to_str().unwrap(),
    ]);

    let live = run_until_decided(&app, expected.len());
    assert_same_decisions(&live, &expected);

    // Its AvroDeserializer reads every decision back, keyed as ours.
    let mut args = vec!["consume", app.bootstrap.as_str(), registry];
    let topics = app.output_topics();
    args.extend(topics.iter().copied());
    let read: Vec<Decision> = confluent_client(&args)
        .lines()
        .filter_map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            let value = record["value"].clone();
            (!value.is_null()).then(|| {
                let decision: Decision = serde_json::from_value(value)
                    .unwrap_or_else(|e| panic!("not a decision ({e}): {line}"));
                assert_eq!(record["key"], decision.record_key(), "{line}");
                decision
            })
        })
        .collect();
    assert_same_decisions(&read, &expected);
}

#[test]
fn a_registry_behind_tls_is_trusted_through_the_ca_file_setting() {
    let certificates = tempfile::tempdir().unwrap();
    certificates_for_loopback(certificates.path());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/schema-registry");
    let port = TLS_REGISTRY_PORT.to_string();
    let started = Command::new(script)
        .args(["start", "--port", &port, "--tls"])
        .arg(certificates.path())
        .output()
        .unwrap();
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let registry = String::from_utf8(started.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    assert!(registry.starts_with("https://"), "{registry}");
    let ca_file = certificates.path().join("ca.pem");
    let settings = |trust: &str| {
        format!(
            "[kafka.formats]\nclickstream = \"avro\"\ncart = \"avro\"\noutputs = \"avro\"\n\
             [schema_registry]\nurl = \"{registry}\"\n{trust}"
        )
    };

    // Without the CA the registry's certificate is unknown: start-up names the setting.
    let untrusted = App::new("avro-tls-untrusted", PARTITIONS, &settings(""));
    let stderr = start_up_failure(&untrusted);
    assert!(stderr.contains("schema_registry.url"), "{stderr}");

    let app = App::new(
        "avro-tls",
        PARTITIONS,
        &settings(&format!("ca_file = \"{}\"\n", ca_file.display())),
    );
    let lines = workload(800, 25);
    let expected = replay_of(&app, &lines, None);
    // The shop's producer reaches the registry over TLS too (our encoder, as `generate`).
    let mut encoder = EventEncoder::new(&app.config).unwrap();
    app.produce_with(&app.producer(), &lines, |routed, _| {
        encoder.encode(&routed.topic, &routed.event).unwrap()
    });
    let live = run_until_decided(&app, expected.len());
    assert_same_decisions(&live, &expected);
    let stopped = Command::new(script)
        .args(["stop", "--port", &port])
        .status()
        .unwrap();
    assert!(stopped.success());
}
