//! noex-bench: the load generator (see `main.rs`).
