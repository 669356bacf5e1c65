//! LE Audio BAP (Basic Audio Profile) broadcast source, the pure part: the standard presets, LTV and BASE encoding,
//! and the per-BIS `SetConfiguration` values BlueZ expects (notes/bluez.md §B). No D-Bus here: the endpoint module
//! marshals what [`broadcast::BroadcastConfig`] produces.

pub mod presets;
