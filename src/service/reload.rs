//! The reload plan: which outputs a new config leaves alone, retunes in place, rebuilds, adds or removes.

use crate::output::OutputSpec;

/// What a reload does to the outputs, by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    /// Identical: left alone.
    pub unchanged: Vec<String>,
    /// Only the offset or volume changed: adjusted in place (no re-open, no resync beyond the offset's own).
    pub retuned: Vec<String>,
    /// Anything else changed: closed and opened again.
    pub rebuilt: Vec<String>,
    /// New.
    pub added: Vec<String>,
    /// Gone.
    pub removed: Vec<String>,
}

impl ReloadPlan {
    /// Compares the running outputs with a new config's.
    pub fn new(old: &[OutputSpec], new: &[OutputSpec]) -> Self {
        let mut plan = Self::default();
        for n in new {
            match old.iter().find(|o| o.name == n.name) {
                None => plan.added.push(n.name.clone()),
                Some(o) if o == n => plan.unchanged.push(n.name.clone()),
                Some(o) => {
                    let mut same = n.clone();
                    same.offset_ns = o.offset_ns;
                    same.volume_pct = o.volume_pct;
                    if &same == o {
                        plan.retuned.push(n.name.clone());
                    } else {
                        plan.rebuilt.push(n.name.clone());
                    }
                }
            }
        }
        plan.removed = old
            .iter()
            .filter(|o| !new.iter().any(|n| n.name == o.name))
            .map(|o| o.name.clone())
            .collect();
        plan
    }

    /// One line: what happens.
    pub fn summary(&self) -> String {
        let part = |what: &str, v: &[String]| (!v.is_empty()).then(|| format!("{what} {}", v.join(", ")));
        let parts: Vec<String> = [
            part("added", &self.added),
            part("removed", &self.removed),
            part("rebuilt", &self.rebuilt),
            part("retuned", &self.retuned),
            part("unchanged", &self.unchanged),
        ]
        .into_iter()
        .flatten()
        .collect();
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn specs(text: &str) -> Vec<OutputSpec> {
        Config::parse("t.toml", &format!("[source]\nkind = \"tone\"\n{text}"))
            .unwrap()
            .1
    }

    #[test]
    fn a_reload_plan_touches_only_what_changed() {
        let old = specs(
            "[[output]]\nname = \"same\"\nkind = \"sim\"\n\
             [[output]]\nname = \"tuned\"\nkind = \"sim\"\noffset_ms = 1\n\
             [[output]]\nname = \"rebuilt\"\nkind = \"sim\"\n\
             [[output]]\nname = \"gone\"\nkind = \"sim\"\n",
        );
        let new = specs(
            "[[output]]\nname = \"new\"\nkind = \"sim\"\n\
             [[output]]\nname = \"same\"\nkind = \"sim\"\n\
             [[output]]\nname = \"tuned\"\nkind = \"sim\"\noffset_ms = 2\nvolume = 50\n\
             [[output]]\nname = \"rebuilt\"\nkind = \"sim\"\nsim = { ppm = 20 }\n",
        );
        let plan = ReloadPlan::new(&old, &new);
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            plan,
            ReloadPlan {
                unchanged: v(&["same"]),
                retuned: v(&["tuned"]),
                rebuilt: v(&["rebuilt"]),
                added: v(&["new"]),
                removed: v(&["gone"]),
            }
        );
        assert_eq!(
            plan.summary(),
            "added new; removed gone; rebuilt rebuilt; retuned tuned; unchanged same"
        );
        assert_eq!(
            ReloadPlan::new(&old, &old).summary(),
            "unchanged same, tuned, rebuilt, gone"
        );
        // A changed channel map or calibration re-opens (the player takes them at construction).
        let cal = specs("[[output]]\nname = \"same\"\nkind = \"sim\"\ncalibration_ms = 3\n");
        assert_eq!(ReloadPlan::new(&old[..1], &cal).rebuilt, v(&["same"]));
    }
}
