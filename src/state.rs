//! What users change at run time, kept across restarts: per output the manual offset, volume, enabled flag,
//! calibration and placement, in `STATE_DIR/state.json`.
//!
//! The state is applied over the config at start and on reload ([`State::overlay`]): a value set with the CLI
//! wins over the config file's until it is set again.
//!
//! Durability rules:
//! - **Written atomically**: the new content goes to a temporary file in the same directory, is `fsync`ed, renamed
//!   over `state.json`, and the directory is `fsync`ed. A reader (or a power cut) sees the old file or the new
//!   one, never half of one.
//! - **A failed write leaves the old state intact** (the temporary file is removed) and is reported to the caller.
//! - **A corrupt file is never silently lost**: it is renamed to `state.json.corrupt-<unix seconds>` and reported;
//!   if it cannot be renamed aside, the store refuses to overwrite it.
//! - Keys this version does not know (written by a newer bluebridge) are kept and written back unchanged.

use crate::output::OutputSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The state file's name inside the state directory.
pub const STATE_FILE: &str = "state.json";
/// The format version this build writes.
pub const STATE_VERSION: u32 = 1;
/// Manual offsets accepted, ms (the config's range).
pub const OFFSET_RANGE_MS: std::ops::RangeInclusive<f64> = -5_000.0..=5_000.0;
/// Calibrations accepted, ms (the config's range).
pub const CALIBRATION_RANGE_MS: std::ops::RangeInclusive<f64> = -2_000.0..=2_000.0;

fn current_version() -> u32 {
    STATE_VERSION
}

/// Everything persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Format version.
    #[serde(default = "current_version")]
    pub version: u32,
    /// Per output, by name.
    #[serde(default)]
    pub outputs: BTreeMap<String, OutputState>,
    /// Keys this build does not know, kept as they were.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            version: STATE_VERSION,
            outputs: BTreeMap::new(),
            other: BTreeMap::new(),
        }
    }
}

/// What was changed on one output at run time (absent: the config's value holds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputState {
    /// Manual offset, ms (positive plays later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_ms: Option<f64>,
    /// Local volume, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_pct: Option<u8>,
    /// Playing (true) or muted and kept in sync (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Acoustic calibration, ms (positive: the sink is slower than it reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration_ms: Option<f64>,
    /// How the calibration was last measured (when, how confident, against what).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibrated: Option<crate::calibrate::session::CalibrationRecord>,
    /// Where the speaker is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// Keys this build does not know, kept as they were.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// Where a speaker is: its room, and the adapter it is served from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// A room name, free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// The Bluetooth adapter (`hci0`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// Keys this build does not know, kept as they were.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl State {
    /// Checks the values a parse cannot: ranges.
    pub fn validate(&self) -> Result<(), String> {
        for (name, o) in &self.outputs {
            if let Some(v) = o.offset_ms {
                if !OFFSET_RANGE_MS.contains(&v) {
                    return Err(format!("outputs.{name}.offset_ms {v} is outside {OFFSET_RANGE_MS:?}"));
                }
            }
            if let Some(v) = o.calibration_ms {
                if !CALIBRATION_RANGE_MS.contains(&v) {
                    return Err(format!(
                        "outputs.{name}.calibration_ms {v} is outside {CALIBRATION_RANGE_MS:?}"
                    ));
                }
            }
            if let Some(v) = o.volume_pct {
                if v > 100 {
                    return Err(format!("outputs.{name}.volume_pct {v} is over 100"));
                }
            }
        }
        Ok(())
    }

    /// `spec` with this state's values for it applied, and whether it is enabled.
    pub fn overlay(&self, spec: &OutputSpec) -> (OutputSpec, bool) {
        let mut s = spec.clone();
        let Some(o) = self.outputs.get(&spec.name) else {
            return (s, true);
        };
        if let Some(ms) = o.offset_ms {
            s.offset_ns = (ms * 1e6).round() as i64;
        }
        if let Some(ms) = o.calibration_ms {
            s.calibration_ns = (ms * 1e6).round() as i64;
        }
        if let Some(v) = o.volume_pct {
            s.volume_pct = v.min(100);
        }
        (s, o.enabled.unwrap_or(true))
    }

    /// The entry for `name`, created empty if missing.
    pub fn output_mut(&mut self, name: &str) -> &mut OutputState {
        self.outputs.entry(name.to_string()).or_default()
    }
}

/// Why the state could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file operation failed; the previous state file is untouched.
    #[error("cannot save {path}: {what}: {error}")]
    Io {
        /// The state file.
        path: String,
        /// The step that failed.
        what: &'static str,
        /// The error.
        error: io::Error,
    },
    /// A corrupt state file is there that could not be kept aside; it is not overwritten.
    #[error("not overwriting {path}: it is corrupt and could not be kept aside ({reason})")]
    Protected {
        /// The state file.
        path: String,
        /// Why it could not be renamed.
        reason: String,
    },
}

