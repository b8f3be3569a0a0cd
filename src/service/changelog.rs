//! The state changelog: a compacted topic `<group>-state-changelog`, partitioned like the input,
//! carrying each changed lead's encoded state (key = lead id; a tombstone when evicted) with the
//! input offsets it reflects in the `leadscore.offsets` header. A partition that moves to an
//! instance without its local files is restored from here.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Result;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::Offset;
use tracing::{info, warn};

use crate::config::Config;
use crate::erasure::{from_changelog_key, Erasures};
use crate::kafka::for_each_header;
use crate::leads::LeadTable;
use crate::rules::Rules;
use crate::service::restore::read_partition;
use crate::service::store::Offsets;
use crate::state::LeadState;

/// Header carrying the input offsets a record's state reflects.
pub const OFFSETS_HEADER: &str = "leadscore.offsets";

/// The changelog topic of a consumer group.
pub fn topic(group: &str) -> String {
    format!("{group}-state-changelog")
}

/// `topic=offset;topic2=offset2` (topic names cannot contain `=` or `;`).
pub fn encode_offsets(o: &Offsets) -> String {
    o.iter()
        .map(|(t, n)| format!("{t}={n}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// Parses [`encode_offsets`].
pub fn decode_offsets(s: &str) -> Option<Offsets> {
    let mut o = Offsets::new();
    for part in s.split(';').filter(|p| !p.is_empty()) {
        let (t, n) = part.split_once('=')?;
        o.insert(t.to_string(), n.parse().ok()?);
    }
    Some(o)
}

/// Does a record written at `at` reflect no input beyond `resume`?
fn within(at: &Offsets, resume: &Offsets) -> bool {
    at.iter()
        .all(|(t, n)| *n <= resume.get(t).copied().unwrap_or(0))
}

/// How far into the input a record's state reflects: the offsets of one partition only grow
/// along a writer's timeline, so their sum orders two records of the same lead.
fn progress(at: &Offsets) -> i64 {
    at.values().sum()
}

/// Restores a partition from the changelog: per lead, the record that reflects the most input
/// among those that reflect no input beyond `resume` (records of a checkpoint whose commit did
/// not happen are skipped; a late record of an older state, e.g. from a member that lost the
/// partition, never replaces a newer one); erasure records likewise. `None` when the changelog
/// partition is empty.
pub fn restore(
    cfg: &Config,
    rules: &Rules,
    partition: i32,
    resume: &Offsets,
    cancel: &AtomicBool,
) -> Result<Option<(LeadTable, Erasures)>> {
    let topic = topic(&cfg.group_id);
    let started = Instant::now();
    let mut into = Restoring {
        leads: LeadTable::tracked(),
        erasures: Erasures::default(),
        seen: HashMap::new(),
        skipped: 0,
        stale: 0,
    };
    let records = read_partition(
        cfg,
        &topic,
        partition,
        Offset::Beginning,
        None,
        cancel,
        |m| into.apply(rules, partition, resume, m),
    )?;
    if records == 0 {
        return Ok(None);
    }
    info!(
        partition,
        records,
        skipped = into.skipped,
        stale = into.stale,
        leads = into.leads.len(),
        erasures = into.erasures.len(),
        "partition state restored from the changelog in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    Ok(Some((into.leads, into.erasures)))
}

/// A changelog restore in progress.
struct Restoring {
    leads: LeadTable,
    erasures: Erasures,
    /// Key → progress of the record applied for it.
    seen: HashMap<Vec<u8>, i64>,
    skipped: u64,
    stale: u64,
}

impl Restoring {
    /// Applies one changelog record unless it reflects input beyond `resume` or less than the
    /// record already applied for its key.
    fn apply(&mut self, rules: &Rules, partition: i32, resume: &Offsets, m: &BorrowedMessage<'_>) {
        let Some(key) = m.key() else { return };
        let mut header = None;
        for_each_header(m, |k, v| {
            if k == OFFSETS_HEADER.as_bytes() {
                header = v;
            }
        });
        let at = header
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(decode_offsets);
        let Some(at) = at else {
            warn!(
                partition,
                "changelog record without offsets header: skipped"
            );
            return;
        };
        if !within(&at, resume) {
            self.skipped += 1;
            return;
        }
        let reach = progress(&at);
        match self.seen.get(key) {
            Some(&prev) if prev > reach => {
                self.stale += 1;
                return;
            }
            _ => {
                self.seen.insert(key.to_vec(), reach);
            }
        }
        if let Some(h) = from_changelog_key(key) {
            let at = m
                .payload()
                .and_then(|p| Some(i64::from_be_bytes(p.try_into().ok()?)));
            self.erasures.restore(h, at);
            return;
        }
        let Ok(key) = std::str::from_utf8(key) else {
            return;
        };
        match m.payload() {
            None => {
                self.leads.remove(key);
            }
            Some(bytes) => match LeadState::decode(rules, bytes) {
                Ok(st) => self.leads.insert(key, st),
                Err(e) => warn!(partition, "changelog record for a lead: {e}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_and_compare() {
        let o: Offsets = [("a".to_string(), 5), ("b-c.d".to_string(), 0)].into();
        assert_eq!(decode_offsets(&encode_offsets(&o)), Some(o.clone()));
        assert!(within(&o, &[("a".into(), 5), ("b-c.d".into(), 1)].into()));
        assert!(!within(&o, &[("a".into(), 4)].into()));
        assert!(progress(&[("a".into(), 5), ("b".into(), 2)].into()) > progress(&o));
        assert_eq!(decode_offsets("x"), None);
    }
}
