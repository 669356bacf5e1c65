//! A device as the config names it: an ALSA PCM id in its canonical spelling, cpal's description, or the default;
//! and whether a listed device is the one named.

/// A device as the config names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceName {
    /// The system's default device.
    Default,
    /// An ALSA PCM name, canonical (`hw:CARD=1,DEV=0` for `hw:1,0`; `hw:CARD=Headphones,DEV=0` for
    /// `hw:CARD=Headphones` or `hw:Headphones`).
    Pcm(String),
    /// cpal's description of the device (its first line), matched exactly.
    Described(String),
}

/// Why a device name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceNameError {
    /// Empty (leave `device` out for the default device).
    #[error("the device name is empty (leave `device` out for the default device)")]
    Empty,
    /// Too long or holding control characters.
    #[error("the device name {0:?} is not a device name (at most 256 printable characters)")]
    Malformed(String),
}

impl DeviceName {
    /// Parses a name from the config.
    pub fn parse(s: &str) -> Result<Self, DeviceNameError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(DeviceNameError::Empty);
        }
        if s.len() > 256 || s.chars().any(|c| c.is_control()) {
            return Err(DeviceNameError::Malformed(s.into()));
        }
        if s == "default" {
            return Ok(Self::Default);
        }
        let Some((prefix, rest)) = s.split_once(':') else {
            return Ok(if s.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                // `pulse`, `pipewire`, `null`…: ALSA PCM plugins named alone.
                Self::Pcm(s.into())
            } else {
                Self::Described(s.into())
            });
        };
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Ok(Self::Described(s.into()));
        }
        // `CARD=x,DEV=y` or positional `x,y`; any other argument is kept as given.
        let parts: Vec<&str> = rest.split(',').map(str::trim).collect();
        let mut card = None;
        let mut dev = None;
        let mut others = vec![];
        for (i, p) in parts.iter().enumerate() {
            match p.split_once('=') {
                Some(("CARD", v)) => card = Some(v),
                Some(("DEV", v)) => dev = Some(v),
                Some(_) => others.push(p.to_string()),
                None if i == 0 => card = Some(p),
                None if i == 1 => dev = Some(p),
                None if i == 2 => others.push(format!("SUBDEV={p}")),
                None => others.push(p.to_string()),
            }
        }
        let Some(card) = card.filter(|c| !c.is_empty()) else {
            return Ok(Self::Pcm(s.into()));
        };
        let mut id = format!("{prefix}:CARD={card}");
        if prefix.ends_with("hw") || dev.is_some() {
            id += &format!(",DEV={}", dev.unwrap_or("0"));
        }
        for o in others {
            id += &format!(",{o}");
        }
        Ok(Self::Pcm(id))
    }

    /// Whether a device cpal lists (its PCM id and description's first line) is this one.
    pub fn matches(&self, pcm_id: &str, description: &str) -> bool {
        match self {
            Self::Default => pcm_id == "default",
            Self::Pcm(id) => DeviceName::parse(pcm_id).is_ok_and(|d| d == Self::Pcm(id.clone())),
            Self::Described(d) => d == description,
        }
    }
}

impl std::fmt::Display for DeviceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Default => f.write_str("the default device"),
            Self::Pcm(id) => write!(f, "{id:?}"),
            Self::Described(d) => write!(f, "{d:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_to_canonical_pcm_ids() {
        let pcm = |s: &str| DeviceName::Pcm(s.into());
        for (input, want) in [
            ("hw:CARD=Headphones,DEV=0", pcm("hw:CARD=Headphones,DEV=0")),
            ("hw:CARD=Headphones", pcm("hw:CARD=Headphones,DEV=0")),
            ("hw:1,0", pcm("hw:CARD=1,DEV=0")),
            ("hw:1", pcm("hw:CARD=1,DEV=0")),
            ("plughw:Loopback,1", pcm("plughw:CARD=Loopback,DEV=1")),
            (" hw:Loopback,0,2 ", pcm("hw:CARD=Loopback,DEV=0,SUBDEV=2")),
            ("sysdefault:CARD=Device", pcm("sysdefault:CARD=Device")),
            ("front:CARD=Device,DEV=0", pcm("front:CARD=Device,DEV=0")),
            ("pulse", pcm("pulse")),
            ("default", DeviceName::Default),
            (
                "bcm2835 Headphones, bcm2835 Headphones",
                DeviceName::Described("bcm2835 Headphones, bcm2835 Headphones".into()),
            ),
            (
                "USB Audio: Line Out",
                DeviceName::Described("USB Audio: Line Out".into()),
            ),
        ] {
            assert_eq!(DeviceName::parse(input), Ok(want), "{input:?}");
        }
        assert_eq!(DeviceName::parse("  "), Err(DeviceNameError::Empty));
        assert!(matches!(
            DeviceName::parse("hw:\u{7}0"),
            Err(DeviceNameError::Malformed(_))
        ));
        assert!(matches!(
            DeviceName::parse(&"x".repeat(300)),
            Err(DeviceNameError::Malformed(_))
        ));
    }

    #[test]
    fn names_match_what_cpal_lists_in_either_spelling() {
        let n = DeviceName::parse("hw:Loopback,0").unwrap();
        assert!(n.matches("hw:CARD=Loopback,DEV=0", "Loopback, Loopback PCM"));
        assert!(!n.matches("hw:CARD=Loopback,DEV=1", "Loopback, Loopback PCM"));
        assert!(!n.matches("plughw:CARD=Loopback,DEV=0", "Loopback, Loopback PCM"));
        let d = DeviceName::parse("Loopback, Loopback PCM").unwrap();
        assert!(d.matches("hw:CARD=Loopback,DEV=0", "Loopback, Loopback PCM"));
        assert!(DeviceName::Default.matches("default", "Default Audio Device"));
    }
}
