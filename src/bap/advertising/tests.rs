use super::*;
use crate::bap::broadcast::{BroadcastCode, ChannelLayout};

fn config(preset: &str, code: bool) -> BroadcastConfig {
    let mut c = BroadcastConfig::new(Preset::by_name(preset).unwrap(), ChannelLayout::default());
    if code {
        c.code = Some(BroadcastCode::parse("secret").unwrap());
    }
    c
}

#[test]
fn quality_follows_the_preset() {
    assert_eq!(PbpQuality::of(Preset::by_name("16_2_1").unwrap()), PbpQuality::Standard);
    assert_eq!(PbpQuality::of(Preset::by_name("24_2_2").unwrap()), PbpQuality::Standard);
    assert_eq!(PbpQuality::of(Preset::by_name("48_2_1").unwrap()), PbpQuality::High);
    assert_eq!(PbpQuality::of(Preset::by_name("48_6_2").unwrap()), PbpQuality::High);
    assert_eq!(PbpQuality::of(Preset::by_name("16_1_1").unwrap()), PbpQuality::Other);
    assert_eq!(PbpQuality::of(Preset::by_name("32_2_1").unwrap()), PbpQuality::Other);
}

#[test]
fn features_byte_carries_quality_and_encryption() {
    let hq = BroadcastIdentity::for_broadcast(&config("48_2_1", false), "Kitchen", 1, None);
    assert_eq!(hq.features, 0b100);
    let sq_enc = BroadcastIdentity::for_broadcast(&config("16_2_1", true), "Kitchen", 1, None);
    assert_eq!(sq_enc.features, 0b011);
}

/// A high-quality, unencrypted broadcast with no metadata: service data 0x1856, features 0x04, length 0.
#[test]
fn pba_without_metadata() {
    let id = BroadcastIdentity::for_broadcast(&config("48_4_2", false), "Kitchen", 1, None);
    assert_eq!(id.pba_ad().unwrap(), vec![0x05, 0x16, 0x56, 0x18, 0x04, 0x00]);
}

/// Program info "Jazz" as one LTV (length 5, type 0x03) inside the PBA's metadata.
#[test]
fn pba_with_program_info() {
    let mut c = config("16_2_2", true);
    c.metadata.program_info = Some("Jazz".into());
    let id = BroadcastIdentity::for_broadcast(&c, "Kitchen", 1, None);
    assert_eq!(
        id.pba_ad().unwrap(),
        vec![0x0B, 0x16, 0x56, 0x18, 0x03, 0x06, 0x05, 0x03, b'J', b'a', b'z', b'z']
    );
}

/// Broadcast_ID 123456 = 0x01E240, little-endian after 0x1852.
#[test]
fn broadcast_audio_announcement() {
    let id = BroadcastIdentity::for_broadcast(&config("48_2_1", false), "Kitchen", 123_456, None);
    assert_eq!(id.baa_ad().unwrap(), vec![0x06, 0x16, 0x52, 0x18, 0x40, 0xE2, 0x01]);
    let too_big = BroadcastIdentity {
        broadcast_id: 0x100_0000,
        ..id
    };
    assert_eq!(too_big.baa_ad(), Err(AdvertisingError::BroadcastId(0x100_0000)));
}

#[test]
fn broadcast_name_and_its_bounds() {
    let id = BroadcastIdentity::for_broadcast(&config("48_2_1", false), "Kitchen", 1, None);
    assert_eq!(
        id.broadcast_name_ad().unwrap(),
        vec![0x08, 0x30, b'K', b'i', b't', b'c', b'h', b'e', b'n']
    );
    let short = BroadcastIdentity {
        name: "abc".into(),
        ..id.clone()
    };
    assert_eq!(short.broadcast_name_ad(), Err(AdvertisingError::NameLength(3)));
    let long = BroadcastIdentity {
        name: "x".repeat(33),
        ..id
    };
    assert_eq!(long.broadcast_name_ad(), Err(AdvertisingError::NameLength(33)));
}

/// Company 87 (0x0057) goes little-endian before its bytes.
#[test]
fn manufacturer_data() {
    let m = ManufacturerData {
        company: 87,
        data: vec![0xAA, 0x01],
    };
    let id = BroadcastIdentity::for_broadcast(&config("48_2_1", false), "Kitchen", 1, Some(m));
    assert_eq!(
        id.manufacturer_ad().unwrap(),
        Some(vec![0x05, 0xFF, 0x57, 0x00, 0xAA, 0x01])
    );
    let big = ManufacturerData {
        company: 87,
        data: vec![0; 253],
    };
    assert_eq!(
        check_manufacturer(&big),
        Err(AdvertisingError::ManufacturerDataLength(253))
    );
    assert!(check_manufacturer(&ManufacturerData {
        company: 87,
        data: vec![0; 252]
    })
    .is_ok());
}

#[test]
fn whole_advertising_data_is_the_structures_in_order() {
    let id = BroadcastIdentity::for_broadcast(&config("48_2_1", false), "Hall", 0x0A0B0C, None);
    assert_eq!(
        id.advertising_data().unwrap(),
        vec![
            0x06, 0x16, 0x52, 0x18, 0x0C, 0x0B, 0x0A, // BAA
            0x05, 0x30, b'H', b'a', b'l', b'l', // name
            0x05, 0x16, 0x56, 0x18, 0x04, 0x00, // PBA
        ]
    );
}

#[test]
fn default_name_from_host() {
    assert_eq!(default_name(Some("livingroom-pi")), "livingroom-pi");
    assert_eq!(default_name(Some("pi")), "bluebridge");
    assert_eq!(default_name(None), "bluebridge");
    assert_eq!(default_name(Some(&"h".repeat(40))).len(), 32);
    // 31 ASCII bytes then a two-byte character: cut before it.
    let host = format!("{}é", "a".repeat(31));
    assert_eq!(default_name(Some(&host)), "a".repeat(31));
}

