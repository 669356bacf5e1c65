//! Integration tests (one binary).
mod cli;
mod sync_vs_snapclient;
#[path = "snapcast/support.rs"]
mod snap_support;
#[path = "snapcast/server.rs"]
mod snap_server;
#[path = "snapcast/hostile.rs"]
mod snap_hostile;
