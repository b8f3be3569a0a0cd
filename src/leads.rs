//! The in-memory table of lead states, keyed for speed.
//!
//! The hot path looks a lead up once per event. Keying the map by the lead id `String` costs a
//! cache miss on the key's heap bytes for every comparison; instead the key is a 128-bit keyed
//! hash of the id (two independently, randomly seeded ahash values: no practical collisions,
//! and not predictable by someone crafting lead ids), and the id itself is stored beside the
//! state for output and persistence.
//!
//! The leads live in a dense slab and a small index maps keys to slots: the index (about 40
//! bytes a lead) stays in cache where the states (over 300 bytes a lead) do not, so a batch
//! can look up all its leads first and have their states fetched from memory in parallel
//! ([`LeadTable::prefetch`]) before any is applied.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use crate::state::LeadState;

/// One lead: its id and its scoring state.
#[derive(Debug, Clone, PartialEq)]
pub struct Lead {
    /// The lead id.
    pub id: Box<str>,
    /// Its state.
    pub state: LeadState,
    /// Its key in the index.
    key: u128,
    /// Changed since the last [`LeadTable::take_dirty`].
    dirty: bool,
    /// The table's epoch when the lead was last used (for [`LeadTable::shed`]).
    used: u32,
}

/// A lead's place in the table, found ahead of its use ([`LeadTable::prefetch`]).
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    key: u128,
    index: Option<u32>,
}

/// Lead id → state, remembering which leads changed since the last checkpoint.
#[derive(Debug, Clone)]
pub struct LeadTable {
    index: HashMap<u128, u32, PassThrough>,
    slab: Vec<Lead>,
    /// Track changed leads (the service's checkpoints need it; replay does not).
    track: bool,
    dirty: Vec<u128>,
    /// Bumped by [`LeadTable::next_epoch`]; leads used in older epochs are shed first.
    epoch: u32,
    k1: ahash::RandomState,
    k2: ahash::RandomState,
}

impl Default for LeadTable {
    fn default() -> Self {
        LeadTable {
            index: HashMap::default(),
            slab: Vec::new(),
            track: false,
            dirty: Vec::new(),
            epoch: 0,
            k1: ahash::RandomState::new(),
            k2: ahash::RandomState::new(),
        }
    }
}