#[test]
fn bluez_versions_parse_and_order() {
    assert_eq!(BluezVersion::find("5.82\n"), Some(BluezVersion::new(5, 82)));
    assert_eq!(BluezVersion::find("bluez 5.87-1"), Some(BluezVersion::new(5, 87)));
    assert_eq!(BluezVersion::find("none"), None);
    assert!(BluezVersion::new(5, 9) < BluezVersion::new(5, 82));
}

#[test]
fn capability_by_bluez_version() {
    let old = identity_support(Some(BluezVersion::new(5, 82)), None, true);
    assert_eq!(
        old.missing,
        vec![
            IdentityItem::BroadcastName,
            IdentityItem::PublicBroadcastAnnouncement,
            IdentityItem::ManufacturerData
        ]
    );
    let w = old.warning(Some(BluezVersion::new(5, 82))).unwrap();
    assert!(
        w.contains("BlueZ 5.82") && w.contains("BlueZ 5.87") && w.contains("manufacturer data"),
        "{w}"
    );
    let old_no_mfr = identity_support(Some(BluezVersion::new(5, 82)), None, false);
    assert_eq!(old_no_mfr.missing.len(), 2);
    let new = identity_support(Some(BluezVersion::new(5, 87)), None, true);
    assert!(new.complete() && new.warning(None).is_none());
    // A probe wins over the version (a backport that has Instance, or a build without it).
    assert!(identity_support(Some(BluezVersion::new(5, 86)), Some(true), true).complete());
    assert!(!identity_support(Some(BluezVersion::new(5, 90)), Some(false), false).complete());
    assert!(!identity_support(None, None, false).complete());
}

/// bluetoothctl 5.87's `advertise.public-broadcast sq|hq` writes exactly these service data bytes
/// (`client/advertising.c:35-36`: SQ = BIT(1), HQ = BIT(2), metadata length 0); btmon names bit 0 "Encryption"
/// (`monitor/packet.c:3749-3754`).
#[test]
fn pba_bytes_match_bluetoothctl() {
    let sq = BroadcastIdentity::for_broadcast(&config("16_2_1", false), "Kitchen", 1, None);
    assert_eq!(sq.pba_service_data().unwrap(), vec![0x02, 0x00]);
    let hq = BroadcastIdentity::for_broadcast(&config("48_2_1", false), "Kitchen", 1, None);
    assert_eq!(hq.pba_service_data().unwrap(), vec![0x04, 0x00]);
    let hq_enc = BroadcastIdentity::for_broadcast(&config("48_2_1", true), "Kitchen", 1, None);
    assert_eq!(hq_enc.pba_service_data().unwrap(), vec![0x05, 0x00]);
}

/// BlueZ sends at most 251 bytes of extended advertising data (`src/shared/ad.h:18`): name, PBA, Broadcast_ID and
/// manufacturer data together must fit, not each on its own.
#[test]
fn the_whole_advertisement_must_fit_one_set() {
    let big = |n: usize| ManufacturerData {
        company: 87,
        data: vec![0xAB; n],
    };
    let name = "x".repeat(32);
    // BAA 7 + name 34 + PBA 6 + manufacturer 4 + n.
    let fits = BroadcastIdentity::for_broadcast(&config("48_2_1", false), &name, 1, Some(big(200)));
    assert_eq!(fits.advertising_data().unwrap().len(), 251);
    assert!(fits.advertisement().is_ok());
    let over = BroadcastIdentity::for_broadcast(&config("48_2_1", false), &name, 1, Some(big(201)));
    assert_eq!(over.advertising_data(), Err(AdvertisingError::TooLong(252)));
    assert_eq!(over.advertisement(), Err(AdvertisingError::TooLong(252)));
    // Each structure alone would have passed.
    assert!(check_manufacturer(&big(201)).is_ok());
}

#[test]
fn advertisement_fields_are_the_same_bytes() {
    let m = ManufacturerData {
        company: 87,
        data: vec![0x01],
    };
    let mut c = config("16_2_2", true);
    c.metadata.program_info = Some("Jazz".into());
    let id = BroadcastIdentity::for_broadcast(&c, "Kitchen", 0x123456, Some(m));
    let f = id.advertisement().unwrap();
    assert_eq!(
        f.service_data,
        vec![
            (0x1852, vec![0x56, 0x34, 0x12]),
            (0x1856, vec![0x03, 0x06, 0x05, 0x03, b'J', b'a', b'z', b'z'])
        ]
    );
    assert_eq!(f.data, vec![(0x30, b"Kitchen".to_vec())]);
    assert_eq!(f.manufacturer, Some((87, vec![0x01])));
    assert_eq!(uuid16_string(0x1856), "00001856-0000-1000-8000-00805f9b34fb");
}

#[test]
fn stable_broadcast_ids() {
    let a = stable_broadcast_id("kitchen-pi", "auracast");
    assert_eq!(a, stable_broadcast_id("kitchen-pi", "auracast"));
    assert_ne!(a, stable_broadcast_id("hall-pi", "auracast"));
    assert_ne!(a, stable_broadcast_id("kitchen-pi", "auracast2"));
    // The separator keeps ("ab", "c") and ("a", "bc") apart.
    assert_ne!(stable_broadcast_id("ab", "c"), stable_broadcast_id("a", "bc"));
    for i in 0..2000 {
        let id = stable_broadcast_id("h", &i.to_string());
        assert!(id > 0 && id < BROADCAST_ID_MAX, "{id:#x}");
    }
}
