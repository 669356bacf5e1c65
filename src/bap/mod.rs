//! LE Audio BAP (Basic Audio Profile) broadcast source, the pure part: the standard presets, LTV and BASE
//! encoding, and the per-BIS `SetConfiguration` values BlueZ expects (notes/bluez.md §B). No D-Bus here: the
//! endpoint module marshals what [`broadcast::BroadcastConfig::bis_setups`] produces.
//!
//! - [`advertising`]: what a broadcast advertises (Broadcast Name, PBP, manufacturer data, Broadcast_ID) and
//!   which of it a BlueZ can carry.
//! - [`bass`]: Broadcast Audio Scan Service operations (Add/Modify/Remove Source, Set Broadcast Code) and the
//!   Broadcast Receive State, for a Broadcast Assistant.
//! - [`presets`]: BAP Table 6.4 by name (`48_2_1` default).
//! - [`ltv`]: codec capabilities / configuration / metadata LTVs.
//! - [`base`]: the BASE receivers read (encode, parse, BlueZ's grouping).
//! - [`broadcast`]: a broadcast's configuration → per-BIS `Capabilities`, `Metadata`, `QoS`; broadcast codes.

pub mod advertising;
pub mod base;
pub mod bass;
pub mod broadcast;
pub mod ltv;
pub mod presets;
