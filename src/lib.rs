//! Personalizer: turns an online shop's event streams into personalization decisions.
//!
//! The crate is organised as the design describes: a pure [`engine`] with the
//! [`rules`], the input [`event`] and output [`decision`] models with their [`avro`]
//! form, RocksDB [`store`], and the two drivers: [`replay`] offline and the live Kafka
//! [`runtime`], which reports through [`telemetry`], served over HTTP by [`http_port`].
//! [`demo`] runs the runtime on an in-process cluster. `main.rs` is only the command line.

pub mod api;
pub mod avro;
pub mod avro_serde;
pub mod catalog;
pub mod config;
pub mod decision;
pub mod decision_codec;
pub mod decision_json;
pub mod demo;
pub mod engine;
pub mod event;
pub mod event_encoder;
pub mod forward;
pub mod generate;
pub mod http_port;
pub mod load;
pub mod product_index;
pub mod registry;
pub mod replay;
pub mod resources;
pub mod rules;
pub mod runtime;
#[cfg(test)]
mod samples;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod timer;
