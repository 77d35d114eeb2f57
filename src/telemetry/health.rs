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
}

/// The answer to a probe: whether it passes, and why, in a line for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub reason: String,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            phase: AtomicU8::new(Phase::Starting as u8),
            broker_reachable: AtomicBool::new(false),
            started: Instant::now(),
            heartbeat: AtomicU64::new(0),
        }
    }
}

impl Health {
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
        let now = self.started.elapsed().as_millis() as u64;
        self.heartbeat.store(now, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.heartbeat.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// Liveness: the stream thread has shown a sign of life within [`LIVENESS_LIMIT`].
    pub fn liveness(&self) -> Verdict {
        self.liveness_within(LIVENESS_LIMIT)
    }

    fn liveness_within(&self, limit: Duration) -> Verdict {
        let silent = self.silent_for();
        if silent > limit {
            Verdict {
                ok: false,
                reason: format!(
                    "the stream thread has shown no progress for {}s (phase {})",
                    silent.as_secs(),
                    self.phase().name()
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
}
