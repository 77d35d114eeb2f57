//! Avro inputs with a real Schema Registry (Apicurio Registry 3.3.3, started by
//! `scripts/schema-registry`) and a real broker: events written in the Confluent wire
//! format decide exactly what their JSON form decides in `replay`; a record naming an
//! id the registry does not know, or whose bytes do not match its schema, is
//! dead-lettered with the reason; producers with an evolved schema decode; a registry
//! that stops answering for a while makes records wait, and dead-letters none;
//! `generate` writes Avro topics. The outputs in Avro: `live_avro_outputs.rs`.

mod common;

use common::compare::{
    assert_same_decisions, replay_of, run_until_decided, workload, NO_WALL_CLOCK, PARTITIONS,
};
use common::live::{headers_of, terminate, with_sentinels, App};
use common::registry::{
    avro_settings, produce_as_avro, produce_framed, register, register_all, registry,
    start_registry, subjects, WriterSchemas, OUTAGE_REGISTRY_PORT,
};
use personalizer::avro::{frame, AvroEventDecoder, Catalog};
use personalizer::event::{decode_json, Decoded};
use personalizer::registry::RegistryClient;
use rdkafka::message::Message;
use std::process::Command;
use std::time::{Duration, Instant};

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
