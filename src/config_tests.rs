//! Unit tests of the settings: defaults, overrides, validation errors naming the setting.

use super::*;
use std::io::Write;

fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    Config::load_with_env(
        Some(file.path()),
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

#[test]
fn empty_file_gives_the_contract_defaults() {
    let c = load("", &[]).unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(
        c.rules.abandoned_cart.reminders,
        vec![Dur::minutes(60), Dur::hours(24)]
    );
    assert_eq!(c.rules.back_in_stock.request_ttl, Dur::hours(720));
    assert_eq!(c.rules.dedupe_window, Dur::hours(24));
    assert!(!c.rules.require_consent);
    assert_eq!(c.rules.back_in_stock.max_per_unit, None);
}

#[test]
fn the_documented_example_file_matches_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/personalizer.toml");
    let c = Config::load_with_env(Some(&path), std::iter::empty()).unwrap();
    assert_eq!(c, Config::default());
}

#[test]
fn the_state_cache_defaults_to_its_workload_unless_set() {
    let unset = load("", &[]).unwrap();
    assert_eq!(unset.state.cache_max_bytes, None);
    assert_eq!(unset.state.cache_bytes_for(Workload::Replay), 4 << 20);
    assert_eq!(unset.state.cache_bytes_for(Workload::Live), 16 << 20);
    for set in [
        load("[state]\ncache_max_bytes = 1000\n", &[]).unwrap(),
        load("", &[("PERSONALIZER_STATE__CACHE_MAX_BYTES", "1000")]).unwrap(),
    ] {
        assert_eq!(set.state.cache_max_bytes, Some(1000));
        assert_eq!(set.state.cache_bytes_for(Workload::Replay), 1000);
        assert_eq!(set.state.cache_bytes_for(Workload::Live), 1000);
    }
}

#[test]
fn stream_threads_default_to_one_and_are_checked() {
    assert_eq!(load("", &[]).unwrap().kafka.stream_threads, 1);
    let set = load("", &[("PERSONALIZER_KAFKA__STREAM_THREADS", "3")]).unwrap();
    assert_eq!(set.kafka.stream_threads, 3);
    for bad in ["0", "33"] {
        let error = load(&format!("[kafka]\nstream_threads = {bad}\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("kafka.stream_threads") && error.contains("between 1 and 32"),
            "{error}"
        );
    }
}

#[test]
fn durations_are_read_as_text() {
    let c = load(
        "[rules.abandoned_cart]\nreminders = [\"30m\", \"2h\", \"3d\"]\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        c.rules.abandoned_cart.reminders,
        vec![Dur::minutes(30), Dur::hours(2), Dur::hours(72)]
    );
}

#[test]
fn environment_overrides_the_file() {
    let c = load(
        "application_id = \"from-file\"\n[rules]\nrequire_consent = false\n",
        &[
            ("PERSONALIZER_APPLICATION_ID", "from-env"),
            ("PERSONALIZER_RULES__REQUIRE_CONSENT", "true"),
            ("PERSONALIZER_RULES__BACK_IN_STOCK__MAX_PER_UNIT", "3"),
            (
                "PERSONALIZER_RULES__ABANDONED_CART__REMINDERS",
                "[\"5m\",\"1h\"]",
            ),
            ("PERSONALIZER_RULES__DEDUPE_WINDOW", "2h"),
            ("OTHER_VAR", "ignored"),
        ],
    )
    .unwrap();
    assert_eq!(c.application_id, "from-env");
    assert!(c.rules.require_consent);
    assert_eq!(c.rules.back_in_stock.max_per_unit, Some(3));
    assert_eq!(
        c.rules.abandoned_cart.reminders,
        vec![Dur::minutes(5), Dur::hours(1)]
    );
    assert_eq!(c.rules.dedupe_window, Dur::hours(2));
}

#[test]
fn http_and_log_settings_come_from_the_file_and_environment() {
    let c = load(
        "[log]\nformat = \"json\"\n",
        &[("PERSONALIZER_HTTP__LISTEN", "127.0.0.1:9464")],
    )
    .unwrap();
    assert_eq!(c.http.listen, "127.0.0.1:9464");
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.log.filter, "warn,personalizer=info");
}

fn error(text: &str, env: &[(&str, &str)]) -> String {
    load(text, env).unwrap_err().to_string()
}

