//! leadscore: real-time, explainable lead scoring on a Kafka event stream.
//!
//! The functional core ([`event`], [`verdict`], [`rules`], [`engine`], [`state`], [`output`])
//! is pure and deterministic; [`replay`], [`backtest`], [`train`] and the Kafka service are
//! shells around it.

pub mod backtest;
pub mod config;
pub mod engine;
pub mod erasure;
pub mod event;
pub mod fuzz_checks;
pub mod gen;
pub mod kafka;
pub mod leads;
pub mod numeric;
pub mod output;
pub mod replay;
pub mod rules;
pub mod rules_file;
pub mod service;
pub mod state;
pub mod time;
pub mod train;
pub mod verdict;

/// Protobuf types generated from `proto/leadscore/v1/events.proto`.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/leadscore.v1.rs"));
}
