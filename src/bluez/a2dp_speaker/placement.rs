//! Automatic placement of A2DP speakers on adapters: the adapter carrying the fewest, up to a limit.

use super::Routes;
use std::collections::HashMap;

/// Why a speaker could not be placed on an adapter automatically.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// BlueZ lists no adapter.
    #[error("no Bluetooth adapter")]
    NoAdapter,
    /// Every adapter carries the configured maximum.
    #[error(
        "every adapter ({adapters}) already carries {max} A2DP speakers (bluetooth.max_a2dp_per_adapter = {max}); \
         add an adapter, raise the limit, or pin this speaker with `adapter = \"hciN\"`"
    )]
    Full {
        /// The adapters, comma-separated.
        adapters: String,
        /// The limit.
        max: usize,
    },
}

/// Automatic placement: the adapter carrying the fewest speakers (the first by name among equals), if it carries
/// fewer than `max`. `placed` counts speakers per adapter name (pinned ones included).
pub fn choose_adapter(
    adapters: &[String],
    placed: &HashMap<String, usize>,
    max: usize,
) -> Result<String, PlacementError> {
    let mut names: Vec<&String> = adapters.iter().collect();
    names.sort();
    let load = |n: &String| placed.get(n).copied().unwrap_or(0);
    let best = names.iter().min_by_key(|n| load(n)).ok_or(PlacementError::NoAdapter)?;
    if load(best) >= max {
        return Err(PlacementError::Full {
            adapters: names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", "),
            max,
        });
    }
    Ok((*best).clone())
}

/// Speakers per adapter, from the routes' device paths (`/org/bluez/hciN/dev_…`).
pub(super) fn placed_counts(routes: &Routes) -> HashMap<String, usize> {
    let mut placed = HashMap::new();
    for path in routes.lock().expect("routes lock").keys() {
        if let Some(adapter) = path.strip_prefix("/org/bluez/").and_then(|r| r.split('/').next()) {
            *placed.entry(adapter.to_string()).or_default() += 1;
        }
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::sync::mpsc;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn counts(v: &[(&str, usize)]) -> HashMap<String, usize> {
        v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    #[test]
    fn placement_spreads_speakers_and_keeps_the_limit() {
        /// Adapters, speakers already placed, limit, expected adapter (None: every adapter is full).
        type Case<'a> = (&'a [&'a str], &'a [(&'a str, usize)], usize, Option<&'a str>);
        let cases: &[Case] = &[
            (&["hci0"], &[], 2, Some("hci0")),
            (&["hci1", "hci0"], &[], 2, Some("hci0")), // first by name among equals
            (&["hci0", "hci1"], &[("hci0", 1)], 2, Some("hci1")),
            (&["hci0", "hci1"], &[("hci0", 1), ("hci1", 1)], 2, Some("hci0")),
            (&["hci0", "hci1"], &[("hci0", 2), ("hci1", 1)], 2, Some("hci1")),
            (&["hci0", "hci1"], &[("hci0", 2), ("hci1", 2)], 2, None),
            (&["hci0"], &[("hci0", 1)], 1, None),
            (&["hci0"], &[("hci0", 2)], 3, Some("hci0")),
            // Speakers pinned to an adapter that is gone still count nowhere else.
            (&["hci1"], &[("hci0", 5)], 2, Some("hci1")),
        ];
        for (adapters, placed, max, want) in cases {
            let got = choose_adapter(&names(adapters), &counts(placed), *max);
            match want {
                Some(a) => assert_eq!(got.as_deref(), Ok(*a), "{adapters:?} {placed:?} max {max}"),
                None => {
                    let e = got.unwrap_err();
                    assert!(matches!(e, PlacementError::Full { max: m, .. } if m == *max), "{e:?}");
                    let msg = e.to_string();
                    assert!(
                        msg.contains("bluetooth.max_a2dp_per_adapter") && msg.contains("hci0"),
                        "{msg}"
                    );
                }
            }
        }
        assert_eq!(choose_adapter(&[], &HashMap::new(), 2), Err(PlacementError::NoAdapter));
    }

    #[test]
    fn placement_counts_come_from_the_routes() {
        let routes: Routes = Arc::default();
        let (tx, _rx) = mpsc::unbounded_channel();
        for (i, p) in [
            "/org/bluez/hci0/dev_00_11",
            "/org/bluez/hci0/dev_00_12",
            "/org/bluez/hci1/dev_00_13",
        ]
        .iter()
        .enumerate()
        {
            routes.lock().unwrap().insert(p.to_string(), (i as u64, tx.clone()));
        }
        assert_eq!(placed_counts(&routes), counts(&[("hci0", 2), ("hci1", 1)]));
    }
}