/// What loading found.
#[derive(Debug)]
pub struct Loaded {
    /// The state (empty when the file was missing, unreadable or corrupt).
    pub state: State,
    /// Something the user should hear about: a corrupt or unreadable file, and what was done with it.
    pub problem: Option<String>,
    /// Where a corrupt file was kept.
    pub kept_aside: Option<PathBuf>,
}

/// The state directory.
#[derive(Debug)]
pub struct StateStore {
    dir: PathBuf,
    /// Set when a corrupt file could not be kept aside: saving would lose it.
    protected: Option<String>,
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl StateStore {
    /// The store in `dir` (created on first save if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            protected: None,
        }
    }

    /// The state file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// Reads the state. Missing: empty, no problem. Unreadable: empty, reported. Corrupt (not JSON, wrong types,
    /// values out of range): renamed to `state.json.corrupt-<unix seconds>`, empty, reported.
    pub fn load(&mut self) -> Loaded {
        let path = self.path();
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Loaded {
                    state: State::default(),
                    problem: None,
                    kept_aside: None,
                }
            }
            Err(e) => {
                let msg = format!("cannot read {}: {e}; starting from the config alone", path.display());
                self.protected = Some(format!("it could not be read ({e})"));
                return Loaded {
                    state: State::default(),
                    problem: Some(msg),
                    kept_aside: None,
                };
            }
        };
        let parsed = serde_json::from_slice::<State>(&text)
            .map_err(|e| e.to_string())
            .and_then(|s| s.validate().map(|()| s));
        let why = match parsed {
            Ok(state) => {
                return Loaded {
                    state,
                    problem: None,
                    kept_aside: None,
                }
            }
            Err(why) => why,
        };
        let aside = self.aside_path();
        match std::fs::rename(&path, &aside) {
            Ok(()) => {
                let _ = sync_dir(&self.dir);
                Loaded {
                    state: State::default(),
                    problem: Some(format!(
                        "{} was corrupt ({why}); kept as {}; starting from the config alone",
                        path.display(),
                        aside.display()
                    )),
                    kept_aside: Some(aside),
                }
            }
            Err(e) => {
                self.protected = Some(e.to_string());
                Loaded {
                    state: State::default(),
                    problem: Some(format!(
                        "{} is corrupt ({why}) and could not be kept aside ({e}); it will not be overwritten",
                        path.display()
                    )),
                    kept_aside: None,
                }
            }
        }
    }

    fn aside_path(&self) -> PathBuf {
        let base = format!("{STATE_FILE}.corrupt-{}", unix_seconds());
        let mut p = self.dir.join(&base);
        let mut n = 1;
        while p.exists() {
            p = self.dir.join(format!("{base}-{n}"));
            n += 1;
        }
        p
    }

    /// Writes `state` atomically. On error the previous file is intact and no temporary file is left.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        self.save_with(state, &mut |f, bytes| f.write_all(bytes))
    }

    /// [`StateStore::save`] with the write of the content done by `write` (tests inject failures here).
    fn save_with(
        &self,
        state: &State,
        write: &mut dyn FnMut(&mut File, &[u8]) -> io::Result<()>,
    ) -> Result<(), StateError> {
        let path = self.path();
        let err = |what: &'static str| {
            let path = path.display().to_string();
            move |error| StateError::Io { path, what, error }
        };
        if let Some(reason) = &self.protected {
            return Err(StateError::Protected {
                path: path.display().to_string(),
                reason: reason.clone(),
            });
        }
        let mut bytes = serde_json::to_vec_pretty(state).expect("state serialises");
        bytes.push(b'\n');
        std::fs::create_dir_all(&self.dir).map_err(err("creating the directory"))?;
        let tmp = self.dir.join(format!(".{STATE_FILE}.tmp"));
        let result = (|| {
            let mut f = File::create(&tmp).map_err(err("creating the temporary file"))?;
            write(&mut f, &bytes).map_err(err("writing"))?;
            f.sync_all().map_err(err("syncing"))?;
            drop(f);
            std::fs::rename(&tmp, &path).map_err(err("renaming into place"))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result?;
        sync_dir(&self.dir).map_err(err("syncing the directory"))
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        let mut s = State::default();
        let o = s.output_mut("kitchen");
        o.offset_ms = Some(-12.5);
        o.volume_pct = Some(40);
        o.enabled = Some(false);
        o.placement = Some(Placement {
            room: Some("kitchen".into()),
            adapter: Some("hci1".into()),
            ..Placement::default()
        });
        s
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_missing_file_is_an_empty_state_without_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StateStore::new(dir.path().join("sub"));
        let l = store.load();
        assert_eq!(l.state, State::default());
        assert!(l.problem.is_none() && l.kept_aside.is_none());
        store.save(&sample()).unwrap();
        assert_eq!(store.load().state, sample());
    }

    #[test]
    fn saved_state_reads_back_and_unknown_keys_survive() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StateStore::new(dir.path());
        std::fs::write(
            store.path(),
            r#"{"version":1,"future":{"x":1},"outputs":{"a":{"volume_pct":5,"colour":"red"}}}"#,
        )
        .unwrap();
        let mut s = store.load().state;
        assert_eq!(s.outputs["a"].volume_pct, Some(5));
        s.output_mut("a").offset_ms = Some(3.0);
        store.save(&s).unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["future"]["x"], 1);
        assert_eq!(v["outputs"]["a"]["colour"], "red");
        assert_eq!(v["outputs"]["a"]["offset_ms"], 3.0);
        assert_eq!(leftovers(dir.path()), vec!["state.json"]);
    }

    #[test]
    fn a_corrupt_file_is_kept_aside_and_reported_never_lost() {
        for garbage in [
            &b"{\"outputs\": {\"a\": "[..],
            b"\xff\xfe not json",
            br#"{"outputs":{"a":{"volume_pct":300}}}"#,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let mut store = StateStore::new(dir.path());
            std::fs::write(store.path(), garbage).unwrap();
            let l = store.load();
            assert_eq!(l.state, State::default());
            let aside = l.kept_aside.expect("kept aside");
            let problem = l.problem.unwrap();
            assert!(
                problem.contains("corrupt") && problem.contains(&aside.display().to_string()),
                "{problem}"
            );
            assert_eq!(std::fs::read(&aside).unwrap(), garbage);
            assert!(aside
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("state.json.corrupt-"));
            // Saving afterwards writes a fresh file and leaves the corrupt one alone.
            store.save(&sample()).unwrap();
            assert_eq!(std::fs::read(&aside).unwrap(), garbage);
            assert_eq!(store.load().state, sample());
        }
    }

    #[test]
    fn two_corrupt_files_in_the_same_second_both_survive() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StateStore::new(dir.path());
        std::fs::write(store.path(), "one").unwrap();
        let a = store.load().kept_aside.unwrap();
        std::fs::write(store.path(), "two").unwrap();
        let b = store.load().kept_aside.unwrap();
        assert_ne!(a, b);
        assert_eq!(std::fs::read_to_string(a).unwrap(), "one");
        assert_eq!(std::fs::read_to_string(b).unwrap(), "two");
    }

    #[test]
    fn a_failed_write_like_a_full_disk_leaves_the_old_state_intact() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StateStore::new(dir.path());
        store.save(&sample()).unwrap();
        let before = std::fs::read(store.path()).unwrap();
        let mut changed = sample();
        changed.output_mut("kitchen").volume_pct = Some(90);
        // The disk fills up halfway through the write.
        let e = store
            .save_with(&changed, &mut |f, bytes| {
                f.write_all(&bytes[..bytes.len() / 2])?;
                Err(io::Error::from_raw_os_error(libc::ENOSPC))
            })
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("writing") && msg.contains("No space left"), "{msg}");
        assert!(msg.contains(&store.path().display().to_string()), "{msg}");
        assert_eq!(std::fs::read(store.path()).unwrap(), before);
        assert_eq!(leftovers(dir.path()), vec!["state.json"], "temporary file left behind");
        assert_eq!(store.load().state, sample());
    }

    #[test]
    fn a_rename_that_fails_leaves_what_was_there() {
        // A directory where the file should be: the rename fails (even for root), nothing is lost.
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path());
        std::fs::create_dir(store.path()).unwrap();
        std::fs::write(store.path().join("keep"), "x").unwrap();
        let e = store.save(&sample()).unwrap_err().to_string();
        assert!(e.contains("renaming into place"), "{e}");
        assert_eq!(std::fs::read_to_string(store.path().join("keep")).unwrap(), "x");
        assert_eq!(leftovers(dir.path()), vec!["state.json"]);
    }

    #[test]
    fn a_state_dir_that_cannot_be_created_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, "").unwrap();
        let e = StateStore::new(file.join("state"))
            .save(&sample())
            .unwrap_err()
            .to_string();
        assert!(e.contains("creating the directory"), "{e}");
    }

    #[test]
    fn an_unreadable_or_unmovable_corrupt_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StateStore::new(dir.path());
        // A state file that is a directory cannot be read as one.
        std::fs::create_dir(store.path()).unwrap();
        let l = store.load();
        assert!(l.problem.unwrap().contains("cannot read"));
        let e = store.save(&sample()).unwrap_err().to_string();
        assert!(e.contains("not overwriting"), "{e}");
        assert!(store.path().is_dir());
    }

    #[test]
    fn overlay_applies_what_was_set_and_keeps_the_rest_from_the_config() {
        let (_, specs) = crate::config::Config::parse(
            "t.toml",
            "[source]\nkind = \"tone\"\n[[output]]\nname = \"kitchen\"\nkind = \"sim\"\noffset_ms = 3\ncalibration_ms = 2\n[[output]]\nname = \"hall\"\nkind = \"sim\"\nvolume = 70\n",
        )
        .unwrap();
        let s = sample();
        let (k, on) = s.overlay(&specs[0]);
        assert_eq!(
            (k.offset_ns, k.volume_pct, k.calibration_ns, on),
            (-12_500_000, 40, 2_000_000, false)
        );
        let (h, on) = s.overlay(&specs[1]);
        assert_eq!(h, specs[1]);
        assert!(on);
    }
}
