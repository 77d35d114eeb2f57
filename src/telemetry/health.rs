//! What `/healthz` and `/readyz` answer: the runtime reports its phase, whether the
//! brokers answer, and a heartbeat; the HTTP server reads them.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
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

/// The most stream threads a process runs (`kafka.stream_threads` is checked against it).
pub const MAX_STREAM_THREADS: usize = 32;

/// What one stream thread reports: its phase, its last sign of life, and since when its
/// input has waited for a commit.
struct Pulse {
    phase: AtomicU8,
    /// Milliseconds since [`Health::started`] of the thread's last sign of life.
    heartbeat: AtomicU64,
    /// Milliseconds since [`Health::started`] from which input has been waiting without
    /// a commit succeeding; [`NOTHING_WAITING`] when everything read has been committed.
    waiting_since: AtomicU64,
}

impl Pulse {
    fn new() -> Pulse {
        Pulse {
            phase: AtomicU8::new(Phase::Starting as u8),
            heartbeat: AtomicU64::new(0),
            waiting_since: AtomicU64::new(NOTHING_WAITING),
        }
    }
}

/// The process's health: each stream thread reports on its own [`Pulse`], and the probes
/// judge the process by its slowest thread (ready when every thread runs, alive while
/// every thread shows signs of life), so one stuck thread is not hidden by a busy one.
pub struct Health {
    threads: [Pulse; MAX_STREAM_THREADS],
    /// How many of `threads` the runtime runs (1 until it says otherwise).
    active: AtomicUsize,
    /// Set once the process shuts down, whatever its threads report.
    stopping: AtomicBool,
    broker_reachable: AtomicBool,
    started: Instant,
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

/// One stream thread's handle on [`Health`].
#[derive(Clone, Copy)]
pub struct ThreadHealth<'a> {
    health: &'a Health,
    pulse: &'a Pulse,
}

