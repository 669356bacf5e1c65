//! `client/state` (what the player reports: available, volume, mute, its delays) and `server/command` (what the
//! server asks of it).

use serde::{Deserialize, Serialize};

/// The commands this player follows.
pub const SUPPORTED_COMMANDS: [&str; 2] = ["volume", "mute"];

/// `client/state.player`: every field the spec requires in every player object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlayerState {
    /// 0…100.
    pub volume: u8,
    /// Muted.
    pub muted: bool,
    /// From handing a sample to the output until it is heard, ms (0…5000): the server sends this much earlier.
    pub output_delay_ms: u32,
    /// Lead the player needs from stream/start to the first chunk's play time, ms.
    pub required_lead_time_ms: u32,
    /// Buffer the player asks the server to keep ahead during playback, ms.
    pub min_buffer_ms: u32,
    /// [`SUPPORTED_COMMANDS`].
    pub supported_commands: Vec<&'static str>,
}

/// `client/state`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientState {
    /// True once the player's clock is synchronised: the server sends no audio before.
    pub available: bool,
    /// The player part.
    pub player: PlayerState,
}

impl ClientState {
    /// The message text.
    pub fn encode(&self) -> String {
        super::encode("client/state", self)
    }
}

/// `server/command.player`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PlayerCommand {
    /// `volume`, `mute`, `set_output_delay`, or one this player does not know.
    pub command: String,
    /// For `volume`: 0…100.
    #[serde(default)]
    pub volume: Option<i64>,
    /// For `mute`.
    #[serde(default)]
    pub mute: Option<bool>,
    /// For `set_output_delay`, ms.
    #[serde(default)]
    pub output_delay_ms: Option<i64>,
}

/// `server/command`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ServerCommand {
    /// The player part (absent for other roles).
    #[serde(default)]
    pub player: Option<PlayerCommand>,
}

/// What a command asks of the player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Set the volume, 0…100 (clamped).
    Volume(u8),
    /// Mute or unmute.
    Mute(bool),
}

/// Why a `server/command` is not followed (it is logged and skipped; the connection goes on).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No `player` object (a command for another role).
    #[error("server/command without a player part")]
    NoPlayerPart,
    /// A known command without the field it needs.
    #[error("server/command {command:?} without its {field:?} field")]
    MissingField {
        /// The command.
        command: &'static str,
        /// The field it needs.
        field: &'static str,
    },
    /// A command this player does not follow (not in [`SUPPORTED_COMMANDS`]; its name cut to 32 characters).
    #[error("server/command {0:?} not supported (this player follows volume and mute)")]
    Unsupported(String),
}

impl ServerCommand {
    /// The command this player follows, or the reason it does not (unknown command, missing value).
    pub fn command(&self) -> Result<Command, CommandError> {
        let p = self.player.as_ref().ok_or(CommandError::NoPlayerPart)?;
        let missing = |command, field| CommandError::MissingField { command, field };
        match p.command.as_str() {
            "volume" => p
                .volume
                .map(|v| Command::Volume(v.clamp(0, 100) as u8))
                .ok_or(missing("volume", "volume")),
            "mute" => p.mute.map(Command::Mute).ok_or(missing("mute", "mute")),
            other => Err(CommandError::Unsupported(other.chars().take(32).collect())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{decode_server_text, ServerMessage};
    use super::*;

    fn cmd(text: &str) -> Result<Command, CommandError> {
        match decode_server_text(text).unwrap() {
            ServerMessage::Command(c) => c.command(),
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn volume_and_mute_commands_are_followed_others_refused() {
        assert_eq!(
            cmd(r#"{"type":"server/command","payload":{"player":{"command":"volume","volume":40}}}"#),
            Ok(Command::Volume(40))
        );
        assert_eq!(
            cmd(r#"{"type":"server/command","payload":{"player":{"command":"volume","volume":400}}}"#),
            Ok(Command::Volume(100))
        );
        assert_eq!(
            cmd(r#"{"type":"server/command","payload":{"player":{"command":"mute","mute":true}}}"#),
            Ok(Command::Mute(true))
        );
        assert_eq!(
            cmd(r#"{"type":"server/command","payload":{"player":{"command":"mute"}}}"#),
            Err(CommandError::MissingField {
                command: "mute",
                field: "mute"
            })
        );
        let unsupported =
            cmd(r#"{"type":"server/command","payload":{"player":{"command":"set_output_delay","output_delay_ms":5}}}"#);
        assert_eq!(unsupported, Err(CommandError::Unsupported("set_output_delay".into())));
        assert_eq!(
            unsupported.unwrap_err().to_string(),
            "server/command \"set_output_delay\" not supported (this player follows volume and mute)"
        );
        assert_eq!(
            cmd(r#"{"type":"server/command","payload":{}}"#),
            Err(CommandError::NoPlayerPart)
        );
    }

    #[test]
    fn the_state_carries_every_required_player_field() {
        let s = ClientState {
            available: true,
            player: PlayerState {
                volume: 80,
                muted: false,
                output_delay_ms: 12,
                required_lead_time_ms: 250,
                min_buffer_ms: 500,
                supported_commands: SUPPORTED_COMMANDS.to_vec(),
            },
        };
        let v: serde_json::Value = serde_json::from_str(&s.encode()).unwrap();
        assert_eq!(v["type"], "client/state");
        assert_eq!(v["payload"]["available"], true);
        for k in [
            "volume",
            "muted",
            "output_delay_ms",
            "required_lead_time_ms",
            "min_buffer_ms",
            "supported_commands",
        ] {
            assert!(!v["payload"]["player"][k].is_null(), "{k}");
        }
    }
}
