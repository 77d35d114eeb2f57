//! Avro inputs with a real Schema Registry (Apicurio Registry 3.3.3, started by
//! `scripts/schema-registry`) and a real broker: events written in the Confluent wire
//! format decide exactly what their JSON form decides in `replay`; a record naming an
//! id the registry does not know, or whose bytes do not match its schema, is
//! dead-lettered with the reason; producers with an evolved schema decode; a registry
//! that stops answering for a while makes records wait, and dead-letters none.

mod common;

use common::compare::{
    assert_same_decisions, replay_of, run_until_decided, workload, NO_WALL_CLOCK, PARTITIONS,
};
use common::live::{
    headers_of, http_get, metric_sum, terminate, wait_for_metric, with_sentinels, App,
};
use personalizer::avro::{encode_event, frame, AvroEventDecoder, Catalog};
use personalizer::decision::{Decision, DecisionType};
use personalizer::event::{decode_json, Decoded, InputTopic, RoutingKey};
use personalizer::event_encoder::EventEncoder;
use personalizer::registry::RegistryClient;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, Producer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The registry the tests share, the one the outage test stops and starts, and one that
/// serves HTTPS only (scripts/test stops them all at the end).
const REGISTRY_PORT: u16 = 18081;
const OUTAGE_REGISTRY_PORT: u16 = 18181;
const TLS_REGISTRY_PORT: u16 = 18281;

/// Starts a registry on `port` (installing it on first use); its base URL.
fn start_registry(port: u16) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/schema-registry");
    let output = Command::new(script)
        .args(["start", "--port", &port.to_string()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "scripts/schema-registry start: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .last()
        .expect("the base URL is printed last")
        .to_string()
}

fn registry() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| start_registry(REGISTRY_PORT))
}

/// Registers `schema` under `subject` (TopicNameStrategy: `<topic>-value`); its id.
fn register(base: &str, subject: &str, schema: &str) -> u32 {
    let body = serde_json::json!({ "schema": schema }).to_string();
    let response = ureq::post(&format!("{base}/subjects/{subject}/versions"))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .send(body.as_str())
        .unwrap();
    let answer: serde_json::Value =
        serde_json::from_str(&response.into_body().read_to_string().unwrap()).unwrap();
    answer["id"].as_u64().expect("an id") as u32
}

/// Avro for the clickstream and cart topics, JSON for the others.
fn avro_settings(registry: &str, extra: &str) -> String {
    format!(
        "{extra}\n[kafka.formats]\nclickstream = \"avro\"\ncart = \"avro\"\n\
         [schema_registry]\nurl = \"{registry}\"\ntimeout = \"500ms\"\n"
    )
}

/// Which writer schemas a shop's producers use.
#[derive(Clone, Copy, PartialEq)]
enum WriterSchemas {
    /// The project's own.
    Ours,
    /// Evolved: every record has one more field at its end, an optional string.
    AddedOptionalField,
}

/// `schema` (a record) with an optional field `channel` after its last field.
fn with_added_field(schema: &str) -> String {
    let mut json: serde_json::Value = serde_json::from_str(schema).unwrap();
    json["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "name": "channel", "type": ["null", "string"], "default": null
        }));
    json.to_string()
}

/// Registers, under each Avro topic's subject (`<topic>-value`), the writer schema of
/// every event type among `lines`; the ids by (topic, type).
fn register_all(
    app: &App,
    registry: &str,
    lines: &[String],
    writers: WriterSchemas,
) -> BTreeMap<(String, String), u32> {
    let catalog = Catalog::load();
    let mut ids = BTreeMap::new();
    for line in lines {
        let Ok(Decoded::Event(event)) = decode_json(line.as_bytes()) else {
            panic!("test events are valid: {line}");
        };
        let kind = event.body.topic();
        if !matches!(kind, InputTopic::Clickstream | InputTopic::Cart) {
            continue;
        }
        let topic = app.topic(kind).to_string();
        let type_name = event.body.type_name().to_string();
        ids.entry((topic.clone(), type_name.clone()))
            .or_insert_with(|| {
                let ours = catalog.event(&type_name).expect("a schema per type");
                let schema = match writers {
                    WriterSchemas::Ours => ours.schema.canonical_form(),
                    WriterSchemas::AddedOptionalField => {
                        with_added_field(&ours.schema.canonical_form())
                    }
                };
                register(registry, &format!("{topic}-value"), &schema)
            });
    }
    ids
}

