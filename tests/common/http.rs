//! Talking to a processor's HTTP port: GETs, waiting for a status or a metric.

use std::time::{Duration, Instant};

/// GETs `path` from a processor's HTTP port: the status and the body.
pub fn http_get(address: &str, path: &str) -> (u16, String) {
    try_http_get(address, path).unwrap_or_else(|e| panic!("GET {address}{path}: {e}"))
}

fn try_http_get(address: &str, path: &str) -> Result<(u16, String), ureq::Error> {
    let response = ureq::get(&format!("http://{address}{path}"))
        .config()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .call()?;
    let status = response.status().as_u16();
    let body = response.into_body().read_to_string()?;
    Ok((status, body))
}

/// Polls `path` until it answers `status` (returning the body), for at most `within`.
pub fn wait_for_status(address: &str, path: &str, status: u16, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        // Not listening yet counts as not there yet.
        let (got, body) = try_http_get(address, path).unwrap_or_else(|e| (0, e.to_string()));
        if got == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} still answers {got} ({}) after {within:?}",
            body.trim()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The value of one sample in a Prometheus text exposition, summed over every series of
/// `name` whose labels include all of `labels` (e.g. `outcome="processed"`).
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && labels.iter().all(|want| rest.contains(want)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// Waits until `name` (summed over the series with all of `labels`, and over the
/// processors at `addresses`) reaches `at_least`, for at most `within`.
pub fn wait_for_metric(
    addresses: &[String],
    name: &str,
    labels: &[&str],
    at_least: f64,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    loop {
        let value: f64 = addresses
            .iter()
            .map(|a| metric_sum(&http_get(a, "/metrics").1, name, labels))
            .sum();
        if value >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} is {value}, not {at_least}, after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
