//! Erasure of one person's data (GDPR Art. 17, "right to erasure"): a `forget` command removes
//! a lead's state, and the erasure is remembered by a SHA-256 hash of the lead id with its time,
//! so that an older event of that lead, read again after a restore or published again, never
//! brings the profile back. Pure: the service stores and ships the records (docs/SPEC.md §7).

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use crate::leads::LeadTable;
use crate::time::Micros;

/// Header that marks a control message on an input topic.
pub const COMMAND_HEADER: &str = "leadscore.command";
/// Value of [`COMMAND_HEADER`] for an erasure; the message key is the lead id.
pub const FORGET: &str = "forget";

/// SHA-256 of a lead id: how erasures refer to a lead without keeping its id.
pub type LeadHash = [u8; 32];

/// The hash of a lead id.
pub fn hash(lead_id: &str) -> LeadHash {
    Sha256::digest(lead_id.as_bytes()).into()
}

/// The erasures of one partition: lead hash → time up to which the lead's events are refused.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Erasures {
    at: HashMap<LeadHash, Micros>,
    /// Changed since the last [`Erasures::take_changed`]: the new time, or `None` when expired.
    changed: BTreeMap<LeadHash, Option<Micros>>,
}

impl Erasures {
    /// Forgets a lead: its state leaves `leads`, and its events dated up to `at` or up to its
    /// clock (whichever is later) are refused from now on. True when the lead had state.
    pub fn forget(&mut self, leads: &mut LeadTable, lead_id: &str, at: Micros) -> bool {
        let removed = leads.remove(lead_id);
        let clock = removed.as_ref().and_then(|st| st.clock()).unwrap_or(at);
        let h = hash(lead_id);
        let until = at
            .max(clock)
            .max(self.at.get(&h).copied().unwrap_or(Micros::MIN));
        self.at.insert(h, until);
        self.changed.insert(h, Some(until));
        removed.is_some()
    }

    /// Is an event of `lead_id` dated `ts` refused because the lead was erased?
    #[inline]
    pub fn blocks(&self, lead_id: &str, ts: Micros) -> bool {
        !self.at.is_empty()
            && self
                .at
                .get(&hash(lead_id))
                .is_some_and(|until| ts <= *until)
    }

    /// [`Erasures::blocks`] for the event path: a SHA-256 only when it can matter. A lead in
    /// `leads` whose clock is before `ts` is either never erased or was re-created by an event
    /// dated after its erasure, so an event after that clock cannot be refused — the common
    /// in-order case costs one table lookup, and nothing while the partition has no erasure.
    #[inline]
    pub fn blocks_event(&self, leads: &LeadTable, lead_id: &str, ts: Micros) -> bool {
        if self.at.is_empty() {
            return false;
        }
        let after_clock = leads
            .get(lead_id)
            .and_then(|st| st.clock())
            .is_some_and(|clock| ts > clock);
        !after_clock && self.blocks(lead_id, ts)
    }

    /// Drops erasures recorded for times before `before` (their retention passed); returns how
    /// many.
    pub fn expire(&mut self, before: Micros) -> usize {
        let old: Vec<LeadHash> = self
            .at
            .iter()
            .filter(|(_, at)| **at < before)
            .map(|(h, _)| *h)
            .collect();
        for h in &old {
            self.at.remove(h);
            self.changed.insert(*h, None);
        }
        old.len()
    }

    /// Restores one stored erasure record (`None`: expired).
    pub fn restore(&mut self, h: LeadHash, at: Option<Micros>) {
        match at {
            Some(at) => self.at.insert(h, at),
            None => self.at.remove(&h),
        };
    }

    /// Records changed since the last call, to be stored and sent to the changelog.
    pub fn take_changed(&mut self) -> Vec<(LeadHash, Option<Micros>)> {
        std::mem::take(&mut self.changed).into_iter().collect()
    }

    /// Every erasure, for a full store rewrite.
    pub fn iter(&self) -> impl Iterator<Item = (&LeadHash, &Micros)> {
        self.at.iter()
    }

    /// Number of erasures remembered.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// No erasures?
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }
}

/// Changelog key of an erasure record: a 0xFF byte (never the first byte of UTF-8 text, so
/// never a lead id) followed by the lead hash.
pub fn changelog_key(h: &LeadHash) -> [u8; 33] {
    let mut k = [0xFF; 33];
    k[1..].copy_from_slice(h);
    k
}

/// The lead hash of a changelog key made by [`changelog_key`].
pub fn from_changelog_key(key: &[u8]) -> Option<LeadHash> {
    match key {
        [0xFF, rest @ ..] if rest.len() == 32 => rest.try_into().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::LeadState;

    #[test]
    fn a_forgotten_lead_refuses_its_older_events_only() {
        let mut leads = LeadTable::new();
        leads.insert("ann", LeadState::new());
        let mut e = Erasures::default();
        assert!(!e.blocks("ann", 5));
        assert!(e.forget(&mut leads, "ann", 100));
        assert!(leads.get("ann").is_none());
        assert!(e.blocks("ann", 100) && e.blocks("ann", 1));
        assert!(!e.blocks("ann", 101) && !e.blocks("bob", 1));
        assert_eq!(e.take_changed(), vec![(hash("ann"), Some(100))]);
        assert!(!e.forget(&mut leads, "ann", 50), "no state the second time");
        assert!(
            e.blocks("ann", 100),
            "an earlier request never shortens an erasure"
        );
        assert_eq!(e.expire(101), 1);
        assert!(!e.blocks("ann", 1));
        assert_eq!(e.take_changed(), vec![(hash("ann"), None)]);
    }

    #[test]
    fn the_event_path_check_agrees_with_the_full_one() {
        let mut leads = LeadTable::new();
        let mut e = Erasures::default();
        assert!(
            !e.blocks_event(&leads, "ann", 1),
            "no erasure in the partition"
        );
        e.forget(&mut leads, "ann", 100);
        assert!(e.blocks_event(&leads, "ann", 100) && !e.blocks_event(&leads, "ann", 101));
        let mut newer = LeadState::new();
        newer.clock = 200;
        leads.insert("ann", newer);
        assert!(
            !e.blocks_event(&leads, "ann", 201),
            "after the re-created lead's clock"
        );
        assert!(
            e.blocks_event(&leads, "ann", 50),
            "a late event older than the erasure"
        );
        assert!(
            !e.blocks_event(&leads, "ann", 150),
            "late, but after the erasure"
        );
    }

    #[test]
    fn changelog_keys_never_collide_with_lead_ids() {
        let h = hash("ann");
        let k = changelog_key(&h);
        assert!(std::str::from_utf8(&k).is_err());
        assert_eq!(from_changelog_key(&k), Some(h));
        assert_eq!(from_changelog_key(b"ann"), None);
    }
}