/// Produces `lines` as a shop's Avro producers would: on the Avro topics, framed with
/// the id `ids` has for the event's type; JSON on the others.
fn produce_framed(
    app: &App,
    producer: &BaseProducer,
    lines: &[String],
    ids: &BTreeMap<(String, String), u32>,
    writers: WriterSchemas,
) {
    let catalog = Catalog::load();
    for line in lines {
        let Ok(Decoded::Event(event)) = decode_json(line.as_bytes()) else {
            panic!("test events are valid: {line}");
        };
        let topic = app.topic(event.body.topic()).to_string();
        let (RoutingKey::Shopper(key) | RoutingKey::Sku(key)) = event.routing_key();
        let value = match ids.get(&(topic.clone(), event.body.type_name().to_string())) {
            Some(&id) => {
                let mut payload = encode_event(&catalog, &event).unwrap();
                if writers == WriterSchemas::AddedOptionalField {
                    // The added field, null: union branch 0 (a zig-zag varint).
                    payload.push(0);
                }
                frame(id, &payload)
            }
            None => line.as_bytes().to_vec(),
        };
        app.send(producer, &topic, Some(key.as_bytes()), &value);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

fn produce_as_avro(app: &App, producer: &BaseProducer, registry: &str, lines: &[String]) {
    let ids = register_all(app, registry, lines, WriterSchemas::Ours);
    produce_framed(app, producer, lines, &ids, WriterSchemas::Ours);
}

#[test]
fn avro_events_decide_as_their_json_form_and_bad_ones_are_dead_lettered() {
    let registry = registry();
    let app = App::new("avro", PARTITIONS, &avro_settings(registry, ""));
    let lines = workload(2_000, 21);
    let expected = replay_of(&app, &lines, None);
    let producer = app.producer();
    let (first, second) = lines.split_at(lines.len() / 2);
    produce_as_avro(&app, &producer, registry, first);
    // An id nobody registered, and a registered one followed by bytes that are no
    // record of its schema.
    let known = register(
        registry,
        &format!("{}-value", app.config.kafka.topics.cart),
        &Catalog::load()
            .event("cart_cleared")
            .unwrap()
            .schema
            .canonical_form(),
    );
    let cart = app.config.kafka.topics.cart.clone();
    app.send(&producer, &cart, Some(b"poison"), &frame(987_654, b"\x02x"));
    app.send(
        &producer,
        &cart,
        Some(b"poison"),
        &frame(known, b"\xff\xff\xff"),
    );
    produce_as_avro(&app, &producer, registry, second);

    let live = run_until_decided(&app, expected.len());
    assert_same_decisions(&live, &expected);

    let dead = app.read_all(
        &[app.config.kafka.topics.dead_letter.as_str()],
        "read_committed",
    );
    assert_eq!(dead.len(), 2, "one dead letter per bad record");
    let errors: Vec<String> = dead
        .iter()
        .map(|record| {
            let headers = headers_of(record);
            assert_eq!(headers["error_reason"], "avro", "{headers:?}");
            headers["error"].clone()
        })
        .collect();
    assert!(errors.iter().any(|e| e.contains("987654")), "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains(&format!("schema {known}"))),
        "{errors:?}"
    );
}

#[test]
fn a_registry_that_stops_answering_makes_records_wait_and_evolved_schemas_decode() {
    let registry = start_registry(OUTAGE_REGISTRY_PORT);
    // The processor is idle between the two halves: it must not follow the wall clock
    // meanwhile (the workload is in the past), and the sentinels end the stream.
    let app = App::new(
        "avro-outage",
        PARTITIONS,
        &avro_settings(&registry, NO_WALL_CLOCK),
    );
    let lines = with_sentinels(workload(1_500, 22), PARTITIONS);
    let expected = replay_of(&app, &lines, None);
    let (first, second) = lines.split_at(lines.len() / 2);
    produce_as_avro(&app, &app.producer(), &registry, first);
    let log = app.dir.path().join("run.log");
    let mut child = app.spawn(&app.dir.path().join("state"), &log);
    app.wait_until_input_processed(Duration::from_secs(120));

    // The second half comes from producers with an evolved schema: ids the processor
    // has not fetched yet. The registry stops answering (SIGSTOP: its storage is in
    // memory, so a restart would forget every schema) before they arrive.
    let evolved = register_all(&app, &registry, second, WriterSchemas::AddedOptionalField);
    let pid_file = format!(
        "{}/.cache/personalizer/apicurio-registry-3.3.3/run-{OUTAGE_REGISTRY_PORT}/pid",
        std::env::var("HOME").unwrap()
    );
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_string();
    let signal = |name: &str| {
        assert!(Command::new("kill")
            .args([name, &pid])
            .status()
            .unwrap()
            .success());
    };
    signal("-STOP");
    app.write_while_paused(&[&child], |producer| {
        produce_framed(
            &app,
            producer,
            second,
            &evolved,
            WriterSchemas::AddedOptionalField,
        )
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("cannot be decoded now")
    {
        if Instant::now() > deadline {
            signal("-CONT");
            panic!("the processor never waited for the registry");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    signal("-CONT");

    app.wait_for_decisions(expected.len(), Duration::from_secs(180));
    assert_eq!(terminate(&mut child), Some(0));
    assert_same_decisions(&app.decisions(), &expected);
    let dead = app.read_all(
        &[app.config.kafka.topics.dead_letter.as_str()],
        "read_committed",
    );
    assert!(dead.is_empty(), "{} records dead-lettered", dead.len());
    let stopped = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/schema-registry"
    ))
    .args(["stop", "--port", &OUTAGE_REGISTRY_PORT.to_string()])
    .status()
    .unwrap();
    assert!(stopped.success());
}

/// The subjects the registry holds.
fn subjects(base: &str) -> Vec<String> {
    let response = ureq::get(&format!("{base}/subjects")).call().unwrap();
    serde_json::from_str(&response.into_body().read_to_string().unwrap()).unwrap()
}

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
    // The product table read every product record back from its Avro topic.
    let products_on_topic = app
        .read_all(
            &[app.config.kafka.topics.products.as_str()],
            "read_committed",
        )
        .len();
    assert!(products_on_topic > 0, "the workload makes product records");
    wait_for_metric(
        std::slice::from_ref(&address),
        "personalizer_product_table_records_total",
        &["outcome=\"applied\""],
        products_on_topic as f64,
        Duration::from_secs(60),
    );
    let (_, metrics) = http_get(&address, "/metrics");
    assert_eq!(
        metric_sum(
            &metrics,
            "personalizer_product_table_records_total",
            &["outcome=\"unreadable\""]
        ),
        0.0
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

/// `personalizer run` on `app` until it exits by itself (a start-up error): its stderr.
fn start_up_failure(app: &App) -> String {
    let mut command = app.command();
    command
        .args(["run", "--config"])
        .arg(&app.config_path)
        .arg("--state-dir")
        .arg(app.dir.path().join("state"));
    let output = command.output().unwrap();
    assert!(!output.status.success(), "start-up must fail");
    String::from_utf8_lossy(&output.stderr).into_owned()
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

/// The virtualenv `scripts/install-deps --tests` puts Confluent's Python client in.
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

/// Runs `tests/interop/confluent_avro.py` with `args`; its standard output.
fn confluent_client(args: &[&str]) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/confluent_avro.py"
    );
    let output = Command::new(confluent_python())
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "confluent_avro.py {}: {}",
        args[0],
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
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
            let Ok(Decoded::Event(event)) = decode_json(line.as_bytes()) else {
                panic!("test events are valid: {line}");
            };
            let kind = event.body.topic();
            let (RoutingKey::Shopper(key) | RoutingKey::Sku(key)) = event.routing_key();
            let format = match app.config.kafka.formats.of(kind) {
                personalizer::config::Format::Avro => "avro",
                personalizer::config::Format::Json => "json",
            };
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            serde_json::json!({
                "topic": app.topic(kind), "key": key, "format": format, "event": event
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
fn generate_writes_avro_topics_that_decode_to_the_events_it_writes_as_json() {
    let registry = registry();
    let app = App::new(
        "avro-generate",
        PARTITIONS,
        &format!(
            "[kafka.formats]\nclickstream = \"avro\"\ncart = \"avro\"\nstock = \"avro\"\n\
             [schema_registry]\nurl = \"{registry}\"\n"
        ),
    );
    let generate = |extra: &[&str]| {
        let output = app
            .command()
            .args([
                "generate",
                "--shoppers",
                "40",
                "--events",
                "600",
                "--seed",
                "5",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "generate: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let mut as_json: Vec<String> = generate(&[]).lines().map(str::to_string).collect();
    generate(&["--to-kafka", app.config_path.to_str().unwrap()]);

    let decoder = AvroEventDecoder::new(
        Catalog::load(),
        RegistryClient::new(&app.config.schema_registry).unwrap(),
    );
    let mut from_kafka = Vec::new();
    for record in app.read_all(&app.input_topics(), "read_committed") {
        let avro = record.topic() != app.config.kafka.topics.customers;
        let payload = record.payload().expect("events have values");
        let event = if avro {
            assert_eq!(payload[0], 0, "{} is Avro", record.topic());
            match decoder.decode(payload) {
                Ok(Decoded::Event(event)) => event,
                other => panic!("{other:?}"),
            }
        } else {
            match decode_json(payload) {
                Ok(Decoded::Event(event)) => event,
                other => panic!("{other:?}"),
            }
        };
        from_kafka.push(event.to_json_line());
    }
    as_json.sort();
    from_kafka.sort();
    assert_eq!(from_kafka.len(), 600);
    assert_eq!(from_kafka, as_json);
    let registered = subjects(registry);
    for topic in ["clickstream", "cart", "stock"] {
        let subject = format!("{}.{topic}-value", app.name);
        assert!(registered.contains(&subject), "{subject} in {registered:?}");
    }
}

/// Runs openssl with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (scripts/install-deps installs it)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// In `dir`: a certificate authority (ca.pem), and a certificate for 127.0.0.1 that it
/// signed (cert.pem, key.pem) for the registry to serve.
fn certificates_for_loopback(dir: &std::path::Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Personalizer test CA",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "cert.pem",
        ],
    );
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
    let producer = app.producer();
    for line in &lines {
        let Ok(Decoded::Event(event)) = decode_json(line.as_bytes()) else {
            panic!("test events are valid: {line}");
        };
        let topic = app.topic(event.body.topic()).to_string();
        let (RoutingKey::Shopper(key) | RoutingKey::Sku(key)) = event.routing_key();
        let value = encoder.encode(&topic, &event).unwrap();
        app.send(&producer, &topic, Some(key.as_bytes()), &value);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let live = run_until_decided(&app, expected.len());
    assert_same_decisions(&live, &expected);
    let stopped = Command::new(script)
        .args(["stop", "--port", &port])
        .status()
        .unwrap();
    assert!(stopped.success());
}