#[test]
fn bad_settings_are_named() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            "[rules]\ndedupe_window = \"soon\"\n",
            &[],
            "`rules.dedupe_window`",
        ),
        ("[rules]\nrequire_consnet = true\n", &[], "require_consnet"),
        (
            "[rules.abandoned_cart]\nreminders = [\"24h\", \"1h\"]\n",
            &[],
            "`rules.abandoned_cart.reminders[1]`",
        ),
        (
            "[rules.abandoned_cart]\nreminders = [\"0s\"]\n",
            &[],
            "`rules.abandoned_cart.reminders[0]`",
        ),
        (
            "[rules.back_in_stock]\nmax_per_unit = 0\n",
            &[],
            "`rules.back_in_stock.max_per_unit`",
        ),
        (
            "[rules.back_in_stock]\nmax_per_unit = -2\n",
            &[],
            "`rules.back_in_stock.max_per_unit`",
        ),
        ("[engine]\npartitions = 0\n", &[], "`engine.partitions`"),
        ("application_id = \"has space\"\n", &[], "`application_id`"),
        (
            "[state]\ncache_max_entries = \"many\"\n",
            &[],
            "`state.cache_max_entries`",
        ),
        (
            "[state]\ncache_max_bytes = 0\n",
            &[],
            "`state.cache_max_bytes`",
        ),
        (
            "[state]\ncache_max_bytes = -1\n",
            &[],
            "`state.cache_max_bytes`",
        ),
        ("[rules\n", &[], "not valid TOML"),
        ("[http]\nlisten = \"8080\"\n", &[], "`http.listen`"),
        (
            "",
            &[("PERSONALIZER_HTTP__LISTEN", "localhost")],
            "`http.listen`",
        ),
        ("[log]\nformat = \"xml\"\n", &[], "`log.format`"),
        (
            "[log]\nfilter = \"personalizer=loud\"\n",
            &[],
            "`log.filter`",
        ),
        (
            "",
            &[("PERSONALIZER_ENGINE__PARTITIONS", "lots")],
            "`engine.partitions`",
        ),
        (
            "application_id = \"x\"\n",
            &[("PERSONALIZER_APPLICATION_ID__DEEP", "1")],
            "PERSONALIZER_APPLICATION_ID__DEEP",
        ),
    ];
    for (text, env, expected) in cases {
        let err = error(text, env);
        assert!(
            err.contains(expected),
            "config {text:?}: error `{err}` should contain {expected}"
        );
    }
}

#[test]
fn kafka_settings_come_from_the_file_and_environment() {
    let c = load(
        "[kafka]\nprocessing_guarantee = \"at_least_once\"\ncommit_interval = \"250ms\"\n\
         commit_pacing = \"adaptive\"\n[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n",
        &[
            (
                "PERSONALIZER_KAFKA__BOOTSTRAP_SERVERS",
                "broker-1:9092,broker-2:9092",
            ),
            ("PERSONALIZER_APPLICATION_ID", "shop-eu"),
            ("PERSONALIZER_KAFKA__TOPICS__STOCK", "inventory"),
        ],
    )
    .unwrap();
    assert_eq!(c.kafka.bootstrap_servers, "broker-1:9092,broker-2:9092");
    assert_eq!(c.application_id, "shop-eu");
    assert_eq!(
        c.kafka.processing_guarantee,
        ProcessingGuarantee::AtLeastOnce
    );
    assert_eq!(c.kafka.commit_interval.0, Duration::from_millis(250));
    assert_eq!(c.kafka.commit_pacing, crate::config::CommitPacing::Adaptive);
    assert_eq!(
        Config::default().kafka.commit_pacing,
        crate::config::CommitPacing::Interval
    );
    assert_eq!(c.kafka.topics.stock, "inventory");
    assert_eq!(c.kafka.properties["security.protocol"], "SASL_SSL");
}

#[test]
fn default_output_topics_are_the_contract_ones() {
    let topics = TopicsConfig::default();
    for kind in crate::decision::DecisionType::ALL {
        assert_eq!(topics.for_decision(kind), kind.default_topic());
    }
}

