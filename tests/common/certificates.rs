//! Certificates for the TLS tests, made with the openssl command: a throwaway
//! certificate authority and a certificate for 127.0.0.1 that it signed.

use std::path::Path;
use std::process::Command;

/// The password of the encrypted copy of the key (`server.pem`).
pub const KEY_PASSWORD: &str = "personalizer-test";

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

/// In `dir`: `ca.pem` (the authority to trust); `cert.pem` and `key.pem`, a certificate
/// for 127.0.0.1 it signed and its key (what `scripts/schema-registry --tls` serves);
/// and `server.pem` (the key encrypted, then the certificate) with `password`, what
/// `scripts/kafka --tls` serves.
pub fn certificates_for_loopback(dir: &Path) {
    openssl(
        dir,
        "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=personalizer-test-ca \
         -keyout ca-key.pem -out ca.pem",
    );
    openssl(
        dir,
        "req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout key.pem -out server.csr",
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
            "pkcs8 -topk8 -v1 PBE-SHA1-3DES -in key.pem -passout pass:{KEY_PASSWORD} \
             -out encrypted-key.pem"
        ),
    );
    let key = std::fs::read_to_string(dir.join("encrypted-key.pem")).unwrap();
    let certificate = std::fs::read_to_string(dir.join("cert.pem")).unwrap();
    std::fs::write(dir.join("server.pem"), key + &certificate).unwrap();
    std::fs::write(dir.join("password"), KEY_PASSWORD).unwrap();
}
