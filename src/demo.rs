//! `personalizer demo`: the processor at work with nothing installed.
//!
//! librdkafka's in-process mock cluster stands in for Kafka (only here: every test of
//! Kafka behaviour runs against a real broker), synthetic shoppers from [`crate::generate`]
//! shop at a steady rate, the live runtime processes them, and the decisions it writes are
//! read back from the output topics and printed as they happen.

use crate::config::{Config, Dur};
use crate::decision::{Decision, DecisionType};
use crate::generate::{Generator, GeneratorSettings};
use crate::load::{self, now_millis, Pace};
use crate::runtime::clients;
use crate::runtime::topics::TopicLayout;
use crate::telemetry::Telemetry;
use crate::time::Millis;
use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct DemoOptions {
    pub shoppers: u32,
    pub events_per_second: u32,
    /// Stop after this long; `None` runs until interrupted.
    pub duration: Option<Duration>,
    pub partitions: i32,
    /// Print at most this many decisions per type (the summary keeps counting).
    pub print_limit: u64,
    /// Where to serve `/metrics`, `/healthz` and `/readyz` (`http.listen`).
    pub http_listen: String,
}

/// The configuration the demo runs with: defaults, but reminders after seconds rather than
/// hours so abandoned carts show up while you watch.
pub fn demo_config(bootstrap: &str, state_dir: &std::path::Path) -> Config {
    let mut config = Config {
        application_id: "personalizer-demo".into(),
        ..Config::default()
    };
    config.kafka.bootstrap_servers = bootstrap.to_string();
    config.kafka.grace = Dur(Duration::from_secs(2));
    config.state.dir = Some(state_dir.to_path_buf());
    config.rules.sites = crate::generate::site_settings();
    config.rules.abandoned_cart.reminders =
        vec![Dur(Duration::from_secs(10)), Dur(Duration::from_secs(30))];
    config
}