#[test]
fn bad_kafka_settings_are_named() {
    let cases: &[(&str, &str)] = &[
        (
            "[kafka]\nbootstrap_servers = \" \"\n",
            "`kafka.bootstrap_servers`",
        ),
        (
            "[kafka]\nprocessing_guarantee = \"twice\"\n",
            "`kafka.processing_guarantee`",
        ),
        (
            "[kafka]\ncommit_interval = \"0s\"\n",
            "`kafka.commit_interval`",
        ),
        (
            "[kafka]\ncommit_pacing = \"sometimes\"\n",
            "`kafka.commit_pacing`",
        ),
        (
            "[kafka.topics]\ncart = \"has space\"\n",
            "`kafka.topics.cart`",
        ),
        ("[kafka.topics]\ncarts = \"x\"\n", "carts"),
        (
            "[kafka.properties]\n\"group.id\" = \"x\"\n",
            "`kafka.properties.\"group.id\"`",
        ),
        (
            "[kafka]\nreplication_factor = 0\n",
            "`kafka.replication_factor`",
        ),
        (
            "[kafka]\ncompacted_segment_bytes = 1000\n",
            "`kafka.compacted_segment_bytes`",
        ),
        (
            "[kafka]\ncompacted_segment_bytes = 4294967296\n",
            "`kafka.compacted_segment_bytes`",
        ),
    ];
    for (text, expected) in cases {
        let err = error(text, &[]);
        assert!(
            err.contains(expected),
            "config {text:?}: `{err}` lacks {expected}"
        );
    }
}

#[test]
fn memory_settings_beyond_the_machine_s_memory_are_refused() {
    let memory = physical_memory_bytes().expect("tests run on Linux");
    for setting in ["block_cache_bytes", "write_buffer_bytes"] {
        let petabyte = format!("[state]\n{setting} = 1125899906842624\n");
        let err = error(&petabyte, &[]);
        assert!(
            err.contains(&format!("`state.{setting}`")) && err.contains("memory"),
            "{err}"
        );
        let fits = format!("[state]\n{setting} = {}\n", memory / 4);
        assert!(load(&fits, &[]).is_ok(), "a quarter of the memory is fine");
    }
}

#[test]
fn a_missing_file_is_named() {
    let err = Config::load_with_env(Some(Path::new("/nonexistent/p.toml")), std::iter::empty())
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/p.toml"), "{err}");
}

#[test]
fn printed_config_reads_back_equal() {
    let c = Config::default();
    let text = c.to_toml();
    assert_eq!(load(&text, &[]).unwrap(), c);
}

#[test]
fn bad_limits_are_named() {
    let cases: &[(&str, &str)] = &[
        (
            "[rules.limits]\nmax_state_bytes = 2000000\n",
            "`rules.limits.max_state_bytes`",
        ),
        (
            "[rules.limits]\nmax_event_bytes = 10\n",
            "`rules.limits.max_event_bytes`",
        ),
        (
            "[rules.limits]\nmax_event_bytes = 200000\n",
            "`rules.limits.max_event_bytes`",
        ),
        (
            "[rules.limits]\nmax_cart_lines = 0\n",
            "`rules.limits.max_cart_lines`",
        ),
        (
            "[rules.limits]\nmax_stock_requests = 0\n",
            "`rules.limits.max_stock_requests`",
        ),
        (
            "[http]\ncommit_stall_limit = \"100ms\"\n",
            "`http.commit_stall_limit`",
        ),
    ];
    for (text, expected) in cases {
        let err = error(text, &[]);
        assert!(
            err.contains(expected),
            "config {text:?}: `{err}` lacks {expected}"
        );
    }
}

#[test]
fn avro_formats_and_registry_settings_are_checked_naming_the_setting() {
    let e = error("[kafka.formats]\noutputs = \"avro\"\n", &[]);
    assert!(
        e.contains("schema_registry.url") && e.contains("kafka.formats.outputs"),
        "{e}"
    );
    let e = error("[kafka.formats]\ncart = \"protobuf\"\n", &[]);
    assert!(
        e.contains("kafka.formats.cart") || e.contains("protobuf"),
        "{e}"
    );
    let e = error(
        "[schema_registry]\nurl = \"http://r:8081\"\nsubject_strategy = \"by_topic\"\n",
        &[],
    );
    assert!(e.contains("subject_strategy"), "{e}");
    let e = error(
        "[schema_registry]\nurl = \"http://r:8081\"\noutput_schemas = \"maybe\"\n",
        &[],
    );
    assert!(e.contains("output_schemas"), "{e}");
    let c = load(
        "[kafka.formats]\noutputs = \"avro\"\n[schema_registry]\nurl = \"http://r:8081\"\n\
         subject_strategy = \"topic_record_name\"\noutput_schemas = \"check\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.kafka.formats.outputs, Format::Avro);
    assert_eq!(c.schema_registry.output_schemas, OutputSchemas::Check);
    assert_eq!(
        c.schema_registry
            .subject_strategy
            .subject("t", "com.x.Profile"),
        "t-com.x.Profile"
    );
    assert_eq!(
        SubjectStrategy::RecordName.subject("t", "com.x.Profile"),
        "com.x.Profile"
    );
    assert_eq!(
        SubjectStrategy::TopicName.subject("t", "com.x.Profile"),
        "t-value"
    );
}
