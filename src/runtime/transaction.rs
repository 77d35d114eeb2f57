//! The batch's life at the broker: begin (exactly-once opens a transaction), commit
//! (the transaction with the consumed offsets; or, at-least-once, every record delivered
//! and then the offsets), abort.
//!
//! The slow part of a commit (waiting for every record of the batch to be acknowledged,
//! then ending the transaction) runs on a committer thread of its own, so that the stream
//! thread can read and process the next batch meanwhile. Nothing of the next batch is
//! produced until the commit has ended (see [`Output`]'s held records): a transactional
//! producer takes no records while it commits, and the changelog offsets a commit reached
//! must be those of its own records.

use super::clients;
use super::events::AbortReason;
use super::output::{Abort, DeliveryContext, Output};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata,
};
use rdkafka::producer::{BaseProducer, Producer, PurgeConfig};
use rdkafka::TopicPartitionList;
use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a transactional call (commit, abort, init) may take.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// The changelog offsets a commit's records reached: (topic, partition) → last offset.
pub type Delivered = HashMap<(String, i32), i64>;

/// A commit handed to the committer thread.
struct CommitRequest {
    offsets: TopicPartitionList,
    /// Exactly-once with offsets to commit: the consumer's group membership, which the
    /// transaction's offsets are committed under.
    group: Option<ConsumerGroupMetadata>,
}

/// A commit that has been started and not yet collected.
pub struct InFlightCommit {
    /// At-least-once: the offsets to commit once every record is delivered.
    offsets: Option<TopicPartitionList>,
}

/// Whether the committer is working on a commit; the consumer's rebalance callback
/// waits on it (see [`CommitterBusy::wait_until_idle`]).
#[derive(Default)]
pub struct CommitterBusy {
    busy: Mutex<bool>,
    idle: Condvar,
}

impl CommitterBusy {
    fn set(&self, busy: bool) {
        *self.busy.lock().expect("never poisoned") = busy;
        if !busy {
            self.idle.notify_all();
        }
    }

    /// Waits until the commit under way (if any) has ended. Called when partitions are
    /// revoked, inside `poll`: the consumer rejoins the group only after the callback
    /// returns, so the commit's offsets still belong to the current generation and are
    /// accepted. Without the wait they would be refused as of an old generation (after
    /// the broker's retries, tens of seconds later), and the batch redone.
    pub fn wait_until_idle(&self) {
        let busy = self.busy.lock().expect("never poisoned");
        let _idle = self
            .idle
            .wait_while(busy, |busy| *busy)
            .expect("never poisoned");
    }
}

/// The thread that ends transactions (or, at-least-once, waits for deliveries).
pub struct Committer {
    requests: Option<Sender<CommitRequest>>,
    results: Receiver<Result<Delivered, Abort>>,
    busy: Arc<CommitterBusy>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    pub fn start(
        producer: Arc<BaseProducer<DeliveryContext>>,
        exactly_once: bool,
        busy: Arc<CommitterBusy>,
    ) -> Committer {
        let busy_here = Arc::clone(&busy);
        let (requests, inbox) = mpsc::channel::<CommitRequest>();
        let (outbox, results) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("committer".into())
            .spawn(move || {
                for request in inbox {
                    let result = if exactly_once {
                        end_transaction(&producer, &request)
                    } else {
                        deliver_all(&producer)
                    };
                    let sent = outbox.send(result);
                    busy_here.set(false);
                    if sent.is_err() {
                        return;
                    }
                }
            })
            .expect("the committer thread starts");
        Committer {
            requests: Some(requests),
            results,
            busy,
            thread: Some(thread),
        }
    }
}

