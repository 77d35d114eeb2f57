//! How fresh the read API's answers are, on a running processor (`scripts/bench-api`):
//!
//! - shopper side: a `product_viewed` is produced for a shopper, and their profile is
//!   polled until the SKU leads `recently_viewed`;
//! - product side: a SKU among the most viewed goes out of stock, and the `most_viewed`
//!   unit is polled until it is gone (its product record is published at most once per
//!   `products.publish_interval` of stream time, then read into every product table);
//!   then its stock comes back.
//!
//! Prints one JSON line with the quantiles in milliseconds, and how many probes were not
//! reflected within 30 s.
//!
//!   api_freshness BOOTSTRAP CLICKSTREAM_TOPIC STOCK_TOPIC HTTP_ADDRESS KEYS_FILE PROBES

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_rfc3339() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    personalizer::time::format_rfc3339(millis)
}

/// The JSON answer, whatever its status (a shopper not known yet is a 404 until the
/// probe's view is processed).
fn get(agent: &ureq::Agent, url: &str) -> serde_json::Value {
    let body = agent
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .into_body()
        .read_to_string()
        .unwrap();
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {body}"))
}

fn send(producer: &BaseProducer, topic: &str, key: &str, event: serde_json::Value) {
    let payload = event.to_string();
    producer
        .send(BaseRecord::to(topic).key(key).payload(&payload))
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(5)).unwrap();
}

/// Polls `done` every 5 ms for at most 30 s; the time it took, or `None` after 30 s.
fn until(mut done: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > Duration::from_secs(30) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Some(started.elapsed())
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, bootstrap, clickstream, stock, http, keys_file, probes] = &args[..] else {
        eprintln!("usage: api_freshness BOOTSTRAP CLICKSTREAM_TOPIC STOCK_TOPIC HTTP_ADDRESS KEYS_FILE PROBES");
        std::process::exit(2);
    };
    let probes: usize = probes.parse().unwrap();
    let keys: Vec<String> = std::fs::read_to_string(keys_file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .create()
        .unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into();

    let mut shopper_ms = Vec::new();
    let mut timeouts = 0;
    let mut candidates = (0..).map(|n: usize| &keys[n * 7919 % keys.len()]);
    for i in 0..probes {
        // A customer the stream erased has no profile, and their views are ignored.
        let key = candidates
            .by_ref()
            .find(|key| {
                let url = format!("http://{http}/v1/shoppers/{key}/profile");
                get(&agent, &url).get("error").is_none()
            })
            .expect("keys go round");
        let sku = format!("FRESH-{i:05}");
        send(
            &producer,
            clickstream,
            key,
            serde_json::json!({
                "event_id": format!("fresh-view-{i}-{}", std::process::id()),
                "type": "product_viewed",
                "occurred_at": now_rfc3339(),
                "customer_id": key,
                "product": {"sku": sku, "name": "Freshness probe", "category": ["probe", "fresh"]},
            }),
        );
        let url = format!("http://{http}/v1/shoppers/{key}/profile");
        match until(|| get(&agent, &url)["recently_viewed"][0] == sku.as_str()) {
            Some(took) => shopper_ms.push(took.as_secs_f64() * 1000.0),
            None => timeouts += 1,
        }
    }

    let mut product_ms = Vec::new();
    let most_viewed = format!("http://{http}/v1/recommendations?type=most_viewed&limit=20");
    for i in 0..probes.div_ceil(10) {
        let top = get(&agent, &most_viewed);
        let sku = top["items"][0]["sku"].as_str().unwrap().to_string();
        let stock_event = |quantity: u64, n: &str| {
            serde_json::json!({
                "event_id": format!("fresh-stock-{i}-{n}-{}", std::process::id()),
                "type": "stock_changed",
                "occurred_at": now_rfc3339(),
                "sku": sku,
                "quantity": quantity,
            })
        };
        send(&producer, stock, &sku, stock_event(0, "out"));
        let gone = until(|| {
            let items = get(&agent, &most_viewed);
            !items["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|item| item["sku"] == sku.as_str())
        });
        match gone {
            Some(took) => product_ms.push(took.as_secs_f64() * 1000.0),
            None => timeouts += 1,
        }
        send(&producer, stock, &sku, stock_event(50, "back"));
        // Back in stock (and in the ranking) before the next probe.
        let _ = until(|| {
            get(&agent, &most_viewed)["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|item| item["sku"] == sku.as_str())
        });
    }

    for list in [&mut shopper_ms, &mut product_ms] {
        list.sort_by(f64::total_cmp);
    }
    assert!(
        !shopper_ms.is_empty() && !product_ms.is_empty(),
        "no probe was reflected within 30 s ({timeouts} timed out)"
    );
    println!(
        "{{\"timeouts\":{timeouts},\"probes\":{},\"shopper_p50_ms\":{:.1},\"shopper_p99_ms\":{:.1},\"shopper_max_ms\":{:.1},\"product_probes\":{},\"product_p50_ms\":{:.1},\"product_p99_ms\":{:.1},\"product_max_ms\":{:.1}}}",
        shopper_ms.len(),
        quantile(&shopper_ms, 0.5),
        quantile(&shopper_ms, 0.99),
        shopper_ms.last().unwrap(),
        product_ms.len(),
        quantile(&product_ms, 0.5),
        quantile(&product_ms, 0.99),
        product_ms.last().unwrap(),
    );
}
