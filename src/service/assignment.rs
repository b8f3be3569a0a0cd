//! The partition lifecycle in the pipeline: assigned → restoring → active → revoking.
//!
//! On assignment, the rebalance callback decides each partition's restore plan from its local
//! store and the group's committed offsets, assigns the partition **at** its resume offsets (no
//! seek after assign) and pauses it. A restore thread loads its state while the loop keeps
//! polling (the group stays alive, `/healthz` stays green). When the restore is done the
//! partition becomes active and is resumed. On revocation the partition is checkpointed —
//! unless the assignment was lost, in which case nothing is written or committed (another
//! member owns it now) — and dropped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use metrics::counter;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, RebalanceProtocol};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{error, info, warn};

use crate::config::{Config, Guarantee};
use crate::engine::Engine;
use crate::erasure::Erasures;
use crate::leads::LeadTable;
use crate::service::changelog;
use crate::service::checkpoint::Reached;
use crate::service::group::GroupContext;
use crate::service::partition::{plan_restore, RestorePlan, Shard, Source};
use crate::service::pipeline::Pipeline;
use crate::service::restore::rebuild_from_input;
use crate::service::shared::Shared;
use crate::service::store::{Offsets, PartitionStore};

/// How long an assignment waits for the group's committed offsets: longer than the
/// transaction timeout of a previous owner that died mid-transaction.
const COMMITTED_WAIT: Duration = Duration::from_secs(90);

/// A partition being restored on its own thread.
pub struct Restoring {
    plan: RestorePlan,
    cancel: Arc<AtomicBool>,
    task: JoinHandle<Result<Restored>>,
}

/// The distinct partition numbers of a list.
fn partitions_of(tpl: &TopicPartitionList) -> Vec<i32> {
    let mut parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
    parts.sort_unstable();
    parts.dedup();
    parts
}

impl Pipeline {
    /// Rebalance: partitions assigned. Plans their restores, assigns them at their resume
    /// offsets, pauses them until restored.
    pub fn on_assign(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        tpl: &mut TopicPartitionList,
    ) {
        counter!(crate::service::metrics::REBALANCES_TOTAL.name, "kind" => "assign").increment(1);
        let parts = partitions_of(tpl);
        info!(?parts, "partitions assigned");
        if let Err(e) = self.plan_restores(consumer, tpl, &parts) {
            self.shared.fail(format!(
                "cannot plan the restore of partitions {parts:?}: {e:#}"
            ));
        }
        let assigned = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
            _ => consumer.assign(tpl),
        };
        if let Err(e) = assigned.and_then(|()| consumer.pause(tpl)) {
            self.shared
                .fail(format!("cannot assign partitions {parts:?}: {e}"));
        }
        self.shared.pending.lock().unwrap().extend(&parts);
        self.shared.joined.store(true, Ordering::Release);
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Reads the committed offsets, opens each partition's store, decides its plan, sets the
    /// resume offsets on `tpl` and starts the restore threads.
    fn plan_restores(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        tpl: &mut TopicPartitionList,
        parts: &[i32],
    ) -> Result<()> {
        let committed = committed_offsets(consumer, tpl, &self.shared)?;
        let none = Offsets::new();
        let active = self.shared.shards.lock().unwrap().len();
        let in_memory = self.cfg.leads_per_partition(active + parts.len());
        for &p in parts {
            self.cancel_restore(p);
            let store = PartitionStore::open_or_quarantine(
                &self.cfg.state_dir,
                &self.cfg.group_id,
                p,
                self.cfg.store_cache_bytes,
            )?;
            let plan = plan_restore(&store.offsets()?, committed.get(&p).unwrap_or(&none));
            for topic in &self.cfg.input_topics {
                let at = plan
                    .resume
                    .get(topic)
                    .map_or(Offset::Beginning, |o| Offset::Offset(*o));
                tpl.set_partition_offset(topic, p, at)?;
            }
            self.start_restore(p, plan, store, in_memory);
        }
        Ok(())
    }

    fn start_restore(&mut self, p: i32, plan: RestorePlan, store: PartitionStore, limit: usize) {
        let cancel = Arc::new(AtomicBool::new(false));
        let (cfg, engine, job_plan, job_cancel) = (
            self.cfg.clone(),
            self.shared.engine(),
            plan.clone(),
            cancel.clone(),
        );
        let task = std::thread::Builder::new()
            .name(format!("restore-{p}"))
            .spawn(move || {
                restore_partition(&cfg, &engine, p, &job_plan, store, limit, &job_cancel)
            })
            .expect("a thread can be spawned");
        self.restoring.insert(p, Restoring { plan, cancel, task });
    }

