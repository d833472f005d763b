//! noex-server: the real-time data server.
