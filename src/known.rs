//! The machines this machine knows (seen on the bus as a sender or recipient, sent to, or with a
//! published key) and the recipient typo check built on them: `--to linx` when `linux` is known is
//! refused with "did you mean linux?" before anything is posted.

use crate::config::Settings;
use std::collections::BTreeSet;

/// Every machine name known locally, this machine's included. Reads only local state (no network).
pub fn machines(settings: &Settings) -> BTreeSet<String> {
    let me = &settings.machine;
    let data = &settings.dirs.data;
    let mut out = BTreeSet::from([me.clone()]);
    if data.join("state.sqlite").exists()
        && let Ok(state) = crate::state::State::open(data)
    {
        for r in state.all_received(me).unwrap_or_default() {
            out.insert(r.message.from.clone());
        }
        if let Ok(keys) = crate::crypto::keys::KeyStore::new(&state, me).and_then(|k| k.all()) {
            out.extend(keys.into_iter().map(|k| k.machine));
        }
    }
    for job in crate::outbox::Outbox::new(data).history().unwrap_or_default() {
        out.insert(job.to);
    }
    out.remove(handoff_channels::bus::BROADCAST);
    out.retain(|m| crate::config::validate_machine(m).is_ok());
    out
}

/// Edits allowed between a typed name and a known one for the typed name to count as a typo: none for
/// one- or two-letter names (`a` and `b` are different machines), one up to five letters, two beyond.
fn allowed_edits(name: &str) -> usize {
    match name.chars().count() {
        0..=2 => 0,
        3..=5 => 1,
        _ => 2,
    }
}

/// Levenshtein distance over characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known machine `name` is probably a typo of: one differing only in case, else the closest within
/// the allowed edits. `None` when `name` is known itself or resembles nothing.
pub fn did_you_mean<'a>(name: &str, known: &'a BTreeSet<String>) -> Option<&'a str> {
    if known.contains(name) {
        return None;
    }
    if let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(name)) {
        return Some(k);
    }
    known
        .iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= allowed_edits(name))
        .min()
        .map(|(_, k)| k.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_near_misses_are_typos_short_and_distant_names_are_not() {
        let known: BTreeSet<String> = ["linux", "mac-studio", "a"].iter().map(|s| s.to_string()).collect();
        assert_eq!(did_you_mean("linx", &known), Some("linux"));
        assert_eq!(did_you_mean("LINUX", &known), Some("linux"));
        assert_eq!(did_you_mean("mac-stuido", &known), Some("mac-studio"));
        assert_eq!(did_you_mean("linux", &known), None, "known exactly");
        assert_eq!(did_you_mean("b", &known), None, "one letter apart is another machine when names are that short");
        assert_eq!(did_you_mean("windows-box", &known), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
