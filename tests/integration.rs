//! Integration tests (one binary).
mod cli;
mod service;
#[path = "snapcast/hostile.rs"]
mod snap_hostile;
#[path = "snapcast/server.rs"]
mod snap_server;
#[path = "snapcast/support.rs"]
mod snap_support;
mod sync_vs_snapclient;
