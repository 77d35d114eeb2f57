//! Keys, bytes (keys and values) and the largest entry per column family of a state
//! directory (a stopped processor's, or a replay's `--state-dir`): what `BENCHMARKS.md`
//! quotes as bytes per SKU.
//!
//! `cargo run --release --example state_sizes -- DIR`

use personalizer::config::StateConfig;
use personalizer::store::{Family, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: state_sizes STATE_DIR")?;
    let store = Store::open(std::path::Path::new(&dir), &StateConfig::default())?;
    println!(
        "{:<16} {:>10} {:>14} {:>10} {:>10}",
        "family", "keys", "bytes", "bytes/key", "largest"
    );
    for family in Family::ALL {
        let sizes: Vec<usize> = store
            .scan_prefix(family, &[])?
            .iter()
            .map(|(key, value)| key.len() + value.len())
            .collect();
        let bytes: usize = sizes.iter().sum();
        println!(
            "{:<16} {:>10} {:>14} {:>10} {:>10}",
            family.name(),
            sizes.len(),
            bytes,
            bytes.checked_div(sizes.len()).unwrap_or(0),
            sizes.iter().max().copied().unwrap_or(0)
        );
    }
    Ok(())
}
