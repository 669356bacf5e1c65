//! Tests of the config: parsing, defaults, bounds and errors that name file, line, column and key.

use super::*;
use crate::output::a2dp_settings::A2dpSettings;
use crate::output::broadcast_settings::BroadcastSettings;
use crate::output::OutputSettings;

fn broadcast(spec: &OutputSpec) -> &BroadcastSettings {
    match &spec.settings {
        OutputSettings::Broadcast(b) => b,
        other => panic!("not a broadcast: {other:?}"),
    }
}

fn a2dp(spec: &OutputSpec) -> &A2dpSettings {
    match &spec.settings {
        OutputSettings::A2dp(a) => a,
        other => panic!("not an A2DP speaker: {other:?}"),
    }
}

#[test]
fn describe_is_one_readable_line_per_output() {
    let (source, outputs) = Config::parse("t.toml", GOOD).unwrap();
    let d = describe("t.toml", &source, &outputs);
    assert!(
        d.starts_with("t.toml: ok: source snapcast tcp://127.0.0.1:1704; "),
        "{d}"
    );
    assert!(
        d.contains("\n  \"kitchen\" (sim): volume 100 %, offset -3.5 ms\n"),
        "{d}"
    );
    assert!(
        d.contains("\n  \"recorder\" (pipe): /run/bluebridge/recorder.pcm, volume 100 %"),
        "{d}"
    );
    assert!(!d.contains("Snapcast {"), "{d}");
}

#[test]
fn an_unreadable_file_is_named_without_a_line_and_column() {
    let e = Config::load("/nonexistent/x.toml").unwrap_err().to_string();
    assert_eq!(e, "cannot read config /nonexistent/x.toml: No such file or directory");
    let e = Config::load_all("/nonexistent/x.toml").unwrap_err().to_string();
    assert_eq!(e, "cannot read config /nonexistent/x.toml: No such file or directory");
}

fn err(text: &str) -> String {
    Config::parse("t.toml", text).unwrap_err().to_string()
}

const GOOD: &str = r#"
[source]
kind = "snapcast"
url = "tcp://127.0.0.1:1704"

[[output]]
name = "kitchen"
kind = "sim"
offset_ms = -3.5

[[output]]
name = "recorder"
kind = "pipe"
path = "/run/bluebridge/recorder.pcm"
delay_ms = 10
"#;

#[test]
fn bluetooth_table_defaults_and_bounds() {
    let l = Config::parse_all("t.toml", GOOD).unwrap();
    assert_eq!(l.bluetooth.max_a2dp_per_adapter, DEFAULT_MAX_A2DP_PER_ADAPTER);
    let l = Config::parse_all("t.toml", &format!("{GOOD}\n[bluetooth]\nmax_a2dp_per_adapter = 3\n")).unwrap();
    assert_eq!(l.bluetooth.max_a2dp_per_adapter, 3);
    for bad in ["0", "8", "-1"] {
        let e = Config::parse_all(
            "t.toml",
            &format!("{GOOD}\n[bluetooth]\nmax_a2dp_per_adapter = {bad}\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("t.toml:18:24:") && e.contains("bluetooth.max_a2dp_per_adapter") && e.contains(bad),
            "{e}"
        );
    }
    let e = Config::parse_all("t.toml", &format!("{GOOD}\n[bluetooth]\nmax_a2dp = 3\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_a2dp"), "{e}");
}

#[test]
fn the_documented_example_parses() {
    let (_, specs) = Config::parse("t.toml", GOOD).unwrap();
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[0].offset_ns, -3_500_000);
    let OutputSettings::Pipe(pipe) = &specs[1].settings else {
        panic!("{:?}", specs[1])
    };
    assert_eq!(pipe.delay_ns, 10_000_000);
    assert_eq!(pipe.path, "/run/bluebridge/recorder.pcm");
}

