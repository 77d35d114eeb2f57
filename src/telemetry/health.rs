//! What `/healthz` and `/readyz` answer: the runtime reports its phase, whether the
//! brokers answer, and a heartbeat; the HTTP server reads them.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// Longer than any single blocking step of the stream thread (a transactional call
/// times out after 30 s, a restore that makes no progress fails after 60 s), so a
/// missing heartbeat means the thread is stuck, not busy.
pub const LIVENESS_LIMIT: Duration = Duration::from_secs(180);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Checking topics, joining the group, or waiting for an assignment.
    Starting = 0,
    /// Restoring assigned tasks from their changelogs.
    Restoring = 1,
    /// Processing: every assigned task is restored.
    Running = 2,
    /// Shutting down: committing, leaving the group.
    Stopping = 3,
}

impl Phase {
    fn from_u8(value: u8) -> Phase {
        match value {
            1 => Phase::Restoring,
            2 => Phase::Running,
            3 => Phase::Stopping,
            _ => Phase::Starting,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Restoring => "restoring",
            Phase::Running => "running",
            Phase::Stopping => "stopping",
        }
    }
}

pub struct Health {
    phase: AtomicU8,
    broker_reachable: AtomicBool,
    started: Instant,
    /// Milliseconds since `started` of the last sign of life of the stream thread.
    heartbeat: AtomicU64,
    /// Milliseconds since `started` from which input has been waiting without a commit
    /// succeeding; [`NOTHING_WAITING`] when everything read has been committed.
    waiting_since: AtomicU64,
    /// Longest that input may wait with no commit succeeding before liveness fails.
    commit_stall_limit: Duration,
}

const NOTHING_WAITING: u64 = u64::MAX;

/// The default of `http.commit_stall_limit`.
pub const DEFAULT_COMMIT_STALL_LIMIT: Duration = Duration::from_secs(120);

/// The answer to a probe: whether it passes, and why, in a line for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub reason: String,
}

impl Default for Health {
    fn default() -> Self {
        Health::new(DEFAULT_COMMIT_STALL_LIMIT)
    }
}

