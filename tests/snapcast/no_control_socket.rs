//! The service without its control socket still follows its server: with the default control socket held by
//! another process, `run` warns and plays (no CLI), and its Snapcast source reads audio, times out a server that
//! stops answering, and reconnects after the server goes away — exactly as with a socket.

use crate::snap_hostile::{scenario, Conn, FakeServer, TimeReplies};
use bluebridge::timeline::{Clock, SystemClock};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// 20 ms chunks of a ±0.125 square wave (48 kHz stereo S16), stamped with the server's (here: the local) now, in
/// real time, for `secs` seconds or until the client is gone.
async fn play(c: &Conn, secs: f64) {
    c.settings().await;
    c.pcm_header(48_000, 2).await;
    let frames = 960usize;
    let payload: Vec<u8> = (0..frames)
        .flat_map(|i| {
            let v: i16 = if (i / 48) % 2 == 0 { 4096 } else { -4096 };
            [v, v]
        })
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..(secs * 50.0) as usize {
        tick.tick().await;
        c.chunk(SystemClock.now().as_ns(), payload.clone()).await;
    }
}

/// Non-zero samples in the WAV written so far (its data after the 44-byte header).
fn nonzero_samples(wav: &Path) -> usize {
    let bytes = std::fs::read(wav).unwrap_or_default();
    bytes
        .get(44..)
        .unwrap_or_default()
        .chunks_exact(2)
        .filter(|s| s != &[0, 0])
        .count()
}

#[tokio::test]
async fn without_its_default_control_socket_the_service_still_follows_its_server() {
    // Connection 1 plays 3 s and closes (the server restarted); connection 2 never answers Time (a server that
    // hangs); connection 3 and later play.
    let server = FakeServer::start(
        TimeReplies::SilentOn(|i| i == 2),
        scenario(|c: Conn| async move {
            match c.index {
                1 => {
                    play(&c, 3.0).await;
                    c.close().await;
                }
                2 => c.settings().await,
                _ => play(&c, 120.0).await,
            }
        }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let default_socket = dir.path().join("default.sock");
    let _other_process = std::os::unix::net::UnixListener::bind(&default_socket).unwrap();
    let wav = dir.path().join("out.wav");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nkind = \"snapcast\"\nurl = \"{}\"\n\n[[output]]\nname = \"rec\"\nkind = \"file\"\npath = \"{}\"\n\n\
             [service]\nstate_dir = \"{}\"\n",
            server.url,
            wav.display(),
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (done_tx, done) = std::sync::mpsc::channel();
    {
        let (stop, cfg) = (stop.clone(), cfg.to_str().unwrap().to_string());
        std::thread::spawn(move || {
            let r = bluebridge::service::run_with_default_socket(&cfg, stop, &default_socket);
            let _ = done_tx.send(r.map_err(|e| e.to_string()));
        });
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let wait = |what: &'static str, ok: &dyn Fn() -> bool| {
        let ok_now = ok();
        if !ok_now {
            if let Ok(r) = done.try_recv() {
                panic!("the service ended while waiting for {what}: {r:?}");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not within 60 s ({} connections, {} non-zero samples written)",
                server.count(),
                nonzero_samples(&wav)
            );
        }
        ok_now
    };
    while !wait("audio from the first connection", &|| nonzero_samples(&wav) > 48_000) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while !wait(
        "a reconnect after the server closed, and one after it stopped answering",
        &|| server.count() >= 3,
    ) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = nonzero_samples(&wav);
    while !wait("audio after the reconnects", &|| {
        nonzero_samples(&wav) > before + 48_000
    }) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let r = tokio::task::spawn_blocking(move || done.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(matches!(r, Ok(Ok(()))), "the service did not stop cleanly: {r:?}");
}
