//! The speaker's AVRCP absolute volume kept at what the output wants, a change made on the speaker left alone.

use crate::bluez::media::MediaBus;
use crate::bluez::media_transport;
use crate::output::a2dp::LinkState;
use std::sync::{Arc, Mutex};

/// Keeps the speaker's AVRCP absolute volume at what the output wants, and the output told whether the speaker
/// applies it. BlueZ shows `Volume` on the transport only once AVRCP reported an absolute volume (often a moment
/// after the stream started), so it is followed as its changes come in. A change made on the speaker itself (its
/// buttons) is shown in status and left alone until the output's own volume changes again.
#[derive(Debug, Default)]
pub(super) struct VolumeFollower {
    /// The level we last set, if any.
    set: Option<u16>,
    /// The level last read.
    seen: Option<u16>,
    /// Setting failed: the speaker does not really take absolute volume; software volume from now on.
    refused: bool,
}

impl VolumeFollower {
    /// `now`: the speaker's `Volume` as last heard from BlueZ.
    pub(super) async fn follow(
        &mut self,
        bus: &MediaBus,
        transport: &str,
        now: Option<u16>,
        link: &Arc<Mutex<LinkState>>,
        name: &str,
    ) {
        if self.refused {
            return;
        }
        let wanted = link
            .lock()
            .expect("link lock")
            .wanted_volume_pct
            .map(media_transport::level_for_pct);
        match volume_action(self.set, self.seen, now, wanted) {
            VolumeAction::Keep => {}
            VolumeAction::Lost => {
                tracing::info!(
                    output = name,
                    "the speaker no longer offers absolute volume: software volume"
                );
                self.set = None;
            }
            VolumeAction::ChangedOnSpeaker(level) => {
                tracing::info!(output = name, "volume changed on the speaker: {level}/127");
            }
            VolumeAction::Set(level) => match media_transport::set_volume(bus, transport, level).await {
                Ok(()) => {
                    if self.set.is_none() {
                        tracing::info!(
                            output = name,
                            "the speaker offers AVRCP absolute volume: set to {level}/127"
                        );
                    }
                    self.set = Some(level);
                }
                Err(e) => {
                    tracing::warn!(output = name, "{e}; using software volume for this speaker");
                    self.refused = true;
                }
            },
        }
        self.seen = now;
        let mut st = link.lock().expect("link lock");
        // The samples go out at full scale only once the speaker itself is at our level.
        st.device_volume = !self.refused && self.set.is_some() && now.is_some();
        st.device_level = if st.device_volume { now } else { None };
    }
}

/// What to do about the speaker's volume, given the level we last set, the level last read, the level read now
/// (None: no absolute volume) and the level the output wants (None: not known yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VolumeAction {
    /// Nothing to do.
    Keep,
    /// Set the speaker to this level.
    Set(u16),
    /// Somebody changed it on the speaker: leave it.
    ChangedOnSpeaker(u16),
    /// The property went away.
    Lost,
}

fn volume_action(set: Option<u16>, seen: Option<u16>, now: Option<u16>, wanted: Option<u16>) -> VolumeAction {
    let (Some(now), Some(wanted)) = (now, wanted) else {
        return if now.is_none() && set.is_some() {
            VolumeAction::Lost
        } else {
            VolumeAction::Keep
        };
    };
    match set {
        // First sight of the property, or our own wish changed: apply it.
        None => VolumeAction::Set(wanted),
        Some(s) if s != wanted => VolumeAction::Set(wanted),
        // The speaker moved away from what we set and from what it showed last time: a button press.
        Some(s) if now != s && seen != Some(now) => VolumeAction::ChangedOnSpeaker(now),
        Some(_) => VolumeAction::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_follows_our_wish_and_leaves_a_change_made_on_the_speaker() {
        use VolumeAction::{ChangedOnSpeaker, Keep, Lost, Set};
        // (level we set, level seen last, level now, level wanted) → action
        type Case = (Option<u16>, Option<u16>, Option<u16>, Option<u16>, VolumeAction);
        let cases: &[Case] = &[
            (None, None, None, Some(64), Keep),                // no absolute volume: software
            (None, None, Some(127), None, Keep),               // the player has not said yet
            (None, None, Some(127), Some(64), Set(64)),        // the property appears: apply ours
            (Some(64), Some(127), Some(64), Some(64), Keep),   // it took it
            (Some(64), Some(64), Some(64), Some(80), Set(80)), // our volume changed
            (Some(64), Some(64), Some(90), Some(64), ChangedOnSpeaker(90)), // a button on the speaker
            (Some(64), Some(90), Some(90), Some(64), Keep),    // … reported once, then left alone
            (Some(64), Some(90), Some(95), Some(64), ChangedOnSpeaker(95)),
            (Some(64), Some(90), Some(90), Some(70), Set(70)), // until ours changes again
            (Some(64), Some(64), None, Some(64), Lost),        // AVRCP went away
        ];
        for &(set, seen, now, wanted, want) in cases {
            assert_eq!(
                volume_action(set, seen, now, wanted),
                want,
                "{set:?} {seen:?} {now:?} {wanted:?}"
            );
        }
    }

    #[test]
    fn avrcp_levels_span_0_to_127() {
        use media_transport::level_for_pct;
        assert_eq!(
            [
                level_for_pct(0),
                level_for_pct(50),
                level_for_pct(100),
                level_for_pct(255)
            ],
            [0, 64, 127, 127]
        );
    }
}
