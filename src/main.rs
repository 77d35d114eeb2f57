//! The `personalizer` command line: parse, load config, call into the library.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use personalizer::config::{Config, LogConfig, LogFormat};
use personalizer::decision::DecisionType;
use personalizer::generate::{Generator, GeneratorSettings};
use personalizer::replay::{self, Input, ReplayOptions};
use personalizer::resources::peak_rss_bytes;
use personalizer::telemetry::Telemetry;
use personalizer::time::{duration_millis, parse_rfc3339};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

// librdkafka's threads and the stream thread allocate and free small buffers for every
// record; glibc's allocator spent a third of the live runtime's time doing that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "personalizer",
    version,
    about = "Turns shop event streams into personalization decisions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run JSON Lines events through the engine offline and print the decisions.
    Replay(ReplayArgs),
    /// Write synthetic shopper traffic as JSON Lines.
    Generate(GenerateArgs),
    /// Validate a configuration file (with PERSONALIZER_* overrides applied).
    CheckConfig(CheckConfigArgs),
    /// Run the live processor on Kafka until SIGTERM or Ctrl-C.
    Run(RunArgs),
    /// Create or check the input, output and internal topics.
    Topics(TopicsArgs),
    /// Run the processor on an in-process Kafka with synthetic shoppers, printing
    /// decisions as they happen. Needs nothing installed.
    Demo(DemoArgs),
    /// Answer one read-API path (e.g. `/v1/shoppers/c1/profile`) from a stopped
    /// processor's or a replay's state directory and print the JSON.
    Query(QueryArgs),
}

#[derive(Args)]
struct QueryArgs {
    /// Configuration file (TOML): the settings the answer is computed with.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The state directory of a stopped `run` or of `replay --state-dir`.
    #[arg(long)]
    state_dir: PathBuf,
    /// Send a POST with this JSON body (the search order) instead of a GET.
    #[arg(long)]
    body: Option<String>,
    /// The path and query string, e.g. `/v1/recommendations?type=trending&limit=5`.
    path: String,
}

#[derive(Args)]
struct RunArgs {
    /// Configuration file (TOML); defaults and PERSONALIZER_* overrides apply.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Keep state here (overrides `state.dir`).
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

#[derive(Args)]
struct TopicsArgs {
    #[command(subcommand)]
    action: TopicsAction,
}

#[derive(Subcommand)]
enum TopicsAction {
    /// Create every missing topic (inputs with `kafka.default_partitions`, internal topics
    /// partitioned like the inputs they follow, changelogs and profiles compacted).
    Create {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check that every topic exists with the partitions and compaction it needs.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Args)]
struct DemoArgs {
    /// Number of synthetic shoppers.
    #[arg(long, default_value_t = 2_000)]
    shoppers: u32,
    /// Events per second the shoppers produce.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Stop after this long (e.g. `90s`); by default run until Ctrl-C.
    #[arg(long)]
    duration: Option<String>,
    /// Print at most this many decisions of each type (the summary keeps counting).
    #[arg(long, default_value_t = 20)]
    print_limit: u64,
}

#[derive(Args)]
struct ReplayArgs {
    /// Configuration file (TOML); defaults apply to everything it leaves out.
    #[arg(long)]
    config: Option<PathBuf>,
    /// After the input, move stream time to this RFC 3339 instant, firing what falls due.
    #[arg(long)]
    until: Option<String>,
    /// Write decisions here instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Keep state in this directory, so a later replay continues where this one ended
    /// (overrides `state.dir`). Without it, state lives in a temporary directory.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Stop with an error at the first bad line instead of reporting and skipping it.
    #[arg(long)]
    strict: bool,
    /// Judge events against this RFC 3339 instant instead of the wall clock: one stamped
    /// more than `engine.max_clock_skew` after it is a bad line (from the future).
    #[arg(long)]
    now: Option<String>,
    /// Print a summary (events, decisions, events/s, peak memory) to standard error.
    #[arg(long)]
    stats: bool,
    /// Print only these decision types, comma-separated (abandoned_cart, back_in_stock,
    /// discount_offer, segment_changed, profile); `profile` includes profile_deleted.
    #[arg(long, value_delimiter = ',', value_parser = parse_decision_type)]
    types: Option<Vec<DecisionType>>,
    /// JSON Lines files, read in order; `-` is standard input.
    #[arg(required = true)]
    inputs: Vec<String>,
}

fn parse_decision_type(name: &str) -> Result<DecisionType, String> {
    DecisionType::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = DecisionType::ALL.iter().map(|t| t.name()).collect();
        format!(
            "`{name}` is not a decision type (one of {})",
            known.join(", ")
        )
    })
}

