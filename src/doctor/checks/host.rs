//! The rest of the machine: the sound devices a `local` output or a capture source names, and real-time priority
//! for the engine thread.

use super::{found, need, Finding, Level, Needs};
use crate::doctor::facts::MachineFacts;

pub(super) fn sound(needs: &Needs, facts: &MachineFacts, out: &mut Vec<Finding>) {
    if needs.locals.is_empty() {
        let n = facts.sound_devices.iter().filter(|d| d.output).count();
        out.push(found(
            "sound-devices",
            Level::Info,
            format!("{n} output device(s)"),
            None,
        ));
        return;
    }
    if let Some(e) = &facts.sound_error {
        out.push(found(
            "sound-devices",
            Level::Missing,
            format!("cannot list sound devices: {e}"),
            Some("is ALSA there? (aplay -l); run bluebridge devices".into()),
        ));
        return;
    }
    let outputs: Vec<_> = facts.sound_devices.iter().filter(|d| d.output).collect();
    let names = || outputs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ");
    for (output, device) in &needs.locals {
        match device {
            None if outputs.is_empty() => out.push(found(
                "sound-device",
                Level::Missing,
                format!("output {output:?} plays on the default sound device, and there is none"),
                Some("connect a sound card; bluebridge devices lists them".into()),
            )),
            None => out.push(found(
                "sound-device",
                Level::Ok,
                format!("output {output:?}: the default device (devices: {})", names()),
                None,
            )),
            Some(d) => {
                if outputs.iter().any(|x| &x.name == d || &x.description == d) {
                    out.push(found(
                        "sound-device",
                        Level::Ok,
                        format!("output {output:?}: {d}"),
                        None,
                    ));
                } else {
                    out.push(found(
                        "sound-device",
                        Level::Missing,
                        format!(
                            "output {output:?} wants device {d:?}, which is not there (there are: {})",
                            names()
                        ),
                        Some("set device = one of the names bluebridge devices prints".into()),
                    ));
                }
            }
        }
    }
}

pub(super) fn realtime(needs: &Needs, facts: &MachineFacts, out: &mut Vec<Finding>) {
    let r = facts.realtime;
    let limit = if r.rlimit_rtprio == u64::MAX {
        "unlimited".to_string()
    } else {
        r.rlimit_rtprio.to_string()
    };
    let detail = format!(
        "RLIMIT_RTPRIO {limit}, CAP_SYS_NICE {}",
        if r.cap_sys_nice { "yes" } else { "no" }
    );
    out.push(if r.fifo_granted {
        found("realtime", Level::Ok, format!("SCHED_FIFO granted ({detail})"), None)
    } else {
        found(
            "realtime",
            need(needs.realtime, Level::Warn),
            format!("SCHED_FIFO refused to this process ({detail}): audio threads run at normal priority"),
            Some(
                "the shipped unit grants it to the service (LimitRTPRIO=10, RestrictRealtime=no); elsewhere run as \
                 root or raise rtprio in /etc/security/limits.d"
                    .into(),
            ),
        )
    });
}