#[test]
fn errors_name_file_line_and_key() {
    let e = err(&GOOD.replace("offset_ms = -3.5", "offsett_ms = 1"));
    assert!(e.starts_with("t.toml:9:1:") && e.contains("offsett_ms"), "{e}");
    let e = err(&GOOD.replace("delay_ms = 10", "delay_ms = -10"));
    assert!(e.starts_with("t.toml:15:") && e.contains("delay_ms"), "{e}");
    let e = err(&GOOD.replace("kind = \"sim\"", "kind = \"bogus\""));
    assert!(
        e.starts_with("t.toml:8:") && e.contains("bogus") && e.contains("sim, file, a2dp, pipe"),
        "{e}"
    );
    let e = err(&GOOD.replace("recorder", "kitchen"));
    assert!(e.contains("used twice") && e.starts_with("t.toml:12:"), "{e}");
    let e = err(&GOOD.replace("name = \"kitchen\"\n", ""));
    assert!(e.contains("missing field `name`"), "{e}");
    let e = err("[source]\nkind = \"tone\"\n");
    assert!(e.contains("at least one output"), "{e}");
    let e = err(&GOOD.replace("offset_ms = -3.5", "sim = { loss = 3.0 }"));
    assert!(e.contains("loss") && e.starts_with("t.toml:9:"), "{e}");
    let e = err(&GOOD.replace("offset_ms = -3.5", "volume = 300"));
    assert!(e.contains("volume"), "{e}");
    let e = err("[source]\nkind = \"tone\"\nbuffer_ms = \"x\"\n[[output]]\nname=\"a\"\nkind=\"sim\"\n");
    assert!(e.starts_with("t.toml:3:"), "{e}");
}

#[test]
fn the_service_table_has_defaults_and_line_precise_errors() {
    let l = Config::parse_all("t.toml", GOOD).unwrap();
    assert_eq!(l.service, ServiceSpec::default());
    assert_eq!(l.service.control_socket, "/run/bluebridge/control.sock");
    assert_eq!(l.service.state_dir, "/var/lib/bluebridge");
    assert_eq!(l.service.metrics, None);
    let with = |t: &str| format!("{GOOD}\n[service]\n{t}\n");
    let l = Config::parse_all(
        "t.toml",
        &with("control_socket = \"/tmp/b/c.sock\"\nstate_dir = \"/tmp/b\"\nmetrics = \"127.0.0.1:9464\""),
    )
    .unwrap();
    assert_eq!(l.service.control_socket, "/tmp/b/c.sock");
    assert_eq!(l.service.state_dir, "/tmp/b");
    assert_eq!(l.service.metrics, Some("127.0.0.1:9464".parse().unwrap()));
    assert_eq!(l.outputs.len(), 2);
    let e = err(&with("metrics = \"localhost\""));
    assert!(e.starts_with("t.toml:18:11:") && e.contains("service.metrics"), "{e}");
    let e = err(&with("state_dir = \"relative/dir\""));
    assert!(e.starts_with("t.toml:18:") && e.contains("service.state_dir"), "{e}");
    let long = format!("/{}", "x".repeat(120));
    let e = err(&with(&format!("control_socket = \"{long}\"")));
    assert!(e.starts_with("t.toml:18:") && e.contains("at most 107"), "{e}");
    let e = err(&with("stat_dir = \"/x\""));
    assert!(e.starts_with("t.toml:18:1:") && e.contains("stat_dir"), "{e}");
}

#[test]
fn every_kind_works_with_defaults() {
    for kind in crate::output::KINDS.iter().map(|k| k.name) {
        let extra = if kind == "a2dp" {
            "address = \"00:11:22:33:44:55\"\n"
        } else {
            ""
        };
        let t = format!("[source]\nkind = \"tone\"\n[[output]]\nname = \"x\"\nkind = \"{kind}\"\n{extra}");
        Config::parse("t.toml", &t).unwrap();
    }
}

