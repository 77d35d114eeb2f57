//! One record applied: by the task that owns its key, its outcome counted, a bad one
//! dead-lettered; and what the core produced sent on.

use super::{StreamError, StreamThread};
use crate::engine::task::TaskError;
use crate::engine::{Outcome, Side, TaskId};
use crate::event::RoutingKey;
use crate::runtime::assignment::Topics;
use crate::runtime::batch::Outcome as Counted;
use crate::runtime::events::RecordDeadLettered;
use crate::runtime::input::{BadRecord, Item};

impl StreamThread<'_> {
    /// Takes task `id`'s next record in event-time order and applies it, counting it in
    /// the batch; a bad record goes to the dead-letter topic.
    pub(super) fn apply_next(&mut self, id: TaskId) -> Result<(), StreamError> {
        let (side, partition) = id;
        let task = self
            .assignment
            .tasks
            .get_mut(&id)
            .expect("chosen task exists");
        let (input, record) = task.records.pop().expect("chosen task has a record");
        task.consumed[input] = Some(record.offset + 1);
        let counted_as = (side, input);
        let failed = |topics: &Topics, source: TaskError| StreamError::Record {
            processor: side.name(),
            task: partition,
            topic: topics.inputs(side)[input].clone(),
            offset: record.offset,
            source: Box::new(source),
        };
        match record.item {
            Item::Event(event) => {
                let (RoutingKey::Shopper(key) | RoutingKey::Sku(key)) = event.routing_key();
                let owner = self.core.task_for(side, key);
                if owner != id {
                    // Applied here it would split the key's state between two tasks
                    // (two carts with one id, each reminded): its owner applies it, at
                    // once when the owner is a task of this thread, else through the
                    // internal topic.
                    self.batch.event(
                        counted_as,
                        event.body.type_name(),
                        Counted::Misrouted,
                        event.occurred_at,
                    );
                    if !self.assignment.tasks.contains_key(&owner) {
                        let topic = self.topics.internal(side);
                        let json = event.to_json_line();
                        if let Err(abort) = self.output.pass_on(topic, owner.1, key, &json) {
                            return Err(self.rewind(abort));
                        }
                        return Ok(());
                    }
                }
                let outcome = self
                    .core
                    .process_event(self.store, owner, key, &event)
                    .map_err(|e| failed(&self.topics, e))?;
                let counted = match outcome {
                    Outcome::Processed => Counted::Processed,
                    Outcome::Duplicate => Counted::Duplicate,
                    Outcome::Refused(refusal) => {
                        self.batch.stats.refused += 1;
                        let bad = BadRecord::refused(key, &event, &refusal);
                        return self.dead_letter_record(
                            side,
                            input,
                            partition,
                            record.offset,
                            &bad,
                        );
                    }
                };
                self.batch.event(
                    counted_as,
                    event.body.type_name(),
                    counted,
                    event.occurred_at,
                );
            }
            Item::Message(forward) => {
                self.core
                    .process_message(self.store, id, *forward)
                    .map_err(|e| failed(&self.topics, e))?;
            }
            Item::UnknownType => {
                self.batch.stats.unknown_types += 1;
                self.batch.unknown_type(counted_as);
            }
            Item::Bad(bad) => {
                self.dead_letter_record(side, input, partition, record.offset, &bad)?;
            }
            // The poll loop restarts from the last commit on such a record, so none is
            // ever buffered; if one were, it must not be skipped.
            Item::Wait(problem) => {
                return Err(StreamError::Rewind(format!(
                    "an input record cannot be decoded now: {problem}"
                )))
            }
        }
        Ok(())
    }

    /// Sends a record of input `input` that cannot be applied to the dead-letter topic.
    fn dead_letter_record(
        &mut self,
        side: Side,
        input: usize,
        partition: u16,
        offset: i64,
        bad: &BadRecord,
    ) -> Result<(), StreamError> {
        let topic = self.topics.inputs(side)[input].clone();
        RecordDeadLettered {
            input: (side, input),
            topic: &topic,
            partition,
            offset,
            reason: bad.reason,
            error: &bad.error,
        }
        .emit(&mut self.batch);
        self.dead_letter(&topic, partition, offset, bad)
    }

    /// Produces what the core decided and what it forwarded to tasks elsewhere.
    pub(super) fn flush_output(&mut self) -> Result<(), StreamError> {
        let output = self.core.take_output();
        for decision in &output.decisions {
            let topic = self
                .config
                .kafka
                .topics
                .for_decision(decision.decision_type());
            if let Err(abort) = self.output.decision(topic, decision) {
                return Err(self.rewind(abort));
            }
        }
        for forward in &output.remote {
            let (side, key, _) = Side::addressee(forward);
            let (_, partition) = self.core.task_for(side, key);
            let topic = self.topics.internal(side);
            if let Err(abort) = self.output.forward(topic, partition, key, forward) {
                return Err(self.rewind(abort));
            }
        }
        for (&(side, delivery), &n) in &output.forwarded {
            self.batch.forwarded(side, delivery, n);
        }
        self.batch.stats.add(&output.stats);
        Ok(())
    }

    fn dead_letter(
        &mut self,
        topic: &str,
        partition: u16,
        offset: i64,
        bad: &BadRecord,
    ) -> Result<(), StreamError> {
        let dlq = self.layout.dead_letter.clone();
        if let Err(abort) = self
            .output
            .dead_letter(&dlq, (topic, partition, offset), bad)
        {
            return Err(self.rewind(abort));
        }
        Ok(())
    }
}