    /// Installs the partitions whose restore finished and resumes them.
    pub fn finish_restores(&mut self, consumer: &BaseConsumer<GroupContext>) {
        let done: Vec<i32> = self
            .restoring
            .iter()
            .filter(|(_, r)| r.task.is_finished())
            .map(|(p, _)| *p)
            .collect();
        for p in done {
            let r = self.restoring.remove(&p).expect("listed above");
            match r.task.join().expect("a restore thread does not panic") {
                Ok(restored) => self.activate(consumer, p, &r.plan, restored),
                Err(e) => self
                    .shared
                    .fail(format!("restore of partition {p} failed: {e:#}")),
            }
        }
    }

    /// Restored: the partition's state goes live at its resume offsets and fetching resumes.
    fn activate(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        p: i32,
        plan: &RestorePlan,
        restored: Restored,
    ) {
        let Restored {
            leads,
            erasures,
            store,
            resume,
            cold,
        } = restored;
        for (topic, offset) in &resume {
            let t = self.topic_index(topic);
            self.positions.next.insert((t, p), *offset);
            self.positions.committed.insert((t, p), *offset);
        }
        if resume != plan.resume {
            // The local store was unreadable: consumption restarts where the changelog
            // restore left off, not where the partition was assigned.
            for topic in &self.cfg.input_topics {
                let at = resume
                    .get(topic)
                    .map_or(Offset::Beginning, |o| Offset::Offset(*o));
                if let Err(e) = consumer.seek(topic, p, at, Duration::from_secs(10)) {
                    self.shared.fail(format!("cannot seek {topic}/{p}: {e}"));
                }
            }
        }
        self.shared
            .shards
            .lock()
            .unwrap()
            .insert(p, Shard::new(leads, erasures, store, cold));
        self.shared.pending.lock().unwrap().retain(|x| *x != p);
        let mut tpl = TopicPartitionList::new();
        for topic in &self.cfg.input_topics {
            tpl.add_partition(topic, p);
        }
        if let Err(e) = consumer.resume(&tpl) {
            self.shared
                .fail(format!("cannot resume partition {p}: {e}"));
        }
    }

    /// Rebalance: partitions revoked. Checkpoints them (unless the assignment was lost: then
    /// another member already owns them and nothing may be written), drops their state and
    /// unassigns them.
    pub fn on_revoke(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        tpl: &mut TopicPartitionList,
    ) {
        counter!(crate::service::metrics::REBALANCES_TOTAL.name, "kind" => "revoke").increment(1);
        let parts = partitions_of(tpl);
        let lost = consumer.assignment_lost();
        info!(?parts, lost, "partitions revoked: releasing their state");
        let failed = if lost {
            counter!(crate::service::metrics::ASSIGNMENT_LOST_TOTAL.name).increment(1);
            warn!("assignment lost: nothing of partitions {parts:?} is written or committed");
            self.discard_open_transaction();
            None
        } else if self.abandon {
            None
        } else {
            self.checkpoint(consumer, Some(&parts), CommitMode::Sync, Reached::Applied)
                .err()
        };
        self.release(&parts);
        if let Some(e) = failed {
            error!("checkpoint on revoke failed, the next owner re-processes: {e}");
            self.on_checkpoint_error(consumer, e);
        }
        let unassigned = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
            _ => consumer.unassign(),
        };
        if let Err(e) = unassigned {
            warn!("unassign: {e}");
        }
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Forgets partitions: their state, positions and any restore in progress.
    fn release(&mut self, parts: &[i32]) {
        let shared = self.shared.clone();
        let mut shards = shared.shards.lock().unwrap();
        for &p in parts {
            shards.remove(&p);
            self.positions.drop_partition(p);
            self.cancel_restore(p);
        }
        drop(shards);
        self.shared
            .pending
            .lock()
            .unwrap()
            .retain(|p| !parts.contains(p));
    }

    /// Under exactly_once, after the assignment was lost: the open transaction carries outputs
    /// of partitions this member no longer owns; it is aborted, and a new one begun.
    fn discard_open_transaction(&mut self) {
        if self.guarantee() != Guarantee::ExactlyOnce {
            return;
        }
        if let Err(e) = self.abort_and_begin() {
            self.shared
                .fail(format!("cannot abort after losing the assignment: {e}"));
        }
    }

