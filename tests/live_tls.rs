//! Kafka over TLS: a broker with a TLS listener (`scripts/kafka start --tls`), its
//! certificate signed by a throwaway certificate authority, and `personalizer run`
//! connecting through `kafka.properties` as a data platform's brokers ask (the
//! `security.protocol` and `ssl.*` properties of librdkafka). The test's own clients
//! use the plain listener of the same broker.

mod common;

use common::compare::{assert_same_decisions, replay_of, run_until_decided, workload, PARTITIONS};
use common::live::{start_broker, stop_broker, App};
use std::path::Path;
use std::process::Command;

/// A broker of its own: the plain listener on PORT, TLS on PORT + 2.
const PORT: &str = "19272";
const TLS_PORT: u16 = 19274;
const KEY_PASSWORD: &str = "personalizer-test";

/// Runs openssl in `dir` with the words of `command` as its arguments.
fn openssl(dir: &Path, command: &str) {
    let args: Vec<&str> = command.split_whitespace().collect();
    let output = Command::new("openssl")
        .args(&args)
        .current_dir(dir)
        .output()
        .expect("openssl (scripts/install-deps installs it)");
    assert!(
        output.status.success(),
        "openssl {command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// In `dir`: ca.pem, and what `scripts/kafka --tls` serves: server.pem (the broker's
/// encrypted key and its certificate for 127.0.0.1, signed by the CA) and password.
fn broker_certificates(dir: &Path) {
    openssl(
        dir,
        "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=personalizer-test-ca \
         -keyout ca-key.pem -out ca.pem",
    );
    openssl(
        dir,
        "req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout plain-key.pem -out server.csr",
    );
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        "x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
         -extfile server.ext -out cert.pem",
    );
    // Java 17 reads encrypted PKCS#8 keys with the PKCS#12 algorithms only (not PBES2).
    openssl(
        dir,
        &format!(
            "pkcs8 -topk8 -v1 PBE-SHA1-3DES -in plain-key.pem -passout pass:{KEY_PASSWORD} \
             -out key.pem"
        ),
    );
    let key = std::fs::read_to_string(dir.join("key.pem")).unwrap();
    let certificate = std::fs::read_to_string(dir.join("cert.pem")).unwrap();
    std::fs::write(dir.join("server.pem"), key + &certificate).unwrap();
    std::fs::write(dir.join("password"), KEY_PASSWORD).unwrap();
}

#[test]
fn the_processor_reads_and_writes_through_a_tls_listener() {
    let certificates = tempfile::tempdir().unwrap();
    broker_certificates(certificates.path());
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
    assert!(!settings.contains(&plain), "the processor must not know the plain listener");
    let live = run_until_decided(&app, expected.len());
    assert_same_decisions(&live, &expected);
}

struct StopBroker;

impl Drop for StopBroker {
    fn drop(&mut self) {
        stop_broker(&["--port", PORT, "--clean"]);
    }
}
