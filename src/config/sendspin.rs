//! `[source] kind = "sendspin"`: how the players meet their server (`url`, or mDNS: `discovery`, `listen_port`,
//! `interface`).

use super::{Config, ConfigError, SendspinMeet, SourceConfig};
use crate::sendspin::mdns::names::DEFAULT_PLAYER_PORT;

/// Longest network interface name (the kernel's IFNAMSIZ less its NUL).
const MAX_INTERFACE_CHARS: usize = 15;

impl Config {
    /// `url`, or with none the mDNS keys.
    pub(super) fn sendspin_meet(
        src: &SourceConfig,
        err_at: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
    ) -> Result<SendspinMeet, ConfigError> {
        let interface = match &src.interface {
            None => None,
            Some(i) => {
                let v = i.get_ref();
                if v.is_empty()
                    || v.chars().count() > MAX_INTERFACE_CHARS
                    || !v.chars().all(|c| c.is_ascii_graphic() && c != '/')
                {
                    return Err(err_at(
                        i.span(),
                        format!("source.interface must be a network interface name such as \"eth0\", not {v:?}"),
                    ));
                }
                Some(v.clone())
            }
        };
        if let Some(u) = &src.url {
            for (key, span) in [
                ("discovery", src.discovery.as_ref().map(|v| v.span())),
                ("listen_port", src.listen_port.as_ref().map(|v| v.span())),
                ("interface", src.interface.as_ref().map(|v| v.span())),
            ] {
                if let Some(span) = span {
                    return Err(err_at(
                        span,
                        format!("source.{key} is for mDNS; with source.url set the players dial that URL (remove one)"),
                    ));
                }
            }
            let url = u.get_ref();
            if !url.starts_with("ws://") || url.len() <= "ws://".len() {
                return Err(err_at(
                    u.span(),
                    format!("source.url must look like ws://host:port/path, not {url:?}"),
                ));
            }
            return Ok(SendspinMeet::Url(url.clone()));
        }
        let discovery = src.discovery.as_ref().map(|d| (d.get_ref().as_str(), d.span()));
        match discovery {
            None | Some(("advertise", _)) => {
                let port = match &src.listen_port {
                    None => DEFAULT_PLAYER_PORT,
                    Some(p) => u16::try_from(*p.get_ref()).map_err(|_| {
                        err_at(
                            p.span(),
                            format!("source.listen_port must be between 0 and 65535, not {}", p.get_ref()),
                        )
                    })?,
                };
                Ok(SendspinMeet::Advertise { port, interface })
            }
            Some(("browse", _)) => {
                if let Some(p) = &src.listen_port {
                    return Err(err_at(
                        p.span(),
                        "source.listen_port is for discovery = \"advertise\" (the server dials the players); \
                         with \"browse\" the players dial the server"
                            .into(),
                    ));
                }
                Ok(SendspinMeet::Browse { interface })
            }
            Some((other, span)) => Err(err_at(
                span,
                format!("source.discovery must be \"advertise\" or \"browse\", not {other:?}"),
            )),
        }
    }
}
