//! Command shells of the `leadscore` binary that live outside `main.rs`: argument structs and
//! the I/O around a library core.

pub mod backtest;
pub mod outcomes;
