//! `bluebridge doctor`: does this machine have what the config's outputs need? [`facts::gather`] reads the
//! machine once into [`facts::MachineFacts`]; [`checks::check`] turns that and the config's [`checks::Needs`] into
//! findings, pure, so tests run it against faked machines; [`render`] prints them one per line.

pub mod checks;
pub mod facts;

pub use checks::{check, failed, Finding, Level, Needs};
pub use facts::{gather, MachineFacts};

/// The report as text: one finding per line (`ok`, `MISSING`, `warn`, `info`), its fix indented below
/// when it is missing or a warning.
pub fn render(findings: &[Finding]) -> String {
    let mut s = String::new();
    for f in findings {
        let tag = match f.level {
            Level::Ok => "ok     ",
            Level::Missing => "MISSING",
            Level::Warn => "warn   ",
            Level::Info => "info   ",
        };
        s.push_str(&format!("{tag} {}: {}\n", f.item, f.detail));
        if matches!(f.level, Level::Missing | Level::Warn) {
            if let Some(fix) = &f.fix {
                s.push_str(&format!("        fix: {fix}\n"));
            }
        }
    }
    let missing = findings.iter().filter(|f| f.level == Level::Missing).count();
    if missing == 0 {
        s.push_str("everything this config needs is there\n");
    } else {
        s.push_str(&format!("{missing} thing(s) this config needs are missing\n"));
    }
    s
}
