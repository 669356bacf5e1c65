//! Sendspin as a source: one player connection per output (each output is its own Sendspin player, named after
//! it), one server-clock estimator shared by all of them; the player's events feed the output's timeline through
//! the same glue as the Snapcast source ([`super::snapcast::apply`]). How the players meet the server (a URL, or
//! mDNS either way) is one [`Meeting`] per source: the mDNS responder, the players' listener and the server browse
//! are started on first use and shared.

use crate::output::player::{Feed, PlaySettings};
use crate::output::volume::VolumeCurve;
use crate::sendspin::delay::DelayReporter;
use crate::sendspin::listen::Listener;
use crate::sendspin::mdns::{names, Mdns};
use crate::sendspin::meet::MeetSpec;
use crate::sendspin::{Meet, PlayerConfig};
use crate::timeline::buffer::TimelineBuffer;
use crate::timeline::server_clock::SharedServerClock;
use crate::timeline::{AudioFormat, Clock};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};

/// Events queued between a player and its glue task (each at most one chunk, ≤ 1 MiB of PCM as bounded by
/// [`MAX_FRAME_BYTES`](crate::sendspin::proto::MAX_FRAME_BYTES)); a full queue stops the socket being read.
const EVENT_QUEUE: usize = 16;

/// A running Sendspin player: its output's feed and a handle to stop it.
pub struct SendspinIngest {
    /// The output's feed.
    pub feed: Feed,
    shutdown: watch::Sender<bool>,
    output_delay_ms: watch::Sender<u32>,
    reporter: DelayReporter,
    advert: Option<Advert>,
}

/// A player's mDNS record and listener route, withdrawn when it stops.
struct Advert {
    mdns: Arc<Mdns>,
    listener: Arc<Listener>,
    fullname: String,
    path: String,
}

/// How a source's players meet the server: what they share (the mDNS responder, the players' listener, the
/// browse for servers), started when the first player needs it. A part that fails to start is logged once, naming
/// what failed, and the players that need it stay off.
pub struct Meeting {
    spec: MeetSpec,
    mdns: Option<Result<Arc<Mdns>, String>>,
    listener: Option<Result<Arc<Listener>, String>>,
    servers: Option<Result<watch::Receiver<Option<String>>, String>>,
}

impl Meeting {
    /// Nothing starts until a player needs it.
    pub fn new(spec: MeetSpec) -> Self {
        Self {
            spec,
            mdns: None,
            listener: None,
            servers: None,
        }
    }

    fn mdns(&mut self, interface: Option<&str>) -> Result<Arc<Mdns>, String> {
        self.mdns
            .get_or_insert_with(|| {
                Mdns::start(interface).map(Arc::new).map_err(|e| {
                    let on = interface
                        .map(|i| format!(" on interface {i:?} ([source] interface)"))
                        .unwrap_or_default();
                    let e = format!("sendspin: cannot start mDNS{on}: {e}");
                    tracing::error!("{e}");
                    e
                })
            })
            .clone()
    }

    /// A player's connections (and its record, when it advertises).
    fn meet(
        &mut self,
        rt: &tokio::runtime::Handle,
        name: &str,
        client_id: &str,
    ) -> Result<(Meet, Option<Advert>), String> {
        match self.spec.clone() {
            MeetSpec::Url(u) => Ok((Meet::Url(u), None)),
            MeetSpec::Browse { interface } => {
                let mdns = self.mdns(interface.as_deref())?;
                let servers = self
                    .servers
                    .get_or_insert_with(|| {
                        mdns.browse_servers(rt).map_err(|e| {
                            let e = format!("sendspin: cannot browse for servers: {e}");
                            tracing::error!("{e}");
                            e
                        })
                    })
                    .clone()?;
                Ok((Meet::Discovered(servers), None))
            }
            MeetSpec::Advertise { port, interface } => {
                let mdns = self.mdns(interface.as_deref())?;
                let listener = self
                    .listener
                    .get_or_insert_with(|| {
                        let addr = std::net::SocketAddr::from(([0, 0, 0, 0], port));
                        Listener::bind(rt, addr).map(Arc::new).map_err(|e| {
                            let e = format!(
                                "sendspin: cannot listen on port {port} for the server's connections: {e}                                  (set [source] listen_port)"
                            );
                            tracing::error!("{e}");
                            e
                        })
                    })
                    .clone()?;
                let path = names::player_path(client_id);
                let incoming = listener.route(&path);
                let fullname = mdns.advertise(client_id, name, listener.port(), &path).map_err(|e| {
                    listener.unroute(&path);
                    format!("sendspin: cannot advertise player {name:?}: {e}")
                })?;
                tracing::info!(
                    output = name,
                    record = fullname,
                    port = listener.port(),
                    path,
                    "sendspin: advertised the player over mDNS; waiting for the server to connect"
                );
                let meet = Meet::Listen {
                    at: format!("ws://*:{}{path}", listener.port()),
                    incoming: Arc::new(tokio::sync::Mutex::new(incoming)),
                };
                Ok((
                    meet,
                    Some(Advert {
                        mdns,
                        listener,
                        fullname,
                        path,
                    }),
                ))
            }
        }
    }
}

