//! One input partition in the service: its lifecycle, its state, its positions, and the pure
//! decisions about it (where a newly assigned partition resumes, whether a fetched message is
//! applied). No I/O beyond the partition's own store handle.
//!
//! Lifecycle: **assigned** (the rebalance callback assigns it at its resume offsets and pauses
//! it) → **restoring** (the loop loads its state from the local store, the changelog or the
//! input) → **active** (resumed; messages are scored) → **revoking** (checkpointed unless the
//! assignment was lost, then dropped).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::erasure::Erasures;
use crate::leads::LeadTable;
use crate::rules::Rules;
use crate::service::store::{Offsets, PartitionStore};
use crate::state::LeadState;

/// Where a newly assigned partition's state comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Never processed by anyone: empty state.
    New,
    /// The local store is at least as recent as the group's committed offsets.
    Local,
    /// The changelog (or, when the changelog partition is empty, the input itself) up to the
    /// committed offsets.
    Changelog,
}

impl Source {
    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::New => "new",
            Source::Local => "local",
            Source::Changelog => "changelog",
        }
    }
}

/// How a newly assigned partition is restored and where consumption resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePlan {
    /// Where the state comes from.
    pub source: Source,
    /// Input topic → next offset to process (absent: nothing processed, start at the
    /// beginning).
    pub resume: Offsets,
    /// The group's committed offsets: where a changelog restore resumes when the local store
    /// turns out unreadable.
    pub committed: Offsets,
}

/// Decides how to restore a partition from the offsets its local store reflects and the offsets
/// the group committed. The local store wins when it covers every committed offset (it can be
/// ahead: under at_least_once it is written before the commit); otherwise the changelog is read
/// up to the committed offsets, so no state newer than the commit is ever used.
pub fn plan_restore(local: &Offsets, committed: &Offsets) -> RestorePlan {
    if local.is_empty() && committed.is_empty() {
        return RestorePlan {
            source: Source::New,
            resume: Offsets::new(),
            committed: Offsets::new(),
        };
    }
    let local_covers = !local.is_empty()
        && committed
            .iter()
            .all(|(t, o)| local.get(t).copied().unwrap_or(0) >= *o);
    if local_covers {
        RestorePlan {
            source: Source::Local,
            resume: local.clone(),
            committed: committed.clone(),
        }
    } else {
        RestorePlan {
            source: Source::Changelog,
            resume: committed.clone(),
            committed: committed.clone(),
        }
    }
}

/// Is a fetched message at `offset` new to a state that reflects everything before `next`?
/// Offsets need not be contiguous (transaction markers, compaction, retention): anything at or
/// past `next` is applied; only what the state already reflects is skipped (after a rewind).
pub fn is_new(next: Option<i64>, offset: i64) -> bool {
    next.is_none_or(|n| offset >= n)
}

/// One active partition: its leads, its durable store, leads evicted since the last
/// checkpoint, and when it was last swept for eviction.
pub struct Shard {
    /// The partition's leads.
    pub leads: LeadTable,
    /// The partition's local store.
    pub store: Arc<PartitionStore>,
    /// Leads evicted or erased since the last checkpoint (tombstones to write).
    pub evicted: ahash::AHashSet<Box<str>>,
    /// Leads erased (`forget`), by hash.
    pub erasures: Erasures,
    /// When retention last swept this partition.
    pub last_sweep: Instant,
    /// The store may hold leads that are not in memory (`max_leads_in_memory`): a lead missing
    /// from `leads` is looked up there before it counts as new.
    pub cold: bool,
}

impl Shard {
    /// A shard with restored leads and erasures (`cold`: the store holds more leads).
    pub fn new(leads: LeadTable, erasures: Erasures, store: PartitionStore, cold: bool) -> Self {
        Shard {
            leads,
            store: Arc::new(store),
            evicted: Default::default(),
            erasures,
            last_sweep: Instant::now(),
            cold,
        }
    }

