//! Kafka over TLS: a broker with a TLS listener (`scripts/kafka start --tls`), its
//! certificate signed by a throwaway certificate authority, and `personalizer run`
//! connecting through `kafka.properties` as a data platform's brokers ask (the
//! `security.protocol` and `ssl.*` properties of librdkafka). The test's own clients
//! use the plain listener of the same broker.

mod common;

use common::certificates::certificates_for_loopback;
use common::compare::{assert_same_decisions, replay_of, run_until_decided, workload, PARTITIONS};
use common::live::{start_broker, stop_broker, App};

/// A broker of its own: the plain listener on PORT, TLS on PORT + 2.
const PORT: &str = "19272";
const TLS_PORT: u16 = 19274;

#[test]
fn the_processor_reads_and_writes_through_a_tls_listener() {
    let certificates = tempfile::tempdir().unwrap();
    certificates_for_loopback(certificates.path());
    let tls_dir = certificates.path().to_str().unwrap();
    // A broker left from an earlier run serves another CA's certificate: start afresh,
    // and stop it however the test ends.
    stop_broker(&["--port", PORT, "--clean"]);
    let plain = start_broker(Some(&["--port", PORT, "--tls", tls_dir]));
    let _stop = StopBroker;
    let app = App::on(&plain, "tls", PARTITIONS, "");
    let lines = workload(1_000, 31);
    let expected = replay_of(&app, &lines, None);
    app.produce(&app.producer(), &lines);

    // The processor knows only the TLS listener, and trusts the broker through the CA.
    let settings = std::fs::read_to_string(&app.config_path)
        .unwrap()
        .replace(&plain, &format!("127.0.0.1:{TLS_PORT}"));
    let ca = certificates.path().join("ca.pem");
    std::fs::write(
        &app.config_path,
        format!(
            "{settings}\n[kafka.properties]\n\"security.protocol\" = \"SSL\"\n\
             \"ssl.ca.location\" = \"{}\"\n",
            ca.display()
        ),
    )
    .unwrap();
    assert!(
        !settings.contains(&plain),
        "the processor must not know the plain listener"
    );
    let live = run_until_decided(&app, expected.len());
    assert_same_decisions(&live, &expected);
}

struct StopBroker;

impl Drop for StopBroker {
    fn drop(&mut self) {
        stop_broker(&["--port", PORT, "--clean"]);
    }
}
