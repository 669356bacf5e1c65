//! Everything that talks to BlueZ over D-Bus. Nothing outside this module imports `bluer` or `dbus`.

pub mod a2dp_speaker;
pub mod adapters;
pub mod advertisement;
pub mod assistant;
pub mod broadcast_source;
pub mod edge;
pub mod media;
pub mod media_endpoint;
pub mod media_transport;
pub mod pairing;
pub mod unregister;
pub mod version;