    /// Stops a restore in progress (its partition was revoked or is assigned anew) and waits
    /// for its thread, which holds the partition's store.
    fn cancel_restore(&mut self, p: i32) {
        if let Some(r) = self.restoring.remove(&p) {
            r.cancel.store(true, Ordering::Release);
            let _ = r.task.join();
        }
    }

    /// Stops every restore in progress.
    pub fn cancel_restores(&mut self) {
        let parts: Vec<i32> = self.restoring.keys().copied().collect();
        for p in parts {
            self.cancel_restore(p);
        }
    }
}

/// The group's committed offsets of the partitions in `tpl`, per partition.
fn committed_offsets(
    consumer: &BaseConsumer<GroupContext>,
    tpl: &TopicPartitionList,
    shared: &Shared,
) -> Result<BTreeMap<i32, Offsets>> {
    let mut query = TopicPartitionList::new();
    for e in tpl.elements() {
        query.add_partition(e.topic(), e.partition());
    }
    // Under read_committed, Kafka holds back offsets that a previous owner's open transaction
    // is about to commit (KIP-447, "unstable offsets") until it commits or times out
    // (`transaction.timeout.ms`): wait that long, then give up.
    let deadline = Instant::now() + COMMITTED_WAIT;
    let answer = loop {
        // Waiting here is work in progress, not a stall: liveness stays green.
        shared.beat();
        match consumer.committed_offsets(query.clone(), Duration::from_secs(10)) {
            Ok(answer) => break answer,
            Err(e) if Instant::now() < deadline => {
                warn!("committed offsets not available yet ({e}); a previous owner's transaction may still be open; retrying");
            }
            Err(e) => {
                return Err(e).context(format!(
                    "cannot read the group's committed offsets within {COMMITTED_WAIT:?}"
                ))
            }
        }
    };
    let mut out: BTreeMap<i32, Offsets> = BTreeMap::new();
    for e in answer.elements() {
        if let Offset::Offset(o) = e.offset() {
            out.entry(e.partition())
                .or_default()
                .insert(e.topic().to_string(), o);
        }
    }
    Ok(out)
}

/// A finished restore: the partition's leads, its store, and where consumption resumes.
pub struct Restored {
    leads: LeadTable,
    erasures: Erasures,
    store: PartitionStore,
    resume: Offsets,
    /// The store holds leads left out of memory (`max_leads_in_memory`).
    cold: bool,
}

/// Loads a partition's state as planned (on the restore thread), at most `limit` leads of it
/// into memory.
fn restore_partition(
    cfg: &Config,
    engine: &Engine,
    p: i32,
    plan: &RestorePlan,
    store: PartitionStore,
    limit: usize,
    cancel: &AtomicBool,
) -> Result<Restored> {
    let started = Instant::now();
    let rules = engine.rules().clone();
    let mut leads = LeadTable::tracked();
    let mut erasures = Erasures::default();
    let (mut store, mut source, mut resume) = (store, plan.source, plan.resume.clone());
    let mut cold = false;
    if source == Source::Local {
        match store.load(&rules, &mut leads, &mut erasures, limit) {
            Ok((_, left_out)) => cold = left_out,
            Err(e) => {
                store = store.quarantine(&format!("{e:#}"))?;
                (source, resume) = (Source::Changelog, plan.committed.clone());
            }
        }
    }
    let mut label = source.as_str();
    if source == Source::Changelog {
        (leads, erasures) = match changelog::restore(cfg, &rules, p, &resume, cancel)? {
            Some(restored) => restored,
            None => {
                label = "input";
                let until: Vec<(String, i64)> = resume.clone().into_iter().collect();
                rebuild_from_input(cfg, engine, p, &until, cancel)?
            }
        };
        store.replace_all(&rules, &leads, &erasures, &resume)?;
        cold = leads.shed(limit) > 0;
    }
    let secs = started.elapsed().as_secs_f64();
    counter!(crate::service::metrics::RESTORE_LEADS_TOTAL.name, "source" => label)
        .increment(leads.len() as u64);
    metrics::histogram!(crate::service::metrics::RESTORE_SECONDS.name).record(secs);
    info!(
        partition = p,
        source = label,
        leads = leads.len(),
        resume = %changelog::encode_offsets(&resume),
        "partition restored in {secs:.2}s ({:.0} leads/s)",
        leads.len() as f64 / secs.max(1e-9)
    );
    Ok(Restored {
        leads,
        erasures,
        store,
        resume,
        cold,
    })
}
