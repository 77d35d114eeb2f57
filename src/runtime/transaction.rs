//! The batch's life at the broker: begin (exactly-once opens a transaction), commit
//! (the transaction with the consumed offsets; or, at-least-once, every record delivered
//! and then the offsets), abort.

use super::events::AbortReason;
use super::output::{Abort, Output};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::producer::Producer;
use rdkafka::TopicPartitionList;
use std::collections::HashMap;
use std::time::Duration;

/// How long a transactional call (commit, abort, init) may take.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

impl Output {
    /// Registers the transactional id with the broker, fencing an earlier producer
    /// with the same id (an instance that was restarted) and aborting what it left open.
    pub fn init(&self) -> Result<(), rdkafka::error::KafkaError> {
        if self.exactly_once {
            self.producer.init_transactions(TRANSACTION_TIMEOUT)?;
        }
        Ok(())
    }

    /// Opens a transaction, if exactly-once and none is open.
    pub fn begin(&mut self) -> Result<(), Abort> {
        if self.exactly_once && !self.in_transaction {
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
    pub fn abort(&mut self) {
        if self.in_transaction {
            let _ = self.producer.abort_transaction(TRANSACTION_TIMEOUT);
            self.in_transaction = false;
        }
    }

    /// Ends the batch at the broker with `offsets` as the consumed position. Returns the
    /// changelog offsets its records reached.
    pub fn commit<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        offsets: &TopicPartitionList,
    ) -> Result<HashMap<(String, i32), i64>, Abort> {
        let failed = |problem: String| Abort::new(AbortReason::CommitFailed, problem);
        if self.exactly_once {
            let result = (|| {
                if offsets.count() > 0 {
                    let metadata = consumer.group_metadata().ok_or_else(|| {
                        "the consumer has no group metadata (not in the group)".to_string()
                    })?;
                    self.producer
                        .send_offsets_to_transaction(offsets, &metadata, TRANSACTION_TIMEOUT)
                        .map_err(|e| format!("cannot add offsets to the transaction: {e}"))?;
                }
                self.producer
                    .commit_transaction(TRANSACTION_TIMEOUT)
                    .map_err(|e| format!("cannot commit the transaction: {e}"))
            })();
            self.in_transaction = false;
            if let Err(problem) = result {
                let _ = self.producer.abort_transaction(TRANSACTION_TIMEOUT);
                return Err(failed(problem));
            }
            self.take_deliveries()
        } else {
            self.producer
                .flush(TRANSACTION_TIMEOUT)
                .map_err(|e| failed(format!("cannot flush the producer: {e}")))?;
            // Offsets only after every record of the batch is known to be delivered.
            let delivered = self.take_deliveries()?;
            if offsets.count() > 0 {
                consumer
                    .commit(offsets, CommitMode::Sync)
                    .map_err(|e| failed(format!("cannot commit offsets: {e}")))?;
            }
            Ok(delivered)
        }
    }
}
