//! Integration tests (one binary).
#[path = "snapcast/support.rs"]
mod snap_support;
#[path = "snapcast/server.rs"]
mod snap_server;