#[test]
fn broadcast_keys_have_defaults_and_line_precise_errors() {
    let base = "[source]\nkind = \"tone\"\n[[output]]\nname = \"b\"\nkind = \"broadcast\"\n";
    let (_, specs) = Config::parse("t.toml", base).unwrap();
    let b = &broadcast(&specs[0]).config;
    assert_eq!(b.preset.name, "48_2_1");
    assert_eq!(b.presentation_delay_us, 40_000);
    assert_eq!(b.bis_count(), 2);
    assert!(b.code.is_none());
    assert_eq!(broadcast(&specs[0]).adapter, None);
    let t = format!(
        "{base}preset = \"48_4_2\"\npresentation_delay_ms = 25.5\nchannels = \"mono\"\nadapter = \"hci1\"\n\
         broadcast_code = \"000102030405060708090a0b0c0d0e0f\"\n"
    );
    let (_, specs) = Config::parse("t.toml", &t).unwrap();
    let b = &broadcast(&specs[0]).config;
    assert_eq!(
        (b.preset.name, b.presentation_delay_us, b.bis_count()),
        ("48_4_2", 25_500, 1)
    );
    assert_eq!(b.code.unwrap().as_bytes()[15], 0x0f);
    assert_eq!(broadcast(&specs[0]).adapter.as_deref(), Some("hci1"));
    let e = err(&format!("{base}preset = \"48_9_1\"\n"));
    assert!(e.starts_with("t.toml:6:") && e.contains("48_2_1"), "{e}");
    // Every preset but the 44.1 kHz ones: LC3 encodes the 48 kHz audio into the preset's rate.
    for (name, rate) in [
        ("16_2_1", 16_000),
        ("24_1_2", 24_000),
        ("8_2_1", 8_000),
        ("32_1_1", 32_000),
    ] {
        let (_, specs) = Config::parse("t.toml", &format!("{base}preset = \"{name}\"\n")).unwrap();
        let b = &broadcast(&specs[0]).config;
        assert_eq!((b.preset.name, b.preset.sample_rate_hz), (name, rate));
    }
    for name in ["441_2_1", "44_1_2"] {
        let e = err(&format!("{base}preset = \"{name}\"\n"));
        assert!(
            e.starts_with("t.toml:6:") && e.contains("output.preset") && e.contains("44100 Hz"),
            "{e}"
        );
        assert!(
            e.contains("allowed presets: 8_1_1, 8_2_1, 16_1_1,") && e.ends_with("48_5_2, 48_6_2"),
            "{e}"
        );
        assert!(!e.split("allowed presets:").nth(1).unwrap().contains("441_"), "{e}");
    }
    let e = err(&format!("{base}channels = \"quad\"\n"));
    assert!(e.starts_with("t.toml:6:") && e.contains("stereo, mono"), "{e}");
    let e = err(&format!("{base}presentation_delay_ms = 20000\n"));
    assert!(e.starts_with("t.toml:6:") && e.contains("presentation_delay_ms"), "{e}");
    let e = err(&format!("{base}broadcast_code = \"seventeen bytes!!\"\n"));
    assert!(e.starts_with("t.toml:6:") && e.contains("broadcast_code"), "{e}");
    let e = err(&format!("{base}broadcast_name = \"abc\"\n"));
    assert!(
        e.starts_with("t.toml:6:") && e.contains("broadcast_name") && e.contains("4 to 32"),
        "{e}"
    );
    let e = err(&format!(
        "{base}manufacturer_data = {{ company = 87, data = \"0g\" }}\n"
    ));
    assert!(
        e.starts_with("t.toml:6:") && e.contains("manufacturer_data") && e.contains("hex"),
        "{e}"
    );
    let e = err(&format!("{base}manufacturer_data = {{ company = 70000 }}\n"));
    assert!(e.starts_with("t.toml:6:") && e.contains("company"), "{e}");
    let e = err(&format!("{base}manufacturer_data = {{ company = 87, dat = \"01\" }}\n"));
    assert!(e.starts_with("t.toml:6:") && e.contains("\"dat\""), "{e}");
    let e = err(&format!("{base}address = \"00:11:22:33:44:55\"\n"));
    assert!(e.starts_with("t.toml:6:") && e.contains("address"), "{e}");
    let e = err("[source]\nkind = \"tone\"\n[[output]]\nname = \"s\"\nkind = \"sim\"\npreset = \"48_2_1\"\n");
    assert!(e.starts_with("t.toml:6:") && e.contains("preset"), "{e}");
}
#[test]
fn a2dp_volume_and_idle_keys_have_defaults_and_line_precise_errors() {
    let base =
        "[source]\nkind = \"tone\"\n[[output]]\nname = \"s\"\nkind = \"a2dp\"\naddress = \"00:11:22:33:44:55\"\n";
    let (_, specs) = Config::parse("t.toml", base).unwrap();
    let o = a2dp(&specs[0]);
    assert_eq!(
        (o.avrcp_volume, o.idle_release_ns, o.keep_alive),
        (true, Some(60_000_000_000), false),
        "defaults: AVRCP volume, released after 60 s of silence, no keep-alive"
    );
    let parse = |extra: &str| {
        let (_, specs) = Config::parse("t.toml", &format!("{base}{extra}")).unwrap();
        let o = a2dp(&specs[0]);
        (o.avrcp_volume, o.idle_release_ns, o.keep_alive)
    };
    assert_eq!(parse("avrcp_volume = false\n"), (false, Some(60_000_000_000), false));
    assert_eq!(parse("idle_release_s = 0\n"), (true, None, false), "0: never");
    assert_eq!(parse("idle_release_s = 2.5\n"), (true, Some(2_500_000_000), false));
    assert_eq!(
        parse("keep_alive = true\n"),
        (true, None, true),
        "kept alive: never released"
    );
    let e = err(&format!("{base}keep_alive = true\nidle_release_s = 30\n"));
    assert!(e.starts_with("t.toml:8:") && e.contains("keep_alive"), "{e}");
    let e = err(&format!("{base}idle_release_s = -1\n"));
    assert!(e.starts_with("t.toml:7:") && e.contains("idle_release_s"), "{e}");
    let e = err(&format!("{base}keep_alive = \"yes\"\n"));
    assert!(e.starts_with("t.toml:7:"), "{e}");
    let sim = "[source]\nkind = \"tone\"\n[[output]]\nname = \"s\"\nkind = \"sim\"\n";
    for key in ["avrcp_volume = true", "keep_alive = false", "idle_release_s = 5"] {
        let e = err(&format!("{sim}{key}\n"));
        assert!(e.starts_with("t.toml:6:") && e.contains("does not apply"), "{key}: {e}");
    }
}

