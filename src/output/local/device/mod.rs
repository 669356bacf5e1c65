//! The cpal edge of a `local` output: device names as the config gives them, listing the devices, choosing a
//! stream format, and opening a playback stream whose callback reads the ring ([`super::ring`]).
//!
//! A device is named as ALSA names it (`hw:CARD=Headphones,DEV=0`, `hw:1,0`, `plughw:CARD=Device`, `default`,
//! `sysdefault:CARD=…`), as cpal describes it (the first line `bluebridge devices` shows), or not at all (the
//! default device). The pure parts ([`DeviceName`], [`choose_config`]) are tested here; the rest needs a card.
//!
//! The parts: [`name`] (what the config says), [`format`] (the stream format chosen from what a device offers),
//! [`lookup`] (listing and finding devices, and the errors that name the devices there are), [`supervise`]
//! (reopening a device that vanished) and [`playback`] (the playback stream and its callback).

pub mod format;
pub mod lookup;
pub mod name;
pub mod playback;
pub mod supervise;

pub use format::{choose_config, describe_format, format_supported, DeviceFormat};
pub use lookup::{find, list_devices, unusable, DeviceError, DeviceInfo};
pub use name::{DeviceName, DeviceNameError};
pub use playback::{negotiate_output, open_output};
pub use supervise::{supervise, FailedCheck};
