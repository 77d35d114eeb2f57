//! Whether a partition is caught up, from what the consumer already knows.
//!
//! librdkafka caches each partition's high watermark from its fetch responses. The safe
//! Rust API only offers `fetch_watermarks`, a broker round trip; asking the broker for
//! every partition on every loop would cost more than the processing. So the cached
//! value is read through the C API here, and nowhere else.

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use std::ffi::CString;

/// The low and high watermarks librdkafka last saw for the partition, if it has seen them.
pub fn cached_watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &CString,
    partition: i32,
) -> Option<(i64, i64)> {
    let mut low: i64 = -1;
    let mut high: i64 = -1;
    // SAFETY: the client pointer is valid for the consumer's lifetime, `topic` is a
    // NUL-terminated string that outlives the call, and both out-pointers are valid.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some((low.max(0), high))
}
