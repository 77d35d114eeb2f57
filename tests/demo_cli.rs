//! `personalizer demo` works with nothing installed: it starts its in-process cluster,
//! shops, processes, prints decisions and summary lines, and serves its metrics and
//! health while it runs.

mod common;

use common::live::{http_get, metric_sum, wait_for_status};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[test]
fn the_demo_prints_decisions_as_they_happen_and_serves_metrics() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_personalizer"))
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
        .env("PERSONALIZER_HTTP__LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (address_tx, address_rx) = mpsc::channel();
    let (curl_tx, curl_rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let stderr_reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if let Some(rest) = line.split("metrics at http://").nth(1) {
                let address = rest.split('/').next().unwrap().to_string();
                let _ = address_tx.send(address);
            }
            if line.trim_start().starts_with("curl ") {
                let _ = curl_tx.send(line.clone());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let mut stdout = child.stdout.take().unwrap();
    let stdout_reader = std::thread::spawn(move || {
        let mut all = String::new();
        stdout.read_to_string(&mut all).unwrap();
        all
    });

    let address = address_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the demo says where its metrics are");
    assert_eq!(http_get(&address, "/healthz").0, 200);
    wait_for_status(&address, "/readyz", 200, Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let (status, text) = http_get(&address, "/metrics");
        assert_eq!(status, 200);
        if metric_sum(&text, "personalizer_decisions_total", &[]) > 0.0 {
            assert!(
                metric_sum(
                    &text,
                    "personalizer_events_total",
                    &["outcome=\"processed\""]
                ) > 0.0
            );
            break;
        }
        assert!(Instant::now() < deadline, "no decision counted:\n{text}");
        std::thread::sleep(Duration::from_millis(500));
    }

    // The curl lines it prints for a live shopper answer while it runs.
    let mut curls = Vec::new();
    while curls.len() < 5 {
        let line = curl_rx
            .recv_timeout(Duration::from_secs(25))
            .unwrap_or_else(|_| panic!("the demo printed {} curl lines of 5", curls.len()));
        curls.push(line);
    }
    for line in &curls {
        let (status, body) = run_curl(line);
        assert_eq!(status, 200, "{line}\n{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(answer.is_object(), "{line}\n{body}");
        if line.contains("/profile") {
            assert!(
                !answer["recently_viewed"].as_array().unwrap().is_empty(),
                "{body}"
            );
        }
    }

    let status = child.wait().unwrap();
    let stdout = stdout_reader.join().unwrap();
    let stderr = stderr_reader.join().unwrap();
    assert!(status.success(), "demo failed:\n{stderr}");
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

/// Runs one of the demo's `curl -s [-X POST -H … -d 'BODY'] 'URL'` lines.
fn run_curl(line: &str) -> (u16, String) {
    let quoted: Vec<&str> = line.split('\'').skip(1).step_by(2).collect();
    let url = *quoted.last().unwrap_or_else(|| panic!("no URL in {line}"));
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let response = if line.contains("-X POST") {
        let body = line
            .split("-d '")
            .nth(1)
            .unwrap()
            .split('\'')
            .next()
            .unwrap();
        agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(body)
    } else {
        agent.get(url).call()
    }
    .unwrap();
    let status = response.status().as_u16();
    (status, response.into_body().read_to_string().unwrap())
}
