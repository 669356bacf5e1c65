//! A2DP protocol specifics, pure (no D-Bus, no sockets; the BlueZ edge in `bluez/` uses them): SBC capability
//! negotiation and RTP packetisation.

pub mod rtp;
pub mod sbc_caps;

/// UUID of an A2DP source endpoint (what bluebridge registers).
pub const A2DP_SOURCE_UUID: &str = "0000110a-0000-1000-8000-00805f9b34fb";
/// UUID of an A2DP sink (what a speaker offers).
pub const A2DP_SINK_UUID: &str = "0000110b-0000-1000-8000-00805f9b34fb";
/// A2DP codec id of SBC.
pub const CODEC_SBC: u8 = 0x00;
/// The largest A2DP absolute volume (AVRCP 1.4: 0…127).
pub const A2DP_VOLUME_MAX: u16 = 127;
