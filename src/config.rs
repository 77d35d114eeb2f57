//! Settings: one TOML file, every setting with a default, environment overrides
//! (`PERSONALIZER_<SECTION>__<KEY>`), and validation that names the setting at fault.
//!
//! `config/personalizer.toml` lists every setting with its default and meaning; a test
//! keeps that file and these defaults equal.

mod api;
mod duration;
mod formats;
mod kafka;
mod limits;
mod offers;
mod products;
mod profiles;
mod segments;
pub use api::{ApiConfig, SearchOrderWeights};
pub use duration::Dur;
pub use formats::{Format, OutputSchemas, SchemaRegistryConfig, SubjectStrategy, TopicFormats};
pub use kafka::{CommitPacing, KafkaConfig, ProcessingGuarantee, TopicsConfig};
pub use limits::{LimitsConfig, MAX_STATE_BYTES_CEILING};
pub use offers::{OfferConfig, OffersConfig};
pub use products::{ProductsConfig, RecsConfig};
pub use profiles::{is_country_code, InterestWeights, InterestsConfig, ProfilesConfig, SiteConfig};
pub use segments::{RfmConfig, SegmentsConfig};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Prefix of environment variables that override settings; `__` separates sections.
pub const ENV_PREFIX: &str = "PERSONALIZER_";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Names the consumer group and prefixes internal topics and changelogs.
    pub application_id: String,
    pub engine: EngineConfig,
    pub rules: RulesConfig,
    pub state: StateConfig,
    pub kafka: KafkaConfig,
    pub http: HttpConfig,
    pub api: ApiConfig,
    pub schema_registry: SchemaRegistryConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address of the HTTP port (`/metrics`, `/healthz`, `/readyz`); port 0 picks a free one.
    pub listen: String,
    /// `/healthz` fails when input has waited this long with no commit succeeding.
    pub commit_stall_limit: Dur,
    /// The URL other instances reach this one's HTTP port at (the read API forwards a
    /// request to the instance that owns its shopper). Unset: `http://` and the listen
    /// address, with this machine's host name for an unspecified address (`0.0.0.0`).
    pub advertised_url: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "0.0.0.0:8080".into(),
            commit_stall_limit: Dur(crate::telemetry::health::DEFAULT_COMMIT_STALL_LIMIT),
            advertised_url: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// Which logs to write, as a `tracing` filter (`RUST_LOG` overrides it).
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            filter: "warn,personalizer=info".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Tasks per processor in `replay`; live, the input topics' partition count decides.
    /// Keep it equal to the live partition count so a replay partitions state the same way.
    pub partitions: u16,
    /// In `replay`, state is committed to RocksDB after this many input events.
    pub commit_every_events: usize,
    /// An event stamped later than this after the moment it is read (live: its record's
    /// timestamp; `replay`: the wall clock or `--now`) is refused as from the future: it
    /// would move stream time past every pending timer at once.
    pub max_clock_skew: Dur,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// An event whose `event_id` was seen within this window is skipped. `0s` disables.
    pub dedupe_window: Dur,
    /// When true, a shopper with no `consent_changed` yet gets no emails or offers.
    pub require_consent: bool,
    pub abandoned_cart: AbandonedCartConfig,
    pub back_in_stock: BackInStockConfig,
    pub limits: LimitsConfig,
    pub interests: InterestsConfig,
    pub profiles: ProfilesConfig,
    pub segments: SegmentsConfig,
    pub offers: OffersConfig,
    pub products: ProductsConfig,
    pub recs: RecsConfig,
    /// Storefront sites by code, for the profile's site suggestion.
    pub sites: std::collections::BTreeMap<String, SiteConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AbandonedCartConfig {
    /// Step k is due at the shopper's last activity plus `reminders[k-1]`; increasing.
    pub reminders: Vec<Dur>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackInStockConfig {
    /// How long a "notify me" request stays valid.
    pub request_ttl: Dur,
    /// At most `quantity × max_per_unit` notifications per restock; unset means no cap.
    pub max_per_unit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Where RocksDB lives. Unset: `replay` uses a temporary directory it deletes after.
    pub dir: Option<PathBuf>,
    /// RocksDB block cache shared by all column families.
    pub block_cache_bytes: u64,
    /// Memtable memory for all column families together (RocksDB write-buffer manager).
    pub write_buffer_bytes: u64,
    /// Shopper and product states kept in memory between commits, per process.
    pub cache_max_entries: usize,
    /// The same cache's size: stored sizes of the states and their event ids, plus a
    /// fixed overhead per entry. Unset: [`StateConfig::cache_bytes_for`] the workload.
    pub cache_max_bytes: Option<u64>,
}

/// What the processor is doing, where a default depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `replay`: one pass over files, each shopper's events mostly together in time.
    Replay,
    /// `run` and `demo`: a stream that goes on, whose active shoppers keep coming back.
    Live,
}