impl Drop for Committer {
    /// Lets a commit that is under way end before the producer goes, so that a
    /// producer created next with the same transactional id finds it settled.
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Exactly-once: every record of the transaction acknowledged, the consumed offsets
/// into it, then its end. Aborts on failure.
fn end_transaction(
    producer: &BaseProducer<DeliveryContext>,
    request: &CommitRequest,
) -> Result<Delivered, Abort> {
    let result = (|| {
        clients::deliver_outstanding(producer, TRANSACTION_TIMEOUT)
            .map_err(|e| format!("cannot deliver the transaction's records: {e}"))?;
        if let Some(group) = &request.group {
            producer
                .send_offsets_to_transaction(&request.offsets, group, TRANSACTION_TIMEOUT)
                .map_err(|e| format!("cannot add offsets to the transaction: {e}"))?;
        }
        producer
            .commit_transaction(TRANSACTION_TIMEOUT)
            .map_err(|e| format!("cannot commit the transaction: {e}"))
    })();
    if let Err(problem) = result {
        abort_transaction(producer);
        return Err(Abort::new(AbortReason::CommitFailed, problem));
    }
    producer.context().take_deliveries()
}

/// Aborts the open transaction. Its queued and in-flight records are purged first and
/// their delivery reports served: librdkafka's abort waits until every report has been
/// handed to the application, and a `BaseProducer` only hands them over while polled,
/// so without this the abort waited out its whole timeout (30 s) whenever records were
/// outstanding, holding back a rebalance or a restart that long.
pub(super) fn abort_transaction(producer: &BaseProducer<DeliveryContext>) {
    producer.purge(PurgeConfig::default().queue().inflight());
    let _ = clients::deliver_outstanding(producer, TRANSACTION_TIMEOUT);
    let _ = producer.abort_transaction(TRANSACTION_TIMEOUT);
    // The purged records' failures belong to the dropped batch, not to the next one.
    let _ = producer.context().take_deliveries();
}

/// At-least-once: waits for every record to be acknowledged; the offsets follow.
fn deliver_all(producer: &BaseProducer<DeliveryContext>) -> Result<Delivered, Abort> {
    clients::deliver_outstanding(producer, TRANSACTION_TIMEOUT).map_err(|e| {
        Abort::new(
            AbortReason::CommitFailed,
            format!("cannot flush the producer: {e}"),
        )
    })?;
    producer.context().take_deliveries()
}

impl Output {
    /// Registers the transactional id with the broker, fencing an earlier producer
    /// with the same id (an instance that was restarted) and aborting what it left open.
    pub fn init(&self) -> Result<(), rdkafka::error::KafkaError> {
        if self.exactly_once {
            self.producer.init_transactions(TRANSACTION_TIMEOUT)?;
        }
        Ok(())
    }

    /// Opens a transaction, if exactly-once and none is open. While a commit is under
    /// way there is none to open: records are held until it ends.
    pub fn begin(&mut self) -> Result<(), Abort> {
        if self.exactly_once && !self.in_transaction && !self.is_committing() {
            self.producer.begin_transaction().map_err(|e| {
                Abort::new(
                    AbortReason::CommitFailed,
                    format!("cannot begin a transaction: {e}"),
                )
            })?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// Aborts the open transaction, if any; its records stay invisible to readers.
    /// Records held for the next transaction are dropped with it.
    pub fn abort(&mut self) {
        self.held = None;
        if self.in_transaction {
            abort_transaction(&self.producer);
            self.in_transaction = false;
        }
    }

    /// Hands the batch's end to the committer thread, with `offsets` as the consumed
    /// position, and holds every record produced from now until [`Output::finish_commit`].
    pub fn start_commit<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        offsets: TopicPartitionList,
    ) -> Result<InFlightCommit, Abort> {
        assert!(!self.is_committing(), "one commit at a time");
        let failed = |problem: String| Abort::new(AbortReason::CommitFailed, problem);
        let (request, in_flight) = if self.exactly_once {
            let group = if offsets.count() > 0 {
                Some(consumer.group_metadata().ok_or_else(|| {
                    failed("the consumer has no group metadata (not in the group)".into())
                })?)
            } else {
                None
            };
            (
                CommitRequest { offsets, group },
                InFlightCommit { offsets: None },
            )
        } else {
            (
                CommitRequest {
                    offsets: TopicPartitionList::new(),
                    group: None,
                },
                InFlightCommit {
                    offsets: Some(offsets),
                },
            )
        };
        let requests = self.committer.requests.as_ref().expect("until dropped");
        self.committer.busy.set(true);
        if requests.send(request).is_err() {
            self.committer.busy.set(false);
            return Err(failed("the committer thread has stopped".into()));
        }
        self.in_transaction = false;
        self.held = Some(Vec::new());
        Ok(in_flight)
    }

    /// The commit's result, waiting for it if `wait`, else `None` while it is under way.
    /// Returns the changelog offsets its records reached. Held records stay held until
    /// [`Output::release_held`].
    pub fn finish_commit<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        in_flight: &mut Option<InFlightCommit>,
        wait: bool,
    ) -> Option<Result<Delivered, Abort>> {
        in_flight.as_ref()?;
        let result = if wait {
            self.committer.results.recv().unwrap_or_else(|_| {
                Err(Abort::new(
                    AbortReason::CommitFailed,
                    "the committer thread has stopped".into(),
                ))
            })
        } else {
            match self.committer.results.try_recv() {
                Ok(result) => result,
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => Err(Abort::new(
                    AbortReason::CommitFailed,
                    "the committer thread has stopped".into(),
                )),
            }
        };
        let commit = in_flight.take().expect("checked above");
        Some(result.and_then(|delivered| {
            // At-least-once: offsets only after every record of the batch is delivered.
            if let Some(offsets) = commit.offsets.filter(|o| o.count() > 0) {
                consumer.commit(&offsets, CommitMode::Sync).map_err(|e| {
                    Abort::new(
                        AbortReason::CommitFailed,
                        format!("cannot commit offsets: {e}"),
                    )
                })?;
            }
            Ok(delivered)
        }))
    }
}
