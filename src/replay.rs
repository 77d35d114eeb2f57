//! `personalizer replay`: JSON Lines in, decisions out, through the same engine as live.
//!
//! Stream time is the largest `occurred_at` seen; timers due at or before an event's
//! time fire before it is applied. Bad lines are reported with their line number and
//! skipped (fatal with `strict`). Same input and config give the same bytes out.

use crate::config::Config;
use crate::decision::{Decision, DecisionType};
use crate::engine::stats::Stats;
use crate::engine::{Engine, EngineError, Outcome};
use crate::event::{check_not_from_the_future, check_record_size, decode_json, Decoded};
use crate::store::{Store, StoreError};
use crate::time::Millis;
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// Where events come from: a file, or standard input (`-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    File(PathBuf),
    Stdin,
}

impl Input {
    pub fn parse(arg: &str) -> Input {
        if arg == "-" {
            Input::Stdin
        } else {
            Input::File(PathBuf::from(arg))
        }
    }

    fn name(&self) -> String {
        match self {
            Input::File(path) => path.display().to_string(),
            Input::Stdin => "<stdin>".to_string(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    pub inputs: Vec<Input>,
    pub until: Option<Millis>,
    pub strict: bool,
    /// The moment events are judged against for `engine.max_clock_skew`; `None`: the
    /// wall clock when the replay starts.
    pub now: Option<Millis>,
    /// Print only decisions of these types; `None`: all of them.
    pub types: Option<Vec<DecisionType>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {input}: {source}")]
    Input {
        input: String,
        source: std::io::Error,
    },
    #[error("cannot write decisions: {0}")]
    Output(std::io::Error),
    #[error("{input}:{line}: {reason} (--strict stops at the first bad line)")]
    BadLine {
        input: String,
        line: u64,
        reason: String,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct ReplaySummary {
    pub stats: Stats,
    /// Timers still waiting when the replay ended (reminders and expiries not yet due).
    pub pending_timers: usize,
    pub lines: u64,
    pub bad_lines: u64,
}

/// Opens the state store the configuration asks for (a temporary one if none).
pub fn open_store(config: &Config) -> Result<Store, StoreError> {
    match &config.state.dir {
        Some(dir) => Store::open(dir, &config.state),
        None => Store::open_temporary(&config.state),
    }
}

/// Replays `options.inputs` in order, writing decisions to `output` and bad-line
/// reports to `errors`.
pub fn run(
    config: &Config,
    options: &ReplayOptions,
    output: &mut dyn Write,
    errors: &mut dyn Write,
) -> Result<ReplaySummary, ReplayError> {
    let store = open_store(config)?;
    let mut engine = Engine::open(config.clone(), store)?;
    let mut decisions: Vec<Decision> = Vec::new();
    let mut lines = 0u64;
    let mut bad_lines = 0u64;
    let mut buffer = Vec::with_capacity(1024);
    let mut text = Vec::with_capacity(1024);
    let now = options.now.unwrap_or_else(crate::load::now_millis);
    let max_skew = config.engine.max_clock_skew.millis();
    let max_event_bytes = config.rules.limits.max_event_bytes;
    for input in &options.inputs {
        let name = input.name();
        let read_error = |source| ReplayError::Input {
            input: name.clone(),
            source,
        };
        let mut reader: Box<dyn BufRead> = match input {
            Input::File(path) => Box::new(std::io::BufReader::with_capacity(
                1 << 20,
                std::fs::File::open(path).map_err(read_error)?,
            )),
            Input::Stdin => Box::new(std::io::BufReader::with_capacity(1 << 20, std::io::stdin())),
        };
        let mut line_number = 0u64;
        loop {
            buffer.clear();
            if reader.read_until(b'\n', &mut buffer).map_err(read_error)? == 0 {
                break;
            }
            line_number += 1;
            if buffer.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            lines += 1;
            let decoded = check_record_size(&buffer, max_event_bytes)
                .and_then(|()| decode_json(&buffer))
                .and_then(|decoded| match decoded {
                    Decoded::Event(event) => check_not_from_the_future(&event, now, max_skew)
                        .map(|()| Decoded::Event(event)),
                    unknown => Ok(unknown),
                });
            match decoded {
                Ok(Decoded::Event(event)) => {
                    if let Outcome::Refused(refusal) = engine.process(&event, &mut decisions)? {
                        engine.stats_mut().refused += 1;
                        writeln!(
                            errors,
                            "{name}:{line_number}: {} ({refusal})",
                            refusal.reason_label()
                        )
                        .map_err(ReplayError::Output)?;
                    }
                }
                Ok(Decoded::UnknownType(_)) => engine.stats_mut().unknown_types += 1,
                Err(e) => {
                    bad_lines += 1;
                    engine.stats_mut().invalid += 1;
                    if options.strict {
                        return Err(ReplayError::BadLine {
                            input: name,
                            line: line_number,
                            reason: e.to_string(),
                        });
                    }
                    writeln!(errors, "{name}:{line_number}: {e}").map_err(ReplayError::Output)?;
                }
            }
            write_decisions(&mut decisions, options.types.as_deref(), output, &mut text)?;
        }
    }
    if let Some(until) = options.until {
        engine.advance_to(until, &mut decisions)?;
        write_decisions(&mut decisions, options.types.as_deref(), output, &mut text)?;
    }
    output.flush().map_err(ReplayError::Output)?;
    let pending_timers = engine.pending_timers();
    let stats = engine.close()?;
    Ok(ReplaySummary {
        stats,
        pending_timers,
        lines,
        bad_lines,
    })
}

fn write_decisions(
    decisions: &mut Vec<Decision>,
    types: Option<&[DecisionType]>,
    output: &mut dyn Write,
    text: &mut Vec<u8>,
) -> Result<(), ReplayError> {
    if decisions.is_empty() {
        return Ok(());
    }
    text.clear();
    let wanted = |d: &Decision| types.is_none_or(|t| t.contains(&d.decision_type()));
    for decision in decisions.drain(..).filter(wanted) {
        crate::decision_json::write_json(&decision, text);
        text.push(b'\n');
    }
    output.write_all(text).map_err(ReplayError::Output)
}
