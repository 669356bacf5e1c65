//! mDNS for Sendspin, both ways (the edge: `mdns-sd`'s responder thread; what goes into and comes out of the
//! records is [`names`], pure): a player advertises `_sendspin._tcp` so a server finds it and dials its listener
//! ([`super::listen`]); with no `url` configured, the players can instead browse `_sendspin-server._tcp` and
//! connect to the first server found.
//!
//! One [`Mdns`] per source, shared by its players. It never answers on loopback (a loopback address in a record
//! would send a server on another machine to itself) and speaks IPv4 only, as aiosendspin's server does
//! (`server/server.py` `start_server`: `IPVersion.V4Only`); `interface` confines it to one interface.

pub mod names;

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use names::{Servers, PLAYER_SERVICE, SERVER_SERVICE};
use tokio::sync::watch;

/// mDNS could not start or take a record.
#[derive(Debug, thiserror::Error)]
pub enum MdnsError {
    /// The responder would not start (no multicast socket).
    #[error("mDNS responder: {0}")]
    Daemon(mdns_sd::Error),
    /// A record was refused.
    #[error("mDNS record {name:?}: {source}")]
    Record {
        /// The instance or service.
        name: String,
        /// Why.
        source: mdns_sd::Error,
    },
}

/// The responder shared by a source's players.
pub struct Mdns {
    daemon: ServiceDaemon,
    host: String,
}

impl Mdns {
    /// Starts the responder on every non-loopback IPv4 interface, or only on `interface`.
    pub fn start(interface: Option<&str>) -> Result<Self, MdnsError> {
        let daemon = ServiceDaemon::new().map_err(MdnsError::Daemon)?;
        let sel = |r: mdns_sd::Result<()>| r.map_err(MdnsError::Daemon);
        if let Some(i) = interface {
            sel(daemon.disable_interface(IfKind::All))?;
            sel(daemon.enable_interface(IfKind::Name(i.to_string())))?;
        }
        sel(daemon.disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6, IfKind::IPv6]))?;
        Ok(Self {
            daemon,
            host: format!("{}.local.", host_label()),
        })
    }

    /// Advertises player `name` (client id `client_id`) at `port` and `path`; returns the record's full name.
    pub fn advertise(&self, client_id: &str, name: &str, port: u16, path: &str) -> Result<String, MdnsError> {
        let instance = names::instance_name(client_id);
        let record = |source| MdnsError::Record {
            name: instance.clone(),
            source,
        };
        let info = ServiceInfo::new(
            PLAYER_SERVICE,
            &instance,
            &self.host,
            "",
            port,
            &names::player_txt(name, path)[..],
        )
        .map_err(record)?
        .enable_addr_auto();
        let fullname = info.get_fullname().to_string();
        self.daemon.register(info).map_err(record)?;
        Ok(fullname)
    }

    /// Withdraws a record [`Self::advertise`] made (a goodbye packet), best effort.
    pub fn withdraw(&self, fullname: &str) {
        if let Err(e) = self.daemon.unregister(fullname) {
            tracing::debug!("sendspin: mDNS withdraw {fullname}: {e}");
        }
    }

    /// Browses `_sendspin-server._tcp` on `rt`: the receiver holds the URL of the server the players use (the first
    /// one found that is still announced), None until one is found. Records that give no usable URL are logged once
    /// each and skipped.
    pub fn browse_servers(&self, rt: &tokio::runtime::Handle) -> Result<watch::Receiver<Option<String>>, MdnsError> {
        let events = self.daemon.browse(SERVER_SERVICE).map_err(|source| MdnsError::Record {
            name: SERVER_SERVICE.into(),
            source,
        })?;
        let (tx, rx) = watch::channel(None);
        rt.spawn(async move {
            let mut servers = Servers::default();
            let mut refused = std::collections::BTreeSet::new();
            while let Ok(ev) = events.recv_async().await {
                let change = match ev {
                    ServiceEvent::ServiceResolved(s) => {
                        let addrs: Vec<_> = s.addresses.iter().map(|a| a.to_ip_addr()).collect();
                        let server = names::display_name(s.get_property_val_str("name"));
                        match names::server_url(&addrs, s.port, s.get_property_val_str("path")) {
                            Ok(url) => {
                                tracing::info!(server, url, "sendspin: found a server over mDNS");
                                servers.found(&s.fullname, url).map(Some)
                            }
                            Err(e) => {
                                if refused.len() < names::MAX_SERVERS && refused.insert(s.fullname.clone()) {
                                    tracing::warn!(server, "sendspin: skipped the server record {}: {e}", s.fullname);
                                }
                                None
                            }
                        }
                    }
                    ServiceEvent::ServiceRemoved(_, fullname) => servers.removed(&fullname),
                    _ => None,
                };
                if let Some(url) = change {
                    if tx.send(url).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }
}

impl Drop for Mdns {
    fn drop(&mut self) {
        let _ = self.daemon.shutdown();
    }
}

/// This machine's host name as one DNS label (the records' host, `<label>.local.`), `bluebridge` if it has none.
fn host_label() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let label: String = raw
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' })
        .take(names::MAX_INSTANCE_BYTES)
        .collect();
    if label.trim_matches('-').is_empty() {
        "bluebridge".into()
    } else {
        label
    }
}
