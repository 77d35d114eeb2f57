//! The merchant's page (`/`) in a real browser: Debian's Chromium, headless, loads it
//! from a running demo for a live shopper, and the rendered page shows their profile,
//! segments, recommendation units with reasons, and recent decisions. A screenshot is
//! kept in the target directory.

mod common;

use common::live::{http_get, wait_for_status};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CHROMIUM: &str = "chromium";

/// Chromium's flags for a headless run as root in a container.
fn chromium(address: &str, shopper: &str, extra: &[&str]) -> std::process::Output {
    Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            // Lets the page's requests and scripts finish before the DOM or picture is
            // taken (virtual time waits for pending network requests).
            "--virtual-time-budget=8000",
        ])
        .args(extra)
        .arg(format!("http://{address}/?shopper={shopper}"))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{CHROMIUM}` ({e}): `scripts/install-deps --tests` installs it")
        })
}

#[test]
fn the_merchant_page_shows_a_live_shopper_in_a_real_browser() {
    let mut demo = Command::new(env!("CARGO_BIN_EXE_personalizer"))
        .args([
            "demo",
            "--duration",
            "90s",
            "--rate",
            "400",
            "--print-limit",
            "0",
        ])
        .env_remove("RUST_LOG")
        .env("PERSONALIZER_HTTP__LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    let stderr = demo.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let _ = lines_tx.send(line.unwrap());
        }
    });
    let (mut address, mut shopper) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while address.is_none() || shopper.is_none() {
        let line = lines_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the demo names its address and a live shopper");
        if let Some(rest) = line.split("metrics at http://").nth(1) {
            address = Some(rest.split('/').next().unwrap().to_string());
        }
        if let Some(rest) = line.split("live shopper `").nth(1) {
            shopper = Some(rest.split('`').next().unwrap().to_string());
        }
    }
    let (address, shopper) = (address.unwrap(), shopper.unwrap());
    wait_for_status(&address, "/readyz", 200, Duration::from_secs(30));
    // The page's decision list reads the output topics back: wait until it holds the
    // shopper's profile, which the page is checked for below.
    let decisions_path = format!("/v1/shoppers/{shopper}/decisions");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = http_get(&address, &decisions_path);
        assert_eq!(status, 200, "{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        let decisions = answer["decisions"].as_array().unwrap();
        if decisions.iter().any(|d| d["type"] == "profile") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no profile of {shopper} among the decisions: {body}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // The recently viewed unit lists only products the product table already holds,
    // and a product reaches the table through the products topic some time after the
    // shopper's view: wait until the unit the page shows has something in it.
    let recently_viewed_path =
        format!("/v1/recommendations?type=recently_viewed&shopper={shopper}&limit=5");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = http_get(&address, &recently_viewed_path);
        assert_eq!(status, 200, "{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        if !answer["items"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing {shopper} viewed reached the product table: {body}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    let (status, html) = http_get(&address, "/");
    assert_eq!(status, 200);
    assert!(html.contains("why did this shopper see this?"), "{html}");

    let rendered = chromium(&address, &shopper, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&rendered.stdout);
    assert!(
        rendered.status.success() && dom.contains(&format!("data-shown=\"{shopper}\"")),
        "the page did not finish showing {shopper}:\n{dom}\n{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    assert!(
        dom.contains(&format!("<span id=\"profile-key\">{shopper}</span>")),
        "{dom}"
    );
    for unit in [
        "recommended_for_you",
        "recently_viewed",
        "viewed_viewed",
        "trending",
    ] {
        assert!(
            dom.contains(&format!("data-unit=\"{unit}\"")),
            "no {unit} unit:\n{dom}"
        );
    }
    // Items with their reasons, and the shopper's decisions with theirs.
    assert!(dom.contains("class=\"because\">recently_viewed<"), "{dom}");
    assert!(dom.contains("<span class=\"pill\">profile</span>"), "{dom}");
    // (The page's own script, in the dump too, holds these markers only as templates.)
    for status in ['4', '5'] {
        let error = format!("class=\"error\">{status}");
        assert!(!dom.contains(&error), "an error on the page:\n{dom}");
    }
    // The live list of shoppers is filled from the activity route.
    let listed = dom
        .match_indices("data-key=\"")
        .filter(|(i, m)| !dom[i + m.len()..].starts_with('$'))
        .count();
    assert!(listed > 0, "no live shoppers listed:\n{dom}");

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("merchant-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let shot = chromium(
        &address,
        &shopper,
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,1600",
        ],
    );
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let png = std::fs::read(&screenshot).expect("the screenshot is written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    eprintln!("merchant page screenshot: {}", screenshot.display());

    let _ = demo.kill();
    let _ = demo.wait();
}
