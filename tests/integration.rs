//! Integration tests (one binary).
mod cli;
#[path = "sendspin/hostile.rs"]
mod sendspin_hostile;
#[path = "sendspin/mdns.rs"]
mod sendspin_mdns;
#[path = "sendspin/players.rs"]
mod sendspin_players;
#[path = "sendspin/refused.rs"]
mod sendspin_refused;
#[path = "sendspin/support.rs"]
mod sendspin_support;
#[path = "sendspin/sync.rs"]
mod sendspin_sync;
#[path = "sendspin/tone.rs"]
mod sendspin_tone;
mod service;
#[path = "snapcast/flood.rs"]
mod snap_flood;
#[path = "snapcast/hostile.rs"]
mod snap_hostile;
#[path = "snapcast/no_control_socket.rs"]
mod snap_no_control;
#[path = "snapcast/server.rs"]
mod snap_server;
#[path = "snapcast/support.rs"]
mod snap_support;
mod sync_vs_snapclient;