impl SendspinIngest {
    /// Starts the player of output `name` on `rt`, sharing `server_clock` with the other players of this server.
    /// With `identities` (the state directory) it is encrypted, with the output's identity kept there (made on first
    /// start); an identity that cannot be read is logged as an error naming its file, and that output's player stays
    /// off (the file is never replaced). Without, it speaks the server's plain transition mode.
    pub fn start(
        rt: &tokio::runtime::Handle,
        meeting: &mut Meeting,
        name: &str,
        identities: Option<&std::path::Path>,
        clock: Arc<dyn Clock>,
        server_clock: SharedServerClock,
    ) -> Self {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let feed = Feed {
            timeline: TimelineBuffer::shared(AudioFormat::STEREO_48K),
            server_clock: server_clock.clone(),
            settings: Arc::new(Mutex::new(PlaySettings {
                buffer_ns: 0,
                volume_curve: VolumeCurve::Sendspin,
                ..PlaySettings::default()
            })),
        };
        let (ev_tx, mut ev_rx) = mpsc::channel(EVENT_QUEUE);
        let (output_delay_ms, delay_rx) = watch::channel(0);
        let player = match identities {
            None => Some(PlayerConfig::new("", name)),
            Some(dir) => match crate::sendspin::identity::load_or_create(dir, name) {
                Ok((keys, made)) => {
                    let path = crate::sendspin::identity::key_path(dir, name);
                    tracing::info!(
                        output = name,
                        client_id = keys.client_id(),
                        "sendspin: {} identity {}",
                        if made { "made a new" } else { "using the" },
                        path.display()
                    );
                    Some(PlayerConfig::encrypted("", name, keys))
                }
                Err(e) => {
                    tracing::error!(output = name, "{e}; this output's Sendspin player stays off");
                    None
                }
            },
        };
        let mut advert = None;
        let player = player.and_then(|mut p| match meeting.meet(rt, name, &p.client_id) {
            Ok((meet, ad)) => {
                p.meet = meet;
                advert = ad;
                Some(p)
            }
            Err(e) => {
                tracing::error!(output = name, "{e}; this output's Sendspin player stays off");
                None
            }
        });
        if let Some(player) = player {
            rt.spawn(crate::sendspin::run(
                player,
                clock,
                server_clock,
                ev_tx,
                delay_rx,
                shutdown_rx,
            ));
        }
        let glue_feed = feed.clone();
        let glue_name = name.to_string();
        rt.spawn(async move {
            while let Some(ev) = ev_rx.recv().await {
                super::snapcast::apply(&glue_name, &glue_feed, ev);
            }
        });
        Self {
            feed,
            shutdown,
            output_delay_ms,
            reporter: DelayReporter::default(),
            advert,
        }
    }

    /// One observation of the output's total delay (as status shows it); the player reports it to the server
    /// once it settles (see [`crate::sendspin::delay`]).
    pub fn observe_delay(&mut self, total_ns: i64) {
        if let Some(ms) = self.reporter.observe(total_ns) {
            let _ = self.output_delay_ms.send(ms);
        }
    }

    /// Asks the player to say goodbye and disconnect.
    pub fn stop(&self) {
        if let Some(a) = &self.advert {
            a.mdns.withdraw(&a.fullname);
            a.listener.unroute(&a.path);
        }
        let _ = self.shutdown.send(true);
    }
}