impl LeadTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table that remembers which leads change (for checkpoints).
    pub fn tracked() -> Self {
        LeadTable {
            track: true,
            ..Self::default()
        }
    }

    /// An empty table with room for `n` leads (no rehashing until then).
    pub fn with_capacity(n: usize) -> Self {
        LeadTable {
            index: HashMap::with_capacity_and_hasher(n, PassThrough),
            slab: Vec::with_capacity(n),
            ..Self::default()
        }
    }

    #[inline]
    fn key(&self, id: &str) -> u128 {
        ((self.k1.hash_one(id) as u128) << 64) | self.k2.hash_one(id) as u128
    }

    /// Looks a lead up ahead of its use and asks the CPU to start loading its state, so that
    /// the lookups of a batch overlap their memory latency; pass the slot to
    /// [`LeadTable::get_or_insert_at`]. Valid until a lead is removed.
    #[inline]
    pub fn prefetch(&self, id: &str) -> Slot {
        let key = self.key(id);
        let index = self.index.get(&key).copied();
        if let Some(i) = index {
            prefetch_read(&self.slab[i as usize]);
        }
        Slot { key, index }
    }

    /// The state of a lead for changing it, created (armed, empty) if the lead is new; the
    /// lead is marked changed.
    #[inline]
    pub fn get_or_insert(&mut self, id: &str) -> &mut LeadState {
        let slot = Slot {
            key: self.key(id),
            index: None,
        };
        self.get_or_insert_at(slot, id)
    }

    /// [`LeadTable::get_or_insert`] at a slot found by [`LeadTable::prefetch`] (no removal
    /// since; a lead inserted since is found again).
    #[inline]
    pub fn get_or_insert_at(&mut self, slot: Slot, id: &str) -> &mut LeadState {
        let i = match slot.index.or_else(|| self.index.get(&slot.key).copied()) {
            Some(i) => i as usize,
            None => {
                let i = self.slab.len();
                self.index.insert(slot.key, i as u32);
                self.slab.push(Lead {
                    id: id.into(),
                    state: LeadState::new(),
                    key: slot.key,
                    dirty: false,
                    used: self.epoch,
                });
                i
            }
        };
        let lead = &mut self.slab[i];
        lead.used = self.epoch;
        if self.track && !lead.dirty {
            lead.dirty = true;
            self.dirty.push(lead.key);
        }
        &mut lead.state
    }

    fn find(&self, key: u128) -> Option<&Lead> {
        self.index.get(&key).map(|&i| &self.slab[i as usize])
    }

    /// The leads changed since the last call (each once; none unless [`LeadTable::tracked`]),
    /// and forgets them as changed.
    pub fn take_dirty(&mut self) -> Vec<&Lead> {
        let keys = std::mem::take(&mut self.dirty);
        for k in &keys {
            if let Some(&i) = self.index.get(k) {
                self.slab[i as usize].dirty = false;
            }
        }
        keys.iter().filter_map(|k| self.find(*k)).collect()
    }

    /// Rewrites every state in place (e.g. for new rules) and marks every lead changed.
    pub fn update_all(&mut self, mut f: impl FnMut(&mut LeadState)) {
        for lead in self.slab.iter_mut() {
            f(&mut lead.state);
            if self.track && !lead.dirty {
                lead.dirty = true;
                self.dirty.push(lead.key);
            }
        }
    }

    /// How many leads changed since the last [`LeadTable::take_dirty`].
    pub fn dirty_count(&self) -> usize {
        self.dirty.len()
    }

    /// The state of a lead, if known.
    pub fn get(&self, id: &str) -> Option<&LeadState> {
        self.find(self.key(id)).map(|l| &l.state)
    }

    /// Replaces (or inserts) a lead's state, not marked changed (restores use this).
    pub fn insert(&mut self, id: &str, state: LeadState) {
        let key = self.key(id);
        let lead = Lead {
            id: id.into(),
            state,
            key,
            dirty: false,
            used: self.epoch,
        };
        match self.index.get(&key) {
            Some(&i) => self.slab[i as usize] = lead,
            None => {
                self.index.insert(key, self.slab.len() as u32);
                self.slab.push(lead);
            }
        }
    }

    /// Is the lead in the table?
    pub fn contains(&self, id: &str) -> bool {
        self.index.contains_key(&self.key(id))
    }

    /// Starts a new epoch of use (the service does at every checkpoint).
    pub fn next_epoch(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
    }

    /// Drops unchanged leads, least recently used first, until at most `keep` remain (changed
    /// ones are kept); returns how many were dropped. The caller keeps them elsewhere (the
    /// service's local store holds every lead written by a checkpoint).
    pub fn shed(&mut self, keep: usize) -> usize {
        let excess = self.slab.len().saturating_sub(keep);
        if excess == 0 {
            return 0;
        }
        let epoch = self.epoch;
        let age = |l: &Lead| epoch.wrapping_sub(l.used);
        let mut ages: Vec<u32> = self.slab.iter().filter(|l| !l.dirty).map(age).collect();
        if ages.is_empty() {
            return 0;
        }
        // The `excess`-th oldest age: everything older goes, and enough of that age to reach it.
        let cut = excess.min(ages.len()) - 1;
        let (_, &mut cut_age, _) = ages.select_nth_unstable_by(cut, |a, b| b.cmp(a));
        let above = ages.iter().filter(|a| **a > cut_age).count();
        let mut at_cut = excess.min(ages.len()) - above;
        let before = self.slab.len();
        self.retain(|l| {
            let a = age(l);
            if l.dirty || a < cut_age {
                true
            } else if a > cut_age {
                false
            } else if at_cut > 0 {
                at_cut -= 1;
                false
            } else {
                true
            }
        });
        before - self.slab.len()
    }

    /// Removes a lead.
    pub fn remove(&mut self, id: &str) -> Option<LeadState> {
        let i = self.index.remove(&self.key(id))? as usize;
        let lead = self.slab.swap_remove(i);
        if let Some(moved) = self.slab.get(i) {
            self.index.insert(moved.key, i as u32);
        }
        Some(lead.state)
    }

    /// Number of leads.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// No leads?
    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// All leads, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Lead> {
        self.slab.iter()
    }

    /// Keeps the leads for which `f` holds (in one pass; kept leads move down the slab).
    pub fn retain(&mut self, mut f: impl FnMut(&Lead) -> bool) {
        let index = &mut self.index;
        let mut kept = 0u32;
        self.slab.retain(|l| {
            if f(l) {
                index.insert(l.key, kept);
                kept += 1;
                true
            } else {
                index.remove(&l.key);
                false
            }
        });
    }

    /// Removes the leads for which `f` holds and returns their ids.
    pub fn evict(&mut self, mut f: impl FnMut(&Lead) -> bool) -> Vec<Box<str>> {
        let mut gone = Vec::new();
        self.retain(|l| {
            if f(l) {
                gone.push(l.id.clone());
                false
            } else {
                true
            }
        });
        gone
    }

    /// Leads sorted by id.
    pub fn sorted(&self) -> Vec<&Lead> {
        let mut v: Vec<&Lead> = self.slab.iter().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }
}

