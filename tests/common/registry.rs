//! A real Schema Registry for the Avro tests (Apicurio Registry 3.3.3, started by
//! `scripts/schema-registry`), and producing events as a shop's Avro producers do.

use super::live::{App, Routed};
use personalizer::avro::{encode_event, frame, Catalog};
use personalizer::event::InputTopic;
use rdkafka::producer::BaseProducer;
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::OnceLock;

/// The registry the tests share, the one the outage test stops and starts, and one that
/// serves HTTPS only (scripts/test stops them all at the end).
pub const REGISTRY_PORT: u16 = 18081;
pub const OUTAGE_REGISTRY_PORT: u16 = 18181;
pub const TLS_REGISTRY_PORT: u16 = 18281;

/// Starts a registry on `port` (installing it on first use); its base URL.
pub fn start_registry(port: u16) -> String {
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

pub fn registry() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| start_registry(REGISTRY_PORT))
}

/// Registers `schema` under `subject` (TopicNameStrategy: `<topic>-value`); its id.
pub fn register(base: &str, subject: &str, schema: &str) -> u32 {
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
pub fn avro_settings(registry: &str, extra: &str) -> String {
    format!(
        "{extra}\n[kafka.formats]\nclickstream = \"avro\"\ncart = \"avro\"\n\
         [schema_registry]\nurl = \"{registry}\"\ntimeout = \"500ms\"\n"
    )
}

/// Which writer schemas a shop's producers use.
#[derive(Clone, Copy, PartialEq)]
pub enum WriterSchemas {
    /// The project's own.
    Ours,
    /// Evolved: every record has one more field at its end, an optional string.
    AddedOptionalField,
}

/// `schema` (a record) with an optional field `channel` after its last field.
pub fn with_added_field(schema: &str) -> String {
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
pub fn register_all(
    app: &App,
    registry: &str,
    lines: &[String],
    writers: WriterSchemas,
) -> BTreeMap<(String, String), u32> {
    let catalog = Catalog::load();
    let mut ids = BTreeMap::new();
    for line in lines {
        let Routed { event, topic, .. } = app.route(line);
        if !matches!(
            event.body.topic(),
            InputTopic::Clickstream | InputTopic::Cart
        ) {
            continue;
        }
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
pub fn produce_framed(
    app: &App,
    producer: &BaseProducer,
    lines: &[String],
    ids: &BTreeMap<(String, String), u32>,
    writers: WriterSchemas,
) {
    let catalog = Catalog::load();
    app.produce_with(producer, lines, |routed, line| {
        let type_name = routed.event.body.type_name().to_string();
        match ids.get(&(routed.topic.clone(), type_name)) {
            Some(&id) => {
                let mut payload = encode_event(&catalog, &routed.event).unwrap();
                if writers == WriterSchemas::AddedOptionalField {
                    // The added field, null: union branch 0 (a zig-zag varint).
                    payload.push(0);
                }
                frame(id, &payload)
            }
            None => line.as_bytes().to_vec(),
        }
    });
}

pub fn produce_as_avro(app: &App, producer: &BaseProducer, registry: &str, lines: &[String]) {
    let ids = register_all(app, registry, lines, WriterSchemas::Ours);
    produce_framed(app, producer, lines, &ids, WriterSchemas::Ours);
}

/// The subjects the registry holds.
pub fn subjects(base: &str) -> Vec<String> {
    let response = ureq::get(&format!("{base}/subjects")).call().unwrap();
    serde_json::from_str(&response.into_body().read_to_string().unwrap()).unwrap()
}

/// `personalizer run` on `app` until it exits by itself (a start-up error): its stderr.
pub fn start_up_failure(app: &App) -> String {
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