#[derive(Args)]
struct GenerateArgs {
    /// Number of distinct shoppers.
    #[arg(long, default_value_t = 10_000)]
    shoppers: u32,
    /// Number of events to write.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Random seed: the same seed gives the same events.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Event time at which the busy span begins (RFC 3339).
    #[arg(long, default_value = "2026-01-01T00:00:00Z")]
    start: String,
    /// Event time the busy span lasts, e.g. `3d`, `12h`.
    #[arg(long, default_value = "3d")]
    span: String,
    /// How far before `--start` the regular customers' orders begin (one shopper in a
    /// hundred orders every few weeks over months, so every segment is entered and
    /// left), e.g. `400d`; `0s` for none.
    #[arg(long, default_value = "400d")]
    history: String,
    /// Catalog size (0: derived from the number of shoppers).
    #[arg(long, default_value_t = 0)]
    products: u32,
    /// How much earlier than the latest event before it an event may be, as a shop's
    /// producers deliver a little out of order, e.g. `90s`. `0s`: in event-time order.
    #[arg(long, default_value = "0s")]
    lateness: String,
    /// Write here instead of standard output.
    #[arg(long, conflicts_with = "to_kafka")]
    output: Option<PathBuf>,
    /// Produce to the input topics of this configuration instead of writing JSON Lines.
    #[arg(long, value_name = "CONFIG")]
    to_kafka: Option<PathBuf>,
    /// With --to-kafka: send this many events per second, each stamped with the wall
    /// clock when sent (for latency measurements). Default: as fast as possible.
    #[arg(long, requires = "to_kafka")]
    rate: Option<u32>,
}

#[derive(Args)]
struct CheckConfigArgs {
    /// The configuration file to check.
    file: PathBuf,
    /// Print the effective configuration, defaults included.
    #[arg(long)]
    print: bool,
}

fn main() {
    personalizer::resources::limit_c_allocator_arenas();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(args) => run_replay(args),
        Command::Generate(args) => run_generate(args),
        Command::CheckConfig(args) => run_check_config(args),
        Command::Run(args) => run_live(args),
        Command::Topics(args) => run_topics(args),
        Command::Demo(args) => run_demo(args),
        Command::Query(args) => run_query(args),
    };
    if let Err(error) = result {
        eprintln!("personalizer: {error:#}");
        std::process::exit(1);
    }
}

/// Logs to standard error in the configured format; `RUST_LOG` overrides the filter.
fn init_logging(log: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.filter));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match log.format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn output_writer(path: Option<&PathBuf>) -> Result<Box<dyn Write>> {
    Ok(match path {
        Some(path) => Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::io::stdout().lock(),
        )),
    })
}

/// Prints the answer's JSON; an error status (404, 400, …) exits with status 1 after
/// printing its JSON body too, so scripts can tell the two apart.
fn run_query(args: QueryArgs) -> Result<()> {
    use personalizer::api::query;
    let config = Config::load(args.config.as_deref())?;
    init_logging(&config.log);
    let method = match args.body {
        Some(_) => axum::http::Method::POST,
        None => axum::http::Method::GET,
    };
    let read = query::open(config, &args.state_dir)?;
    let (status, json) = query::answer(read, method, &args.path, args.body)?;
    println!("{json}");
    if !status.is_success() {
        anyhow::bail!("{} answered {status}", args.path);
    }
    Ok(())
}

fn run_replay(args: ReplayArgs) -> Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    init_logging(&config.log);
    if let Some(dir) = args.state_dir {
        config.state.dir = Some(dir);
    }
    let until = args
        .until
        .as_deref()
        .map(parse_rfc3339)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--until: {e}"))?;
    let options = ReplayOptions {
        inputs: args.inputs.iter().map(|a| Input::parse(a)).collect(),
        until,
        strict: args.strict,
        now: args
            .now
            .as_deref()
            .map(|t| parse_rfc3339(t).map_err(|e| anyhow::anyhow!("--now: {e}")))
            .transpose()?,
        types: args.types.clone(),
    };
    let mut output = output_writer(args.output.as_ref())?;
    let mut errors = std::io::stderr().lock();
    let started = Instant::now();
    let summary = replay::run(&config, &options, &mut output, &mut errors)?;
    drop(output);
    if args.stats {
        let seconds = started.elapsed().as_secs_f64();
        let events = summary.stats.events_processed() + summary.stats.duplicates;
        let summary_line = serde_json::json!({
            "lines": summary.lines,
            "events_processed": summary.stats.events_processed(),
            "duplicates": summary.stats.duplicates,
            "unknown_types": summary.stats.unknown_types,
            "bad_lines": summary.bad_lines,
            "refused": summary.stats.refused,
            "messages_refused": summary.stats.messages_refused,
            "decisions": summary.stats.decisions,
            "suppressed_no_consent": summary.stats.suppressed_no_consent,
            "timers_fired": summary.stats.timers_fired,
            "timers_pending": summary.pending_timers,
            "forwards": summary.stats.forwards,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "events_per_second": (events as f64 / seconds).round(),
            "peak_rss_bytes": peak_rss_bytes(),
        });
        writeln!(errors, "{summary_line}")?;
    }
    Ok(())
}

