//! noex-bench: a loopback load generator for the noex server, with a raw WebSocket
//! baseline (`echo`) run side by side so every figure can be quoted as a ratio.
//!
//! The binary (`main.rs`) parses flags and drives [`runner::run`]; each scenario lives in
//! its own module under [`scenario`]. Everything is bounded by a count and a deadline.

pub mod client;
pub mod echo;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod stats;
pub mod target;
