//! Decisions in their JSON form: written fast for the kinds written in bulk, and read
//! fast for the kinds read in bulk, each byte for byte what serde's derive would do.

mod read;
mod write;

pub use read::from_json;
pub use write::write_json;