#[test]
fn broadcast_name_and_manufacturer_data_are_parsed() {
    let text = "[source]\nkind = \"tone\"\n[[output]]\nname = \"b\"\nkind = \"broadcast\"\n\
                broadcast_name = \"Living room\"\nmanufacturer_data = { company = 87, data = \"01 ab\" }\n";
    let (_, outputs) = Config::parse("t.toml", text).unwrap();
    let b = broadcast(&outputs[0]);
    assert_eq!(b.broadcast_name(Some("host")), "Living room");
    let m = b.manufacturer.as_ref().unwrap();
    assert_eq!((m.company, m.data.clone()), (87, vec![0x01, 0xab]));
    let (_, outputs) = Config::parse(
        "t.toml",
        "[source]\nkind = \"tone\"\n[[output]]\nname = \"b\"\nkind = \"broadcast\"\n",
    )
    .unwrap();
    let b = broadcast(&outputs[0]);
    assert_eq!((b.name.clone(), b.manufacturer.clone()), (None, None));
    assert_eq!(b.broadcast_name(Some("kitchen-pi")), "kitchen-pi");
}

#[test]
fn a_sendspin_source_needs_a_ws_url_and_takes_no_buffer() {
    let cfg = |source: &str| format!("[source]\n{source}\n\n[[output]]\nname = \"k\"\nkind = \"sim\"\n");
    let l = Config::parse_all(
        "t.toml",
        &cfg("kind = \"sendspin\"\nurl = \"ws://10.0.0.2:8927/sendspin\""),
    )
    .unwrap();
    assert_eq!(
        l.source,
        SourceSpec::Sendspin {
            meet: SendspinMeet::Url("ws://10.0.0.2:8927/sendspin".into()),
            encryption: true,
        }
    );
    let l = Config::parse_all(
        "t.toml",
        &cfg("kind = \"sendspin\"\nurl = \"ws://h:1/s\"\nencryption = false"),
    )
    .unwrap();
    assert!(matches!(l.source, SourceSpec::Sendspin { encryption: false, .. }));
    let e = err(&cfg("kind = \"tone\"\nencryption = false"));
    assert!(e.contains("encryption"), "{e}");
    // Without a url: mDNS, the players advertised and dialled by the server unless told to browse.
    let meet = |src: &str| match Config::parse_all("t.toml", &cfg(src)).unwrap().source {
        SourceSpec::Sendspin { meet, .. } => meet,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        meet("kind = \"sendspin\""),
        SendspinMeet::Advertise {
            port: 8928,
            interface: None
        }
    );
    assert_eq!(
        meet("kind = \"sendspin\"\ndiscovery = \"advertise\"\nlisten_port = 0\ninterface = \"eth0\""),
        SendspinMeet::Advertise {
            port: 0,
            interface: Some("eth0".into())
        }
    );
    assert_eq!(
        meet("kind = \"sendspin\"\ndiscovery = \"browse\""),
        SendspinMeet::Browse { interface: None }
    );
    for (src, says) in [
        (
            "discovery = \"shout\"",
            "t.toml:3:13: source.discovery must be \"advertise\" or \"browse\", not \"shout\"",
        ),
        (
            "listen_port = 70000",
            "t.toml:3:15: source.listen_port must be between 0 and 65535, not 70000",
        ),
        (
            "listen_port = -1",
            "source.listen_port must be between 0 and 65535, not -1",
        ),
        (
            "discovery = \"browse\"\nlisten_port = 1",
            "t.toml:4:15: source.listen_port is for discovery = \"advertise\"",
        ),
        (
            "interface = \"a/b\"",
            "source.interface must be a network interface name such as \"eth0\", not \"a/b\"",
        ),
        ("interface = \"\"", "source.interface must be a network interface name"),
        (
            "interface = \"abcdefghijklmnop\"",
            "source.interface must be a network interface name",
        ),
        (
            "url = \"ws://h:1/s\"\ndiscovery = \"browse\"",
            "t.toml:4:13: source.discovery is for mDNS; with source.url set",
        ),
        (
            "url = \"ws://h:1/s\"\nlisten_port = 1",
            "source.listen_port is for mDNS",
        ),
    ] {
        let e = err(&cfg(&format!("kind = \"sendspin\"\n{src}")));
        assert!(e.contains(says), "{src}: {e}");
    }
    let e = err(&cfg("kind = \"tone\"\ndiscovery = \"browse\""));
    assert!(e.contains("source.discovery does not apply to kind \"tone\""), "{e}");
    let e = err(&cfg("kind = \"sendspin\"\nurl = \"tcp://10.0.0.2:1704\""));
    assert!(e.contains("t.toml:3:") && e.contains("ws://host:port/path"), "{e}");
    let e = err(&cfg("kind = \"sendspin\"\nurl = \"ws://h:1/s\"\nbuffer_ms = 500"));
    assert!(e.contains("buffer_ms"), "{e}");
}