pub fn run(options: &DemoOptions, shutdown: Arc<AtomicBool>) -> Result<()> {
    let cluster = MockCluster::new(1).context("cannot start the in-process Kafka mock cluster")?;
    let bootstrap = cluster.bootstrap_servers();
    let state = tempfile::tempdir().context("cannot create a temporary state directory")?;
    let config = demo_config(&bootstrap, state.path());
    config.validate()?;
    let layout = TopicLayout::new(&config);
    for spec in layout.specs() {
        // The directory of instances is read in full, in order: one partition.
        let partitions = if spec.name == layout.instances {
            1
        } else {
            options.partitions
        };
        cluster
            .create_topic(&spec.name, partitions, 1)
            .with_context(|| format!("cannot create topic {} in the mock cluster", spec.name))?;
    }
    let telemetry = Arc::new(Telemetry::new(&config));
    let api = crate::api::ApiSlot::default();
    let http = crate::http_port::serve(&options.http_listen, telemetry.clone(), api.clone())?;
    eprintln!(
        "demo: in-process Kafka at {bootstrap}; {} shoppers, {} events/s; reminders after 10s and 30s of inactivity. Ctrl-C stops.",
        options.shoppers, options.events_per_second
    );
    let mut shown = http.local_addr();
    if shown.ip().is_unspecified() {
        shown.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    eprintln!(
        "demo: metrics at http://{shown}/metrics, health at http://{shown}/healthz and http://{shown}/readyz"
    );

    let processor = {
        let config = config.clone();
        let shutdown = shutdown.clone();
        let telemetry = telemetry.clone();
        std::thread::spawn(move || {
            crate::runtime::run(&config, &shutdown, &telemetry, &api).map_err(anyhow::Error::from)
        })
    };
    let sent = Arc::new(AtomicU64::new(0));
    let shoppers = {
        let config = config.clone();
        let shutdown = shutdown.clone();
        let sent = sent.clone();
        let rate = options.events_per_second.max(1);
        let shoppers = options.shoppers;
        std::thread::spawn(move || shop(&config, shoppers, rate, &shutdown, &sent))
    };

    let mut consumer_config = clients::base(&config);
    consumer_config
        .set("group.id", "personalizer-demo-printer")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed");
    let printer: BaseConsumer = consumer_config.create()?;
    let outputs: Vec<&str> = DecisionType::ALL
        .iter()
        .map(|t| config.kafka.topics.for_decision(*t))
        .collect();
    printer.subscribe(&outputs)?;
    let started = Instant::now();
    let mut last_summary = Instant::now();
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut showed_api = false;
    // A SKU the product table has (a product record is out), for the viewed_viewed line.
    let mut known_sku: Option<String> = None;
    let mut out = std::io::stdout().lock();
    while !shutdown.load(Ordering::SeqCst) {
        if options.duration.is_some_and(|d| started.elapsed() >= d) {
            shutdown.store(true, Ordering::SeqCst);
            break;
        }
        if let Some(Ok(message)) = printer.poll(Duration::from_millis(100)) {
            if let Some(decision) = message
                .payload()
                .and_then(|p| crate::decision_json::from_json(p).ok())
            {
                if let crate::decision::DecisionBody::Product(record) = &decision.body {
                    known_sku.get_or_insert_with(|| record.sku.clone());
                }
                if !showed_api {
                    if let Some(sku) = &known_sku {
                        showed_api = show_read_api(&shown, &decision, sku);
                    }
                }
                let kind = decision.decision_type().name();
                let count = counts.entry(kind).or_default();
                *count += 1;
                if *count <= options.print_limit {
                    writeln!(out, "{}", decision.to_json_line())?;
                }
            }
        }
        if last_summary.elapsed() >= Duration::from_secs(5) {
            last_summary = Instant::now();
            let decided: Vec<String> = counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
            eprintln!(
                "demo: {:>4}s  events sent {}  decisions: {}",
                started.elapsed().as_secs(),
                sent.load(Ordering::Relaxed),
                if decided.is_empty() {
                    "none yet".to_string()
                } else {
                    decided.join(" ")
                }
            );
        }
    }
    drop(printer);
    shoppers
        .join()
        .expect("the shopper thread does not panic")?;
    let totals = processor
        .join()
        .expect("the processor thread does not panic")?;
    eprintln!(
        "demo: done; processed {} events, {} decisions, {} commits",
        totals.stats.events_processed(),
        totals.stats.decisions_made(),
        totals.commits
    );
    Ok(())
}

/// Prints ready-to-run `curl` lines for the shopper of the first published profile
/// that has recently viewed products (and for `sku`, which the product table has);
/// true once printed.
fn show_read_api(address: &std::net::SocketAddr, decision: &Decision, sku: &str) -> bool {
    let crate::decision::DecisionBody::Profile(profile) = &decision.body else {
        return false;
    };
    if profile.recently_viewed.is_empty() {
        return false;
    }
    let key = decision.record_key();
    let skus: Vec<String> = profile
        .recently_viewed
        .iter()
        .take(5)
        .map(|s| format!("\"{s}\""))
        .collect();
    let base = format!("http://{address}");
    eprintln!("demo: the read API answers for the live shopper `{key}` (try these while it runs):");
    eprintln!("  curl -s '{base}/v1/shoppers/{key}/profile'");
    eprintln!(
        "  curl -s '{base}/v1/recommendations?type=recommended_for_you&shopper={key}&limit=5'"
    );
    eprintln!("  curl -s '{base}/v1/recommendations?type=viewed_viewed&sku={sku}&limit=5'");
    eprintln!("  curl -s '{base}/v1/recommendations?type=trending&limit=5'");
    eprintln!(
        "  curl -s -X POST -H 'Content-Type: application/json' -d '{{\"query\": \"dress\", \"skus\": [{}]}}' '{base}/v1/shoppers/{key}/search-order'",
        skus.join(", ")
    );
    true
}

/// Synthetic shoppers shopping now: the generator's sessions, sent at a steady rate and
/// stamped with the wall clock as they go out.
fn shop(
    config: &Config,
    shoppers: u32,
    rate: u32,
    shutdown: &AtomicBool,
    sent: &AtomicU64,
) -> Result<()> {
    let span_hours: u64 = 24;
    let start = now_millis();
    let generator = Generator::new(GeneratorSettings {
        shoppers,
        events: u64::from(rate) * 3600 * span_hours,
        seed: start as u64,
        start,
        span: (span_hours * 3_600_000) as Millis,
        // The demo's events are stamped with the wall clock as they are sent.
        history: 0,
        products: 0,
        lateness: 0,
    });
    load::produce_events(config, generator, Pace::PerSecond(rate), shutdown, sent)?;
    Ok(())
}