impl StateConfig {
    /// The write-back cache's byte budget: `cache_max_bytes`, or when unset 4 MiB for
    /// `replay` and 16 MiB live. Live, a steady stream revisits the same active shoppers
    /// and SKUs every few seconds, and at 4 MiB a third of the CPU went to reloading the
    /// states it had just evicted; a replay's peak memory rises with the cache and gains
    /// no speed from it (BENCHMARKS.md, "A state cache for each workload").
    pub fn cache_bytes_for(&self, workload: Workload) -> u64 {
        self.cache_max_bytes.unwrap_or(match workload {
            Workload::Replay => 4 << 20,
            Workload::Live => 16 << 20,
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            application_id: "personalizer".into(),
            engine: EngineConfig::default(),
            rules: RulesConfig::default(),
            state: StateConfig::default(),
            kafka: KafkaConfig::default(),
            http: HttpConfig::default(),
            api: ApiConfig::default(),
            schema_registry: SchemaRegistryConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            partitions: 8,
            commit_every_events: 20_000,
            max_clock_skew: Dur(Duration::from_secs(300)),
        }
    }
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            dedupe_window: Dur::hours(24),
            require_consent: false,
            abandoned_cart: AbandonedCartConfig::default(),
            back_in_stock: BackInStockConfig::default(),
            limits: LimitsConfig::default(),
            interests: InterestsConfig::default(),
            profiles: ProfilesConfig::default(),
            segments: SegmentsConfig::default(),
            offers: OffersConfig::default(),
            products: ProductsConfig::default(),
            recs: RecsConfig::default(),
            sites: Default::default(),
        }
    }
}

impl Default for AbandonedCartConfig {
    fn default() -> Self {
        AbandonedCartConfig {
            reminders: vec![Dur::minutes(60), Dur::hours(24)],
        }
    }
}

impl Default for BackInStockConfig {
    fn default() -> Self {
        BackInStockConfig {
            request_ttl: Dur::hours(24 * 30),
            max_per_unit: None,
        }
    }
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: None,
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 64 << 20,
            cache_max_entries: 200_000,
            cache_max_bytes: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("environment variable {var}: cannot set `{setting}` ({problem})")]
    Env {
        var: String,
        setting: String,
        problem: String,
    },
    #[error("setting `{setting}`: {problem}")]
    Invalid { setting: String, problem: String },
}

/// The machine's physical memory (Linux `/proc/meminfo`); `None` where it cannot be read,
/// and then memory settings are not checked against it.
fn physical_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn invalid(setting: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.to_string(),
        problem: problem.into(),
    }
}