/// Asks the CPU to start loading every cache line of a lead (a hint; no effect where the
/// architecture has no prefetch instruction).
#[inline(always)]
fn prefetch_read(lead: &Lead) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = (lead as *const Lead).cast::<i8>();
        let mut offset = 0;
        while offset < std::mem::size_of::<Lead>() {
            // SAFETY: prefetching is a hint and never faults; the lines are those of a live lead.
            unsafe { _mm_prefetch(p.wrapping_add(offset), _MM_HINT_T0) };
            offset += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = lead;
}

/// The keys are already uniformly random: use their low bits as the bucket hash.
#[derive(Debug, Clone, Copy, Default)]
struct PassThrough;

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;
    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

#[derive(Debug, Clone, Copy)]
struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u128 keys are hashed; this fallback keeps the trait total.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ *b as u64;
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_ids_get_distinct_states() {
        let mut t = LeadTable::tracked();
        t.get_or_insert("a").sequence = 1;
        t.get_or_insert("b").sequence = 2;
        assert_eq!(t.get("a").unwrap().sequence, 1);
        assert_eq!(t.get("b").unwrap().sequence, 2);
        assert!(t.get("c").is_none());
        assert_eq!(t.len(), 2);
        let ids: Vec<&str> = t.sorted().iter().map(|l| &*l.id).collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(t.remove("a").is_some());
        assert_eq!(t.len(), 1);
        let dirty: Vec<&str> = t.take_dirty().iter().map(|l| &*l.id).collect();
        assert_eq!(dirty, ["b"], "removed leads are not reported");
        assert!(t.take_dirty().is_empty());
        t.get_or_insert("b");
        t.get_or_insert("b");
        t.insert("c", LeadState::new());
        assert_eq!(t.dirty_count(), 1);
    }

    #[test]
    fn shedding_drops_the_least_recently_used_unchanged_leads() {
        let mut t = LeadTable::tracked();
        for id in ["a", "b", "c"] {
            t.get_or_insert(id);
        }
        t.take_dirty();
        t.next_epoch();
        t.get_or_insert("b");
        t.take_dirty();
        t.next_epoch();
        t.get_or_insert("d"); // changed, not yet checkpointed: never shed
        assert_eq!(t.shed(2), 2, "a and c (oldest), not d (changed)");
        assert!(t.contains("b") && t.contains("d"));
        assert_eq!(t.shed(0), 1, "b; d stays while changed");
        assert!(t.contains("d"));
        assert_eq!(t.shed(5), 0);
    }
}