#[test]
fn program_info_and_language_reach_the_base_and_the_announcement() {
    let base = "[source]\nkind = \"tone\"\n[[output]]\nname = \"b\"\nkind = \"broadcast\"\n";
    let (_, outputs) = Config::parse(
        "t.toml",
        &format!("{base}program_info = \"Jazz\"\nlanguage = \"eng\"\n"),
    )
    .unwrap();
    let b = broadcast(&outputs[0]);
    assert_eq!(b.config.metadata.program_info.as_deref(), Some("Jazz"));
    assert_eq!(b.config.metadata.language.as_deref(), Some("eng"));
    // The BASE subgroup metadata every BIS's SetConfiguration carries: contexts (media), program info, language.
    let meta = b.config.metadata.to_bytes().unwrap();
    assert_eq!(
        meta,
        vec![0x03, 0x02, 0x04, 0x00, 0x05, 0x03, b'J', b'a', b'z', b'z', 0x04, 0x04, b'e', b'n', b'g']
    );
    // The PBA carries program info and language, not the contexts.
    let pba = b.identity(Some("host"), 1).pba_service_data().unwrap();
    assert_eq!(&pba[..2], &[0x04, 11]);
    let e = err(&format!("{base}language = \"EN\"\n"));
    assert!(
        e.starts_with("t.toml:6:") && e.contains("language") && e.contains("639-3"),
        "{e}"
    );
}

#[test]
fn the_whole_advertisement_must_fit_or_the_config_is_refused() {
    let base = "[source]\nkind = \"tone\"\n[[output]]\nname = \"b\"\nkind = \"broadcast\"\n";
    // 200 bytes fit beside the longest default name; 230 do not (251 in all, src/shared/ad.h:18).
    let ok = format!(
        "{base}manufacturer_data = {{ company = 87, data = \"{}\" }}\n",
        "ab".repeat(200)
    );
    assert!(Config::parse("t.toml", &ok).is_ok());
    let e = err(&format!(
        "{base}manufacturer_data = {{ company = 87, data = \"{}\" }}\n",
        "ab".repeat(230)
    ));
    assert!(e.starts_with("t.toml:5:") && e.contains("251"), "{e}");
}

#[test]
fn receivers_are_addresses_listed_once() {
    let base = "[source]\nkind = \"tone\"\n[[output]]\nname = \"b\"\nkind = \"broadcast\"\n";
    let (_, outputs) = Config::parse(
        "t.toml",
        &format!("{base}receivers = [\"00:11:22:33:44:55\", \"AA:BB:CC:DD:EE:FF\"]\n"),
    )
    .unwrap();
    let b = broadcast(&outputs[0]);
    assert_eq!(
        b.receivers.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        ["00:11:22:33:44:55", "AA:BB:CC:DD:EE:FF"]
    );
    assert!(b
        .describe()
        .1
        .iter()
        .any(|w| w == "assists 00:11:22:33:44:55, AA:BB:CC:DD:EE:FF"));
    let (_, outputs) = Config::parse("t.toml", base).unwrap();
    assert!(broadcast(&outputs[0]).receivers.is_empty());
    let e = err(&format!("{base}receivers = [\"00:11:22:33:44\"]\n"));
    assert!(
        e.starts_with("t.toml:6:") && e.contains("output.receivers") && e.contains("\"00:11:22:33:44\""),
        "{e}"
    );
    let e = err(&format!(
        "{base}receivers = [\"00:11:22:33:44:55\", \"00:11:22:33:44:55\"]\n"
    ));
    assert!(e.contains("listed twice"), "{e}");
    let e = err(&format!("{base}receivers = \"00:11:22:33:44:55\"\n"));
    assert!(e.contains("receivers"), "{e}");
}