impl Health {
    pub fn new(commit_stall_limit: Duration) -> Health {
        Health {
            phase: AtomicU8::new(Phase::Starting as u8),
            broker_reachable: AtomicBool::new(false),
            started: Instant::now(),
            heartbeat: AtomicU64::new(0),
            waiting_since: AtomicU64::new(NOTHING_WAITING),
            commit_stall_limit,
        }
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::SeqCst))
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::SeqCst);
        self.beat();
    }

    pub fn broker_reachable(&self) -> bool {
        self.broker_reachable.load(Ordering::SeqCst)
    }

    pub fn set_broker_reachable(&self, reachable: bool) {
        self.broker_reachable.store(reachable, Ordering::SeqCst);
    }

    /// The stream thread is alive and not stuck.
    pub fn beat(&self) {
        self.heartbeat.store(self.now(), Ordering::Relaxed);
    }

    /// There is input not committed yet (read and not committed, or not read yet):
    /// waiting from now on, unless it was waiting already.
    pub fn input_waiting(&self) {
        let _ = self.waiting_since.compare_exchange(
            NOTHING_WAITING,
            self.now(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// A commit succeeded; `more_waiting` if there is still input to process.
    pub fn committed(&self, more_waiting: bool) {
        let since = if more_waiting {
            self.now()
        } else {
            NOTHING_WAITING
        };
        self.waiting_since.store(since, Ordering::Relaxed);
    }

    /// Everything there is has been read and committed.
    pub fn caught_up(&self) {
        self.committed(false);
    }

    /// How long input has waited with no commit succeeding.
    pub fn commit_stalled_for(&self) -> Duration {
        match self.waiting_since.load(Ordering::Relaxed) {
            NOTHING_WAITING => Duration::ZERO,
            since => Duration::from_millis(self.now().saturating_sub(since)),
        }
    }

    fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.heartbeat.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// Liveness: the stream thread has shown a sign of life within [`LIVENESS_LIMIT`],
    /// and no input has waited longer than the commit stall limit without a commit
    /// succeeding (a thread that restarts from its last commit over and over is alive
    /// but makes no progress).
    pub fn liveness(&self) -> Verdict {
        self.liveness_within(LIVENESS_LIMIT)
    }

    fn liveness_within(&self, limit: Duration) -> Verdict {
        let silent = self.silent_for();
        let stalled = self.commit_stalled_for();
        if silent > limit {
            Verdict {
                ok: false,
                reason: format!(
                    "the stream thread has shown no progress for {}s (phase {})",
                    silent.as_secs(),
                    self.phase().name()
                ),
            }
        } else if stalled > self.commit_stall_limit {
            Verdict {
                ok: false,
                reason: format!(
                    "input has waited {}s without a commit succeeding (limit {}s, `http.commit_stall_limit`)",
                    stalled.as_secs(),
                    self.commit_stall_limit.as_secs()
                ),
            }
        } else {
            Verdict {
                ok: true,
                reason: format!("alive (phase {})", self.phase().name()),
            }
        }
    }

    /// Readiness: the brokers answer and every assigned task is restored.
    pub fn readiness(&self) -> Verdict {
        let phase = self.phase();
        let (ok, reason) = match (phase, self.broker_reachable()) {
            (Phase::Stopping, _) => (false, "shutting down".to_string()),
            (_, false) => (false, "the Kafka brokers are not reachable".into()),
            (Phase::Running, true) => (true, "ready".into()),
            (Phase::Starting, true) => (false, "starting: joining the group".into()),
            (Phase::Restoring, true) => (false, "restoring tasks from their changelogs".into()),
        };
        Verdict { ok, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_running_and_the_broker_answers() {
        let health = Health::default();
        assert!(!health.readiness().ok);
        health.set_broker_reachable(true);
        assert_eq!(health.readiness().reason, "starting: joining the group");
        health.set_broker_reachable(false);
        health.set_phase(Phase::Running);
        assert_eq!(
            health.readiness().reason,
            "the Kafka brokers are not reachable"
        );
        health.set_broker_reachable(true);
        assert!(health.readiness().ok);
        health.set_phase(Phase::Restoring);
        assert!(!health.readiness().ok);
        health.set_phase(Phase::Stopping);
        assert_eq!(health.readiness().reason, "shutting down");
    }

    #[test]
    fn liveness_fails_when_the_heartbeat_stops() {
        let health = Health::default();
        health.beat();
        assert!(health.liveness().ok);
        std::thread::sleep(Duration::from_millis(30));
        let verdict = health.liveness_within(Duration::from_millis(10));
        assert!(!verdict.ok);
        assert!(verdict.reason.contains("no progress"), "{}", verdict.reason);
        health.beat();
        assert!(health.liveness_within(Duration::from_millis(10)).ok);
    }

    #[test]
    fn liveness_fails_when_waiting_input_sees_no_commit() {
        let health = Health::new(Duration::from_millis(20));
        health.input_waiting();
        // Waiting again does not restart the wait.
        std::thread::sleep(Duration::from_millis(15));
        health.input_waiting();
        std::thread::sleep(Duration::from_millis(15));
        health.beat();
        let verdict = health.liveness_within(Duration::from_secs(60));
        assert!(!verdict.ok);
        assert!(
            verdict.reason.contains("without a commit"),
            "{}",
            verdict.reason
        );
        assert!(health.commit_stalled_for() >= Duration::from_millis(30));
        // A commit with more input waiting restarts the clock; catching up stops it.
        health.committed(true);
        assert!(health.liveness_within(Duration::from_secs(60)).ok);
        health.caught_up();
        assert_eq!(health.commit_stalled_for(), Duration::ZERO);
    }
}
