//! `personalizer demo` works with nothing installed: it starts its in-process cluster,
//! shops, processes, and prints decisions and summary lines.

use std::process::Command;

#[test]
fn the_demo_prints_decisions_as_they_happen() {
    let output = Command::new(env!("CARGO_BIN_EXE_personalizer"))
        .args([
            "demo",
            "--duration",
            "35s",
            "--rate",
            "400",
            "--print-limit",
            "3",
        ])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stderr}");
    let decisions: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        !decisions.is_empty(),
        "no decision printed; stderr:\n{stderr}"
    );
    for d in &decisions {
        assert!(
            d["decision_id"].is_string() && d["reason"].is_string(),
            "{d}"
        );
    }
    let summaries = stderr.lines().filter(|l| l.contains("events sent")).count();
    assert!(summaries >= 5, "a summary line every 5 s:\n{stderr}");
    assert!(stderr.contains("demo: done"), "{stderr}");
}