impl Config {
    /// Loads the file (if any), applies `PERSONALIZER_*` overrides from the process
    /// environment, and validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with_env(path, std::env::vars())
    }

    /// As [`Config::load`], with the environment given explicitly (tests, embedding).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str::<toml::Table>(&text).map_err(|e| ConfigError::Syntax {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?
            }
            None => toml::Table::new(),
        };
        let mut overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        overrides.sort();
        for (var, value) in overrides {
            apply_env_override(&mut table, &var, &value)?;
        }
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let setting = e.path().to_string();
                invalid(&setting, e.into_inner().message().to_string())
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot: ranges and relations between settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.application_id.is_empty()
            || !self
                .application_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(invalid(
                "application_id",
                format!(
                    "`{}` must be non-empty and use only letters, digits, '.', '_' and '-' \
                     (it becomes part of Kafka topic names)",
                    self.application_id
                ),
            ));
        }
        if !(1..=1024).contains(&self.engine.partitions) {
            return Err(invalid("engine.partitions", "must be between 1 and 1024"));
        }
        if self.engine.commit_every_events == 0 {
            return Err(invalid("engine.commit_every_events", "must be at least 1"));
        }
        let reminders = &self.rules.abandoned_cart.reminders;
        for (i, r) in reminders.iter().enumerate() {
            if r.0.is_zero() {
                return Err(invalid(
                    &format!("rules.abandoned_cart.reminders[{i}]"),
                    "must be longer than 0s",
                ));
            }
            if i > 0 && r.0 <= reminders[i - 1].0 {
                return Err(invalid(
                    &format!("rules.abandoned_cart.reminders[{i}]"),
                    "reminders must be strictly increasing (each step waits longer than the last)",
                ));
            }
        }
        if self.rules.back_in_stock.request_ttl.0.is_zero() {
            return Err(invalid(
                "rules.back_in_stock.request_ttl",
                "must be longer than 0s",
            ));
        }
        if self.rules.back_in_stock.max_per_unit == Some(0) {
            return Err(invalid(
                "rules.back_in_stock.max_per_unit",
                "must be at least 1 (leave it unset for no cap)",
            ));
        }
        if self.state.cache_max_entries == 0 {
            return Err(invalid("state.cache_max_entries", "must be at least 1"));
        }
        if self.state.cache_max_bytes == Some(0) {
            return Err(invalid("state.cache_max_bytes", "must be at least 1"));
        }
        if self.state.block_cache_bytes < 1 << 20 {
            return Err(invalid("state.block_cache_bytes", "must be at least 1 MiB"));
        }
        self.rules.limits.validate()?;
        self.rules.interests.validate()?;
        self.rules.profiles.validate()?;
        self.rules.segments.validate()?;
        self.rules.offers.validate()?;
        self.rules.products.validate()?;
        self.rules.recs.validate()?;
        profiles::validate_sites(&self.rules.sites)?;
        self.validate_kafka()?;
        self.api.validate()?;
        self.schema_registry.validate(&self.kafka.formats)?;
        if self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "http.listen",
                format!(
                    "`{}` is not an address to listen on; write e.g. \"0.0.0.0:8080\"",
                    self.http.listen
                ),
            ));
        }
        if self.http.commit_stall_limit.0 <= self.kafka.commit_interval.0 {
            return Err(invalid(
                "http.commit_stall_limit",
                "must be longer than `kafka.commit_interval`",
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            return Err(invalid("log.filter", format!("`{}`: {e}", self.log.filter)));
        }
        if self.state.write_buffer_bytes < 4 << 20 {
            return Err(invalid(
                "state.write_buffer_bytes",
                "must be at least 4 MiB",
            ));
        }
        if let Some(memory) = physical_memory_bytes() {
            for (setting, bytes) in [
                ("state.block_cache_bytes", self.state.block_cache_bytes),
                ("state.write_buffer_bytes", self.state.write_buffer_bytes),
            ] {
                if bytes > memory {
                    return Err(invalid(
                        setting,
                        format!(
                            "{bytes} bytes is more than this machine's memory ({memory} bytes)"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_kafka(&self) -> Result<(), ConfigError> {
        let kafka = &self.kafka;
        if kafka.bootstrap_servers.trim().is_empty() {
            return Err(invalid(
                "kafka.bootstrap_servers",
                "must name at least one broker",
            ));
        }
        if kafka.commit_interval.0.is_zero() {
            return Err(invalid("kafka.commit_interval", "must be longer than 0s"));
        }
        if kafka.default_partitions < 1 {
            return Err(invalid("kafka.default_partitions", "must be at least 1"));
        }
        if kafka.replication_factor < 1 {
            return Err(invalid("kafka.replication_factor", "must be at least 1"));
        }
        // Kafka takes `segment.bytes` as a 32-bit int, at least 1 MiB since 4.0.
        if !(1 << 20..=i32::MAX as u64).contains(&kafka.compacted_segment_bytes) {
            return Err(invalid(
                "kafka.compacted_segment_bytes",
                "must be between 1048576 (1 MiB) and 2147483647",
            ));
        }
        let most = crate::telemetry::health::MAX_STREAM_THREADS;
        if !(1..=most).contains(&kafka.stream_threads) {
            return Err(invalid(
                "kafka.stream_threads",
                format!("must be between 1 and {most}"),
            ));
        }
        if let Some(id) = &kafka.instance_id {
            if id.is_empty() {
                return Err(invalid("kafka.instance_id", "must not be empty"));
            }
        }
        for (name, topic) in kafka.topics.all() {
            let legal = !topic.is_empty()
                && topic.len() <= 249
                && topic
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !legal {
                return Err(invalid(
                    &format!("kafka.topics.{name}"),
                    format!("`{topic}` is not a legal Kafka topic name"),
                ));
            }
        }
        for key in kafka.properties.keys() {
            const OWNED: &[&str] = &[
                "bootstrap.servers",
                "group.id",
                "transactional.id",
                "enable.auto.commit",
                "isolation.level",
            ];
            if OWNED.contains(&key.as_str()) {
                return Err(invalid(
                    &format!("kafka.properties.\"{key}\""),
                    "is set by Personalizer itself; use the dedicated setting",
                ));
            }
        }
        Ok(())
    }

    /// The whole configuration as TOML, defaults included.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("config always serializes")
    }
}

/// `PERSONALIZER_RULES__ABANDONED_CART__REMINDERS='["30m","2h"]'` sets
/// `rules.abandoned_cart.reminders`. The value is read as a TOML value when it is one
/// (numbers, booleans, arrays) and as a plain string otherwise (`60m`, host names).
fn apply_env_override(table: &mut toml::Table, var: &str, value: &str) -> Result<(), ConfigError> {
    let path: Vec<String> = var[ENV_PREFIX.len()..]
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect();
    let setting = path.join(".");
    let env_error = |problem: &str| ConfigError::Env {
        var: var.to_string(),
        setting: setting.clone(),
        problem: problem.to_string(),
    };
    if path.iter().any(String::is_empty) {
        return Err(env_error("empty section or key name"));
    }
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let (key, sections) = path.split_last().expect("split yields at least one part");
    let mut current = table;
    for section in sections {
        let entry = current
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| env_error(&format!("`{section}` is not a section")))?;
    }
    current.insert(key.clone(), parsed);
    Ok(())
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