    /// Makes sure a lead the store holds is in memory (read back if it was shed); returns
    /// whether it was read back. Only a lead written by a checkpoint can be cold, so its stored
    /// state is its current one; one evicted or erased since (tombstone pending) is new.
    pub fn read_back(&mut self, rules: &Rules, id: &str) -> anyhow::Result<bool> {
        if !self.only_in_store(id) {
            return Ok(false);
        }
        match self.store.get(rules, id)? {
            Some(state) => {
                self.leads.insert(id, state);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// A lead's state for reading: from memory, else (shed) from the store.
    pub fn lookup(
        &self,
        rules: &Rules,
        id: &str,
    ) -> anyhow::Result<Option<std::borrow::Cow<'_, LeadState>>> {
        if let Some(st) = self.leads.get(id) {
            return Ok(Some(std::borrow::Cow::Borrowed(st)));
        }
        if !self.only_in_store(id) {
            return Ok(None);
        }
        Ok(self.store.get(rules, id)?.map(std::borrow::Cow::Owned))
    }

    /// Can the lead's current state be in the store only? It was shed (the partition has cold
    /// leads and it is not in memory) and not evicted or erased since (tombstone pending).
    fn only_in_store(&self, id: &str) -> bool {
        self.cold && !self.leads.contains(id) && !self.evicted.contains(id)
    }

    /// The tombstones to write: evicted or erased leads not re-created since.
    pub fn take_tombstones(&mut self) -> Vec<Box<str>> {
        let leads = &self.leads;
        std::mem::take(&mut self.evicted)
            .into_iter()
            .filter(|id| !leads.contains(id))
            .collect()
    }

    /// Sheds unchanged leads beyond `keep` from memory (after a checkpoint wrote them to the
    /// store); returns how many.
    pub fn shed(&mut self, keep: usize) -> usize {
        let shed = self.leads.shed(keep);
        self.cold |= shed > 0;
        self.leads.next_epoch();
        shed
    }
}

/// Processed and committed positions (next offset to read) per (input topic index, partition).
/// Offsets are dirty while `next` differs from what the group is known to have committed; only
/// a successful commit (its callback) updates `committed`.
#[derive(Debug, Default)]
pub struct Positions {
    /// Next offset to process.
    pub next: BTreeMap<(usize, i32), i64>,
    /// Last offsets the broker confirmed as committed.
    pub committed: BTreeMap<(usize, i32), i64>,
}

impl Positions {
    /// Has anything been processed since the last confirmed commit?
    pub fn dirty(&self) -> bool {
        self.next
            .iter()
            .any(|(k, n)| self.committed.get(k) != Some(n))
    }

    /// Forgets a partition (revoked).
    pub fn drop_partition(&mut self, p: i32) {
        self.next.retain(|(_, q), _| *q != p);
        self.committed.retain(|(_, q), _| *q != p);
    }

    /// The input offsets of one partition, by topic name.
    pub fn of_partition(&self, topics: &[String], p: i32) -> Offsets {
        self.next
            .iter()
            .filter(|((_, q), _)| *q == p)
            .map(|((t, _), n)| (topics[*t].clone(), *n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(pairs: &[(&str, i64)]) -> Offsets {
        pairs.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    #[test]
    fn a_partition_nobody_processed_starts_empty() {
        let plan = plan_restore(&o(&[]), &o(&[]));
        assert_eq!(plan.source, Source::New);
        assert!(plan.resume.is_empty());
    }

    #[test]
    fn a_local_store_at_or_ahead_of_the_commit_is_used() {
        let plan = plan_restore(&o(&[("a", 10), ("b", 5)]), &o(&[("a", 10), ("b", 3)]));
        assert_eq!(plan.source, Source::Local);
        assert_eq!(plan.resume, o(&[("a", 10), ("b", 5)]));
        // Nothing committed yet (the first commit was lost): the local store still covers it.
        assert_eq!(plan_restore(&o(&[("a", 4)]), &o(&[])).source, Source::Local);
    }

    #[test]
    fn a_local_store_behind_the_commit_is_never_used() {
        let plan = plan_restore(&o(&[("a", 10), ("b", 5)]), &o(&[("a", 11), ("b", 5)]));
        assert_eq!(plan.source, Source::Changelog);
        assert_eq!(plan.resume, o(&[("a", 11), ("b", 5)]));
        let lost_disk = plan_restore(&o(&[]), &o(&[("a", 3)]));
        assert_eq!(lost_disk.source, Source::Changelog);
        assert_eq!(lost_disk.resume, o(&[("a", 3)]));
    }

    #[test]
    fn gaps_in_offsets_are_applied_and_only_reflected_offsets_are_skipped() {
        assert!(is_new(None, 0));
        assert!(is_new(Some(5), 5));
        assert!(
            is_new(Some(5), 9),
            "a gap (transaction marker, compaction) is normal"
        );
        assert!(!is_new(Some(5), 4));
    }

    #[test]
    fn positions_are_dirty_until_a_commit_is_confirmed() {
        let mut p = Positions::default();
        assert!(!p.dirty());
        p.next.insert((0, 1), 7);
        assert!(p.dirty());
        p.committed.insert((0, 1), 7);
        assert!(!p.dirty());
        p.next.insert((0, 2), 1);
        p.drop_partition(2);
        assert!(!p.dirty());
        assert_eq!(p.of_partition(&["t".into()], 1), o(&[("t", 7)]));
    }
}
