//! Work on the whole state between batches: retention (evicting idle, negligible leads) and
//! rules reloads (SIGHUP).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use metrics::counter;
use tracing::{error, info};

use crate::config::Config;
use crate::engine::Engine;
use crate::service::shared::Shared;
use crate::state::LeadState;

/// Eviction settings.
pub struct Retention {
    /// Leads whose |score| decayed below this ...
    pub floor: f64,
    /// ... and whose clock is this far (µs, event time) behind the partition's newest are
    /// evicted.
    pub ttl: i64,
    /// How often each partition is swept.
    pub every: Duration,
    /// The partition clock never counts as further ahead of the wall clock than this (µs).
    pub max_skew: i64,
    /// Erasures older than this (µs, wall clock) are forgotten.
    pub erasure: i64,
}

impl Retention {
    /// The retention settings of a configuration.
    pub fn of(cfg: &Config) -> Result<Self> {
        Ok(Retention {
            floor: cfg.retention_floor,
            ttl: cfg.retention_ttl.as_micros() as i64,
            every: cfg.retention_sweep,
            max_skew: cfg.max_clock_skew.as_micros() as i64,
            erasure: cfg.erasure_retention.as_micros() as i64,
        })
    }
}

/// Evicts, per partition at most every `retention.every`, leads with no fit points that never
/// qualified, whose score decayed to the partition's newest lead clock is below the floor and
/// whose clock is more than the TTL behind it (event time, so replays and restarts evict alike).
/// The partition's newest clock is capped at the wall clock plus `max_skew`: one event dated
/// far ahead, had it got through, could not evict everyone.
pub fn sweep(shared: &Shared, retention: &Retention) {
    let mut shards = shared.shards.lock().unwrap();
    let engine = shared.engine();
    for (p, shard) in shards.iter_mut() {
        if shard.last_sweep.elapsed() < retention.every {
            continue;
        }
        shard.last_sweep = Instant::now();
        let now = crate::time::now_micros();
        let newest = shard
            .leads
            .iter()
            .filter_map(|l| l.state.clock())
            .max()
            .unwrap_or(i64::MIN)
            .min(now.saturating_add(retention.max_skew));
        let gone = shard.leads.evict(|l| {
            let st = &l.state;
            st.fit() == 0.0
                && st.sequence() == 0
                && engine.engagement_at(st, newest).abs() < retention.floor
                && st.clock().is_some_and(|c| newest - c > retention.ttl)
        });
        let expired = shard.erasures.expire(now.saturating_sub(retention.erasure));
        if expired > 0 {
            counter!(crate::service::metrics::ERASURES_EXPIRED_TOTAL.name)
                .increment(expired as u64);
        }
        if !gone.is_empty() {
            counter!(crate::service::metrics::EVICTED_TOTAL.name).increment(gone.len() as u64);
            info!(
                partition = p,
                leads = gone.len(),
                "evicted idle, negligible leads"
            );
            shard.evicted.extend(gone);
        }
    }
}

/// SIGHUP: loads the rules file again. On success, every lead's state is carried over to the new
/// rules by stable rule keys (accumulated engagement kept, accumulators of removed rules
/// dropped, fit re-evaluated; SPEC §4 "reload") and marked changed so the next checkpoint
/// persists it; new points apply to events scored from then on. A file that does not load
/// leaves the previous rules in force.
pub fn reload_rules(cfg: &Config, shared: &Shared) {
    let old = shared.engine();
    let new = match crate::rules_file::load(&cfg.rules) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            counter!(crate::service::metrics::RULES_RELOADS_TOTAL.name, "result" => "failed")
                .increment(1);
            error!(
                rules = %old.rules().version,
                "rules reload failed, keeping the rules in force: {e}"
            );
            return;
        }
    };
    let mut shards = shared.shards.lock().unwrap();
    let mut leads = 0usize;
    let mut buf = Vec::with_capacity(256);
    for shard in shards.values_mut() {
        shard.leads.update_all(|st| {
            buf.clear();
            st.encode(old.rules(), &mut buf);
            *st = LeadState::decode(&new, &buf).expect("a state encoded just now decodes");
            leads += 1;
        });
    }
    let version = new.version.clone();
    *shared.engine.write().unwrap() = Engine::new(new);
    drop(shards);
    counter!(crate::service::metrics::RULES_RELOADS_TOTAL.name, "result" => "ok").increment(1);
    info!(from = %old.rules().version, to = %version, leads, "rules reloaded");
}
