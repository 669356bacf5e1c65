//! Everything that talks to BlueZ over D-Bus. Nothing outside this module imports `bluer` or `dbus`.

pub mod a2dp;
pub mod adapters;
