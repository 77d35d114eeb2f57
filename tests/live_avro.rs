//! Avro inputs with a real Schema Registry (Apicurio Registry 3.3.3, started by
//! `scripts/schema-registry`) and a real broker: events written in the Confluent wire
//! format decide exactly what their JSON form decides in `replay`; a record naming an
//! id the registry does not know, or whose bytes do not match its schema, is
//! dead-lettered with the reason.
//!
//! Not yet tested live: a registry that stops answering mid-stream (the processor
//! restarts from its last commit and waits; `registry.rs` tests that such a registry
//! counts as unavailable, not as an unknown id) and producers with an evolved schema
//! (`avro_tests.rs` decodes one).

mod common;

use common::compare::{assert_same_decisions, replay_of, run_until_decided, workload, PARTITIONS};
use common::live::{headers_of, App};
use personalizer::avro::{encode_event, frame, Catalog};
use personalizer::event::{decode_json, Decoded, InputTopic, RoutingKey};
use rdkafka::producer::{BaseProducer, Producer};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The registry's port (scripts/test stops it at the end).
const REGISTRY_PORT: u16 = 18081;

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

/// Registers, under each Avro topic's subject (`<topic>-value`), the writer schema of
/// every event type among `lines`; the ids by (topic, type).
fn register_all(app: &App, registry: &str, lines: &[String]) -> BTreeMap<(String, String), u32> {
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
                register(
                    registry,
                    &format!("{topic}-value"),
                    &ours.schema.canonical_form(),
                )
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
) {
    let catalog = Catalog::load();
    for line in lines {
        let Ok(Decoded::Event(event)) = decode_json(line.as_bytes()) else {
            panic!("test events are valid: {line}");
        };
        let topic = app.topic(event.body.topic()).to_string();
        let (RoutingKey::Shopper(key) | RoutingKey::Sku(key)) = event.routing_key();
        let value = match ids.get(&(topic.clone(), event.body.type_name().to_string())) {
            Some(&id) => frame(id, &encode_event(&catalog, &event).unwrap()),
            None => line.as_bytes().to_vec(),
        };
        app.send(producer, &topic, Some(key.as_bytes()), &value);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

fn produce_as_avro(app: &App, producer: &BaseProducer, registry: &str, lines: &[String]) {
    let ids = register_all(app, registry, lines);
    produce_framed(app, producer, lines, &ids);
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