fn run_generate(args: GenerateArgs) -> Result<()> {
    let span =
        humantime::parse_duration(&args.span).with_context(|| format!("--span `{}`", args.span))?;
    let settings = GeneratorSettings {
        shoppers: args.shoppers,
        events: args.events,
        seed: args.seed,
        start: parse_rfc3339(&args.start).map_err(|e| anyhow::anyhow!("--start: {e}"))?,
        span: duration_millis(span),
        history: duration_millis(
            humantime::parse_duration(&args.history)
                .with_context(|| format!("--history `{}`", args.history))?,
        ),
        products: args.products,
        lateness: duration_millis(
            humantime::parse_duration(&args.lateness)
                .with_context(|| format!("--lateness `{}`", args.lateness))?,
        ),
    };
    anyhow::ensure!(settings.shoppers > 0, "--shoppers must be at least 1");
    let config = Config::load(args.to_kafka.as_deref())?;
    init_logging(&config.log);
    if args.to_kafka.is_some() {
        let pace = args.rate.map_or(personalizer::load::Pace::Unpaced, |r| {
            personalizer::load::Pace::PerSecond(r)
        });
        let sent = std::sync::atomic::AtomicU64::new(0);
        let started = Instant::now();
        personalizer::load::produce_events(
            &config,
            Generator::new(settings),
            pace,
            &*shutdown_flag()?,
            &sent,
        )?;
        let n = sent.load(std::sync::atomic::Ordering::Relaxed);
        eprintln!(
            "generate: produced {n} events in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let mut output = output_writer(args.output.as_ref())?;
    let mut line = Vec::with_capacity(512);
    for event in Generator::new(settings) {
        line.clear();
        serde_json::to_writer(&mut line, &event.to_wire())?;
        line.push(b'\n');
        output.write_all(&line)?;
    }
    output.flush()?;
    Ok(())
}

/// A flag set by SIGTERM or Ctrl-C; a second Ctrl-C exits at once.
fn shutdown_flag() -> Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, flag.clone())?;
        signal_hook::flag::register(signal, flag.clone())?;
    }
    Ok(flag)
}

fn run_live(args: RunArgs) -> Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    init_logging(&config.log);
    if let Some(dir) = args.state_dir {
        config.state.dir = Some(dir);
    }
    let shutdown = shutdown_flag()?;
    let telemetry = Arc::new(Telemetry::new(&config));
    let api = personalizer::api::ApiSlot::default();
    let _http =
        personalizer::http_port::serve(&config.http.listen, telemetry.clone(), api.clone())?;
    let totals = personalizer::runtime::run(&config, &shutdown, &telemetry, &api)?;
    tracing::info!(
        events = totals.stats.events_processed(),
        decisions = totals.stats.decisions_made(),
        dead_letters = totals.dead_letters,
        commits = totals.commits,
        aborts = totals.aborts,
        commit_ms_mean = (totals.commit_seconds * 1000.0 / totals.commits.max(1) as f64).round(),
        latency_p50_ms = %totals.latency.quantile(0.5),
        latency_p99_ms = %totals.latency.quantile(0.99),
        "stopped"
    );
    Ok(())
}

fn run_topics(args: TopicsArgs) -> Result<()> {
    use personalizer::runtime::{prepare_topics, topics::TopicLayout};
    let (config_path, create) = match args.action {
        TopicsAction::Create { config } => (config, true),
        TopicsAction::Check { config } => (config, false),
    };
    let config = Config::load(config_path.as_deref())?;
    init_logging(&config.log);
    let layout = TopicLayout::new(&config);
    let shutdown = shutdown_flag()?;
    let health = personalizer::telemetry::health::Health::default();
    let cluster = prepare_topics(&config, &layout, |_| create, &shutdown, &health)?;
    for spec in layout.specs() {
        let info = &cluster.topics[&spec.name];
        println!(
            "ok  {:<40} {:>3} partitions{}",
            spec.name,
            info.partitions,
            if spec.compacted { ", compacted" } else { "" }
        );
    }
    Ok(())
}

fn run_demo(args: DemoArgs) -> Result<()> {
    // Settings from the environment only (the demo has no file): the HTTP address and
    // the log format. It logs errors only unless RUST_LOG says otherwise: the progress
    // lines would bury the decisions it prints.
    let settings = Config::load(None)?;
    init_logging(&LogConfig {
        filter: "error".into(),
        ..settings.log.clone()
    });
    let duration = args
        .duration
        .as_deref()
        .map(|d| humantime::parse_duration(d).with_context(|| format!("--duration `{d}`")))
        .transpose()?;
    let options = personalizer::demo::DemoOptions {
        shoppers: args.shoppers.max(1),
        events_per_second: args.rate,
        duration,
        partitions: 4,
        print_limit: args.print_limit,
        http_listen: settings.http.listen,
    };
    personalizer::demo::run(&options, shutdown_flag()?)
}

fn run_check_config(args: CheckConfigArgs) -> Result<()> {
    let config = Config::load(Some(&args.file))?;
    init_logging(&config.log);
    if args.print {
        print!("{}", config.to_toml());
    } else {
        println!("{}: ok", args.file.display());
    }
    Ok(())
}
