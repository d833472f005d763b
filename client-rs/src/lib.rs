//! noex-client: a sans-I/O client core plus a native tokio transport.
