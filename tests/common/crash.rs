//! Killing a processor on purpose, mid-transaction, for the exactly-once tests.

use super::live::App;
use std::path::Path;
use std::time::{Duration, Instant};

/// Lines of the log file `log` that contain `needle` (0 before the file exists).
pub fn count_lines(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

impl App {
    /// Works through `slices` of events one at a time: each is produced while the
    /// processor is down; then the processor starts on `state`, and once its tasks are
    /// restored (within `restore_within`) and a transaction is open on an output topic
    /// (or 10 s have passed), it is killed with SIGKILL: no commit, no flush, no
    /// goodbye. Returns how many times it was killed.
    pub fn kill_while_working_through(
        &self,
        slices: &[&[String]],
        state: &Path,
        log: &Path,
        restore_within: Duration,
    ) -> usize {
        let producer = self.producer();
        let tasks = 2 * self.partitions as usize;
        let mut kills = 0;
        for slice in slices {
            self.produce(&producer, slice);
            let restored_before = count_lines(log, "task restored");
            let mut child = self.spawn(state, log);
            let deadline = Instant::now() + restore_within;
            while count_lines(log, "task restored") < restored_before + tasks {
                assert!(Instant::now() < deadline, "tasks not restored in time");
                std::thread::sleep(Duration::from_millis(20));
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while !self.output_transaction_open() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            child.kill().unwrap();
            child.wait().unwrap();
            kills += 1;
        }
        kills
    }
}