impl ThreadHealth<'_> {
    pub fn set_phase(&self, phase: Phase) {
        self.pulse.phase.store(phase as u8, Ordering::SeqCst);
        self.beat();
    }

    /// The thread is alive and not stuck.
    pub fn beat(&self) {
        self.pulse
            .heartbeat
            .store(self.health.now(), Ordering::Relaxed);
    }

    /// There is input not committed yet (read and not committed, or not read yet):
    /// waiting from now on, unless it was waiting already.
    pub fn input_waiting(&self) {
        let _ = self.pulse.waiting_since.compare_exchange(
            NOTHING_WAITING,
            self.health.now(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// A commit succeeded; `more_waiting` if there is still input to process.
    pub fn committed(&self, more_waiting: bool) {
        let since = if more_waiting {
            self.health.now()
        } else {
            NOTHING_WAITING
        };
        self.pulse.waiting_since.store(since, Ordering::Relaxed);
    }

    /// Everything there is has been read and committed.
    pub fn caught_up(&self) {
        self.committed(false);
    }
}

impl Health {
    pub fn new(commit_stall_limit: Duration) -> Health {
        Health {
            threads: std::array::from_fn(|_| Pulse::new()),
            active: AtomicUsize::new(1),
            stopping: AtomicBool::new(false),
            broker_reachable: AtomicBool::new(false),
            started: Instant::now(),
            commit_stall_limit,
        }
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// How many stream threads report from now on; each starts as [`Phase::Starting`].
    pub fn set_stream_threads(&self, count: usize) {
        let count = count.clamp(1, MAX_STREAM_THREADS);
        for pulse in &self.threads[..count] {
            pulse.phase.store(Phase::Starting as u8, Ordering::SeqCst);
            pulse
                .waiting_since
                .store(NOTHING_WAITING, Ordering::Relaxed);
        }
        self.active.store(count, Ordering::SeqCst);
        self.beat();
    }

    fn active(&self) -> &[Pulse] {
        &self.threads[..self.active.load(Ordering::SeqCst)]
    }

    /// The handle of stream thread `index` (counted from 0).
    pub fn thread(&self, index: usize) -> ThreadHealth<'_> {
        ThreadHealth {
            health: self,
            pulse: &self.threads[index.min(MAX_STREAM_THREADS - 1)],
        }
    }

    /// The process's phase: [`Phase::Stopping`] once it shuts down, otherwise that of
    /// its least advanced thread.
    pub fn phase(&self) -> Phase {
        if self.stopping.load(Ordering::SeqCst) {
            return Phase::Stopping;
        }
        self.active()
            .iter()
            .map(|p| Phase::from_u8(p.phase.load(Ordering::SeqCst)))
            .min_by_key(|phase| *phase as u8)
            .unwrap_or(Phase::Starting)
    }

    /// Sets the phase of every thread: for the steps before the threads start and
    /// after they stop. [`Phase::Stopping`] holds for good.
    pub fn set_phase(&self, phase: Phase) {
        if phase == Phase::Stopping {
            self.stopping.store(true, Ordering::SeqCst);
        }
        for index in 0..self.active().len() {
            self.thread(index).set_phase(phase);
        }
    }

    pub fn broker_reachable(&self) -> bool {
        self.broker_reachable.load(Ordering::SeqCst)
    }

    pub fn set_broker_reachable(&self, reachable: bool) {
        self.broker_reachable.store(reachable, Ordering::SeqCst);
    }

    /// The process is alive and not stuck (a sign of life for every thread).
    pub fn beat(&self) {
        let now = self.now();
        for pulse in self.active() {
            pulse.heartbeat.store(now, Ordering::Relaxed);
        }
    }

    /// How long input has waited with no commit succeeding, on the thread that has
    /// waited longest.
    pub fn commit_stalled_for(&self) -> Duration {
        let now = self.now();
        self.active()
            .iter()
            .map(|p| match p.waiting_since.load(Ordering::Relaxed) {
                NOTHING_WAITING => Duration::ZERO,
                since => Duration::from_millis(now.saturating_sub(since)),
            })
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// How long the quietest thread has shown no sign of life.
    fn silent_for(&self) -> Duration {
        let elapsed = self.started.elapsed();
        self.active()
            .iter()
            .map(|p| {
                let last = Duration::from_millis(p.heartbeat.load(Ordering::Relaxed));
                elapsed.saturating_sub(last)
            })
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Liveness: every stream thread has shown a sign of life within [`LIVENESS_LIMIT`],
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
                    "a stream thread has shown no progress for {}s (phase {})",
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
        let thread = health.thread(0);
        thread.input_waiting();
        // Waiting again does not restart the wait.
        std::thread::sleep(Duration::from_millis(15));
        thread.input_waiting();
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
        thread.committed(true);
        assert!(health.liveness_within(Duration::from_secs(60)).ok);
        thread.caught_up();
        assert_eq!(health.commit_stalled_for(), Duration::ZERO);
    }

    #[test]
    fn ready_only_when_every_stream_thread_runs() {
        let health = Health::default();
        health.set_broker_reachable(true);
        health.set_stream_threads(2);
        health.thread(0).set_phase(Phase::Running);
        assert_eq!(health.phase(), Phase::Starting);
        health.thread(1).set_phase(Phase::Restoring);
        assert_eq!(
            health.readiness().reason,
            "restoring tasks from their changelogs"
        );
        health.thread(1).set_phase(Phase::Running);
        assert!(health.readiness().ok);
        // A thread that is rebuilt after an abort makes the process unready again.
        health.thread(0).set_phase(Phase::Starting);
        assert!(!health.readiness().ok);
        health.set_phase(Phase::Stopping);
        health.thread(0).set_phase(Phase::Running);
        assert_eq!(health.readiness().reason, "shutting down");
    }

    #[test]
    fn one_silent_or_stalled_thread_fails_liveness_whatever_the_others_do() {
        let health = Health::new(Duration::from_millis(20));
        health.set_stream_threads(3);
        std::thread::sleep(Duration::from_millis(30));
        health.thread(0).beat();
        health.thread(2).beat();
        let verdict = health.liveness_within(Duration::from_millis(10));
        assert!(!verdict.ok, "thread 1 is silent");
        health.thread(1).beat();
        assert!(health.liveness_within(Duration::from_millis(10)).ok);

        health.thread(2).input_waiting();
        std::thread::sleep(Duration::from_millis(30));
        health.thread(0).caught_up();
        health.beat();
        let verdict = health.liveness_within(Duration::from_secs(60));
        assert!(
            verdict.reason.contains("without a commit"),
            "{}",
            verdict.reason
        );
        health.thread(2).committed(false);
        assert!(health.liveness_within(Duration::from_secs(60)).ok);
    }

    #[test]
    fn threads_beyond_the_active_count_are_not_judged() {
        let health = Health::default();
        health.set_broker_reachable(true);
        health.set_stream_threads(2);
        health.set_phase(Phase::Running);
        assert!(health.readiness().ok);
        assert_eq!(
            health.thread(5).pulse.phase.load(Ordering::SeqCst),
            Phase::Starting as u8
        );
    }
}
