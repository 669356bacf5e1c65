//! bluebridge: plays a Wi-Fi multi-room group stream on Bluetooth speakers, in sync.
//!
//! Where a sample goes, in order:
//! - it **enters** in [`source`] (a built-in test signal, a WAV file, or a Snapcast server in [`snapcast`]) and is
//!   stamped with its source (server) time in the [`timeline::buffer::TimelineBuffer`];
//! - its **play time** is decided in [`output::player::Player`] (source time + buffer − latency, converted to local
//!   time by [`timeline::server_clock`]), which hands it to the output at play time − output delay and keeps the
//!   output locked with [`timeline::drift`];
//! - it **leaves** through an [`output::Output`] (simulated speaker, WAV file, pipe, A2DP speaker or LE Audio
//!   broadcast; the kinds are listed in [`output::KINDS`]).
//!
//! Pure logic (protocol, clocks, timeline, drift control) never touches sockets or D-Bus, so it tests anywhere.

pub mod a2dp;
pub mod audio;
pub mod bap;
pub mod bench;
pub mod bluez;
pub mod calibrate;
pub mod codec;
pub mod config;
pub mod control;
pub mod demo;
pub mod doctor;
pub mod engine;
pub mod metrics;
pub mod output;
pub mod report;
pub mod sendspin;
pub mod service;
pub mod snapcast;
pub mod source;
pub mod state;
pub mod timeline;
