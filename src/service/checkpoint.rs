//! The checkpoint, and what happens when it fails.
//!
//! A checkpoint (every `commit_interval`, on revoke, on shutdown):
//! 1. changed leads and evictions go to the changelog, tagged with the input offsets they
//!    reflect;
//! 2. the outputs become durable: under at_least_once the producer is flushed; under
//!    exactly_once the input offsets are added to the transaction and it is committed;
//! 3. only then are changed leads and offsets written to the local store, in one transaction;
//! 4. under at_least_once the offsets are committed (asynchronously; a commit counts only once
//!    its callback confirms it); under exactly_once the next transaction begins;
//! 5. with `max_leads_in_memory`, the least recently used leads beyond the budget leave memory
//!    (they are all in the store now; the next event of one reads it back).
//!
//! A crash between any two steps leaves a state that a restart resumes from without loss.
//! Failures are typed ([`CheckpointError`]) and [`CheckpointError::recovery`] decides, in one
//! place, between rewinding to the last durable checkpoint and exiting.

use std::time::{Duration, Instant};

use metrics::{counter, histogram};
use std::sync::Arc;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerGroupMetadata};
use rdkafka::producer::{Producer, PurgeConfig};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::config::Guarantee;
use crate::erasure::{self, Erasures, LeadHash};
use crate::leads::LeadTable;
use crate::service::changelog;
use crate::service::group::GroupContext;
use crate::service::pipeline::Pipeline;
use crate::service::producer::{self, make_producer, txn_call, OutputProducer, TxnErrorClass};
use crate::service::store::{Offsets, PartitionStore};
use crate::time::Micros;

/// Rewinds in a row, without a successful checkpoint in between, after which the service gives
/// up and exits non-zero (a poison pill would otherwise loop forever).
const MAX_REWINDS: u32 = 5;

/// Why a checkpoint did not complete.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Some output or changelog record was not acknowledged (at_least_once).
    #[error("outputs not delivered, offsets not committed: {0}")]
    Undelivered(String),
    /// The transaction was aborted (exactly_once): nothing of it is visible.
    #[error("transaction aborted: {0}")]
    Aborted(String),
    /// The assignment was lost: another member owns the partitions; nothing was written.
    #[error("assignment lost before the checkpoint; nothing written")]
    AssignmentLost,
    /// A producer call never returned (exactly_once): the producer is abandoned, so its open
    /// transaction is aborted by the broker (fenced at once when `instance_id` is set).
    #[error("producer stuck: {0}")]
    ProducerStuck(String),
    /// Fenced, fatal, or a failure after outputs became visible: only an exit is safe.
    #[error("{0}")]
    Fatal(String),
}

/// What the pipeline does about a failed checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Reload every partition from its local store (the last durable checkpoint) and consume
    /// again from there.
    Rewind,
    /// Replace the producer by a new one, then rewind.
    ReplaceProducer,
    /// Nothing: the revoke callback that follows releases the partitions.
    Nothing,
    /// Stop with a non-zero exit.
    Exit,
}

impl CheckpointError {
    /// The one place where a failure's kind decides the recovery.
    pub fn recovery(&self) -> Recovery {
        match self {
            CheckpointError::Undelivered(_) | CheckpointError::Aborted(_) => Recovery::Rewind,
            CheckpointError::ProducerStuck(_) => Recovery::ReplaceProducer,
            CheckpointError::AssignmentLost => Recovery::Nothing,
            CheckpointError::Fatal(_) => Recovery::Exit,
        }
    }

    fn from_txn((class, why): (TxnErrorClass, String)) -> Self {
        match class {
            TxnErrorClass::Abort => CheckpointError::Aborted(why),
            TxnErrorClass::Retry | TxnErrorClass::Fatal => CheckpointError::Fatal(why),
        }
    }
}

/// Which offsets a checkpoint may take as processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// Only what the pipeline applied. In a rebalance callback, `poll` may already have
    /// returned messages of the partitions that stay, which are applied after the callback:
    /// the consumer's position is ahead of them there.
    Applied,
    /// The consumer's position, which also passes transaction markers: between batches, when
    /// every message `poll` returned has been applied.
    ConsumerPosition,
}

/// What one checkpoint writes to one partition's store.
struct StoreWrite {
    partition: i32,
    changed: Vec<(Box<str>, Vec<u8>)>,
    removed: Vec<Box<str>>,
    erased: Vec<(LeadHash, Option<Micros>)>,
    offsets: Offsets,
}

impl Pipeline {
    /// The periodic checkpoint; a failure is recovered from here.
    pub fn on_checkpoint_due(&mut self, consumer: &BaseConsumer<GroupContext>) {
        if self.abandon {
            return;
        }
        if let Some(why) = self.producer.context().fatal() {
            // Nothing more can be produced: stop (health turns red) rather than rewind.
            self.shared.fail(why.to_string());
            return;
        }
        let done = match self.guarantee() {
            Guarantee::AtLeastOnce => self.start_background_checkpoint(consumer),
            Guarantee::ExactlyOnce => {
                self.checkpoint(consumer, None, CommitMode::Async, Reached::ConsumerPosition)
            }
        };
        if let Err(e) = done {
            self.on_checkpoint_error(consumer, e);
        }
    }

    /// at_least_once, periodic: steps 1 (changelog records sent) and the choice of offsets
    /// happen here, on the poll thread; waiting for the acknowledgements and the store's fsynced
    /// commit (steps 2 and 3) happen on a checkpoint thread, so the event path does not stall;
    /// step 4 follows when the poll loop collects the finished job
    /// ([`Pipeline::collect_checkpoint`]). One job at a time: while one runs, a due checkpoint
    /// waits for the next interval.
    fn start_background_checkpoint(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
    ) -> Result<(), CheckpointError> {
        self.collect_checkpoint(consumer, false)?;
        if self.in_flight.is_some() {
            return Ok(());
        }
        if consumer.assignment_lost() {
            return Err(CheckpointError::AssignmentLost);
        }
        let started = Instant::now();
        self.take_confirmed_commits(consumer);
        self.advance_past_control_records(consumer);
        let writes = self.send_changes(None)?;
        let tpl = self.offsets_to_commit(None);
        let stores = self.stores_of(writes);
        let producer = self.producer.clone();
        let epoch = producer.context().next_epoch();
        let task = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                await_delivery(&producer, epoch)?;
                write_stores(stores)
            })
            .map_err(|e| {
                CheckpointError::Fatal(format!("cannot start a checkpoint thread: {e}"))
            })?;
        self.in_flight = Some(InFlight { task, tpl, started });
        Ok(())
    }

    /// Finishes a background checkpoint whose job ended (or, with `wait`, waits for it): its
    /// offsets are committed (step 4) and the budget applied; a failed job's error is returned.
    pub fn collect_checkpoint(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        wait: bool,
    ) -> Result<(), CheckpointError> {
        let Some(job) = self.in_flight.take_if(|j| wait || j.task.is_finished()) else {
            return Ok(());
        };
        let leads_written = job
            .task
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        // A partition revoked meanwhile (its assignment lost) is not ours to commit.
        let mut tpl = TopicPartitionList::new();
        {
            let shards = self.shared.shards.lock().unwrap();
            for e in job.tpl.elements() {
                if shards.contains_key(&e.partition()) {
                    tpl.add_partition_offset(e.topic(), e.partition(), e.offset())
                        .expect("a valid offset");
                }
            }
        }
        self.commit_offsets(consumer, &tpl, CommitMode::Async)?;
        self.checkpoint_done(leads_written, job.started);
        Ok(())
    }

    /// Acts on a failed checkpoint as [`CheckpointError::recovery`] says.
    pub fn on_checkpoint_error(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        e: CheckpointError,
    ) {
        match e.recovery() {
            Recovery::Nothing => info!("{e}"),
            Recovery::Exit => self.shared.fail(format!("checkpoint: {e}")),
            Recovery::Rewind | Recovery::ReplaceProducer => {
                warn!("checkpoint failed: {e}; rewinding to the last durable checkpoint");
                counter!(crate::service::metrics::REWINDS_TOTAL.name).increment(1);
                let fresh = e.recovery() == Recovery::ReplaceProducer;
                if let Err(e) = self.rewind(consumer, fresh, &e.to_string()) {
                    self.shared.fail(format!("rewind: {e}"));
                }
            }
        }
    }

    /// Checkpoints `only` these partitions (all when `None`; always all under exactly_once,
    /// whose transaction carries every partition's outputs), up to what `reached` allows.
    pub fn checkpoint(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        only: Option<&[i32]>,
        mode: CommitMode,
        reached: Reached,
    ) -> Result<(), CheckpointError> {
        if consumer.assignment_lost() {
            return Err(CheckpointError::AssignmentLost);
        }
        self.collect_checkpoint(consumer, true)?;
        let started = Instant::now();
        self.take_confirmed_commits(consumer);
        if reached == Reached::ConsumerPosition {
            self.advance_past_control_records(consumer);
        }
        let only = if self.guarantee() == Guarantee::ExactlyOnce {
            None
        } else {
            only
        };
        let writes = self.send_changes(only)?;
        let tpl = self.offsets_to_commit(only);
        self.make_outputs_durable(consumer, &tpl)?;
        let leads_written = write_stores(self.stores_of(writes))?;
        self.commit_offsets(consumer, &tpl, mode)?;
        self.checkpoint_done(leads_written, started);
        Ok(())
    }

    /// After a checkpoint that completed: rewinds forgiven, the memory budget applied, metrics.
    fn checkpoint_done(&mut self, leads_written: u64, started: Instant) {
        self.rewinds = (0, Default::default());
        self.shed_to_budget();
        if leads_written > 0 {
            counter!(crate::service::metrics::CHECKPOINT_LEADS_TOTAL.name).increment(leads_written);
        }
        histogram!(crate::service::metrics::CHECKPOINT_SECONDS.name)
            .record(started.elapsed().as_secs_f64());
    }

    /// Step 5, with `max_leads_in_memory`: every partition drops its least recently used
    /// leads beyond its share from memory (all of them are in its store now).
    fn shed_to_budget(&mut self) {
        if self.cfg.max_leads_in_memory.is_none() {
            return;
        }
        let mut shards = self.shared.shards.lock().unwrap();
        let keep = self.cfg.leads_per_partition(shards.len());
        let shed: usize = shards.values_mut().map(|s| s.shed(keep)).sum();
        if shed > 0 {
            counter!(crate::service::metrics::LEADS_SHED_TOTAL.name).increment(shed as u64);
            let in_memory: usize = shards.values().map(|s| s.leads.len()).sum();
            metrics::gauge!(crate::service::metrics::LEADS.name).set(in_memory as f64);
        }
    }

    /// Step 1: changed leads, evictions and erasures of the partitions in scope to the
    /// changelog. A record too large for `max_message_bytes` stops the service: retrying cannot
    /// help.
    fn send_changes(&mut self, only: Option<&[i32]>) -> Result<Vec<StoreWrite>, CheckpointError> {
        let rules = self.shared.engine().rules().clone();
        let mut shards = self.shared.shards.lock().unwrap();
        let mut writes = Vec::new();
        for (p, shard) in shards.iter_mut() {
            if only.is_some_and(|o| !o.contains(p)) {
                continue;
            }
            let offsets = self.positions.of_partition(&self.cfg.input_topics, *p);
            let w = StoreWrite {
                partition: *p,
                changed: encode_changed(&mut shard.leads, &rules),
                removed: shard.take_tombstones(),
                erased: shard.erasures.take_changed(),
                offsets,
            };
            let moved = w.offsets.iter().any(|(t, n)| {
                let key = (self.topic_index(t), *p);
                self.positions.committed.get(&key) != Some(n)
            });
            if w.changed.is_empty() && w.removed.is_empty() && w.erased.is_empty() && !moved {
                continue;
            }
            self.send_write(&w)?;
            writes.push(w);
        }
        Ok(writes)
    }

    /// One partition's changelog records, each tagged with the input offsets it reflects.
    fn send_write(&self, w: &StoreWrite) -> Result<(), CheckpointError> {
        let header = changelog::encode_offsets(&w.offsets);
        let max = self.cfg.limits.max_message_bytes;
        let size = |id: &str, b: &[u8]| id.len() + b.len() + header.len();
        if let Some((id, bytes)) = w.changed.iter().find(|(id, b)| size(id, b) > max) {
            return Err(CheckpointError::Fatal(format!(
                "a lead's changelog record in partition {} is {} bytes, over max_message_bytes \
                 {max}: lower max_string_chars or the rules' fit fields, or raise \
                 max_message_bytes with the changelog topic's max.message.bytes",
                w.partition,
                size(id, bytes)
            )));
        }
        let send = |key: &[u8], value: Option<&[u8]>| {
            producer::send_changelog(
                &self.producer,
                &self.changelog_topic,
                w.partition,
                key,
                value,
                &header,
            )
        };
        for (id, bytes) in &w.changed {
            send(id.as_bytes(), Some(bytes));
        }
        for id in &w.removed {
            send(id.as_bytes(), None);
        }
        for (h, at) in &w.erased {
            let at = at.map(i64::to_be_bytes);
            send(
                &erasure::changelog_key(h),
                at.as_ref().map(|b| b.as_slice()),
            );
        }
        Ok(())
    }

    /// The input offsets of the partitions in scope.
    fn offsets_to_commit(&self, only: Option<&[i32]>) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for ((t, p), next) in &self.positions.next {
            if only.is_none_or(|o| o.contains(p)) {
                tpl.add_partition_offset(&self.cfg.input_topics[*t], *p, Offset::Offset(*next))
                    .expect("a valid offset");
            }
        }
        tpl
    }

    /// Step 2: every output acknowledged (at_least_once) or the transaction committed with the
    /// input offsets (exactly_once).
    fn make_outputs_durable(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        tpl: &TopicPartitionList,
    ) -> Result<(), CheckpointError> {
        let producer = self.producer.clone();
        match self.guarantee() {
            Guarantee::ExactlyOnce => {
                let meta = consumer
                    .group_metadata()
                    .ok_or_else(|| CheckpointError::Fatal("no consumer group metadata".into()))?;
                if tpl.count() > 0 {
                    send_offsets(&producer, tpl.clone(), meta)?;
                }
                // A commit that timed out is retried, never aborted: it may have succeeded.
                txn_call("commit_transaction", Duration::from_secs(120), || {
                    producer.commit_transaction(Duration::from_secs(60))
                })
                .map_err(CheckpointError::from_txn)?;
            }
            Guarantee::AtLeastOnce => {
                producer.flush(Duration::from_secs(60)).map_err(|e| {
                    CheckpointError::Undelivered(format!("not acknowledged within 60s: {e}"))
                })?;
            }
        }
        match producer::failures(&producer) {
            0 => Ok(()),
            n if self.guarantee() == Guarantee::ExactlyOnce => Err(CheckpointError::Fatal(
                format!("{n} message(s) failed in a committed transaction"),
            )),
            n => Err(CheckpointError::Undelivered(format!(
                "{n} message(s) could not be delivered"
            ))),
        }
    }

    /// The stores the writes go to (partitions revoked meanwhile are left out). The state lock
    /// is held only to pick the stores, not during their fsynced commits, so lookups do not
    /// wait on the disk.
    fn stores_of(&self, writes: Vec<StoreWrite>) -> Vec<(Arc<PartitionStore>, StoreWrite)> {
        let shards = self.shared.shards.lock().unwrap();
        writes
            .into_iter()
            .filter_map(|w| Some((shards.get(&w.partition)?.store.clone(), w)))
            .collect()
    }

    /// Step 4: commit the offsets (at_least_once) or begin the next transaction (exactly_once).
    fn commit_offsets(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        tpl: &TopicPartitionList,
        mode: CommitMode,
    ) -> Result<(), CheckpointError> {
        match self.guarantee() {
            Guarantee::ExactlyOnce => {
                self.positions.committed = self.positions.next.clone();
                let producer = self.producer.clone();
                txn_call("begin_transaction", Duration::from_secs(30), || {
                    producer.begin_transaction()
                })
                .map_err(|(_, why)| CheckpointError::Fatal(why))
            }
            Guarantee::AtLeastOnce => {
                let dirty = tpl.elements().iter().any(|e| {
                    let key = (self.topic_index(e.topic()), e.partition());
                    let at = match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    };
                    at != self.positions.committed.get(&key).copied()
                });
                if tpl.count() == 0 || !dirty {
                    return Ok(());
                }
                match consumer.commit(tpl, mode) {
                    Ok(()) if matches!(mode, CommitMode::Sync) => {
                        for e in tpl.elements() {
                            if let Offset::Offset(o) = e.offset() {
                                let key = (self.topic_index(e.topic()), e.partition());
                                self.positions.committed.insert(key, o);
                            }
                        }
                    }
                    Ok(()) => {}
                    // Left dirty: the next checkpoint commits again.
                    Err(e) => warn!("offset commit failed (retried at the next checkpoint): {e}"),
                }
                Ok(())
            }
        }
    }

    /// Transaction markers (control records) are never delivered, but librdkafka moves the
    /// consumer's position past them once every message before them was delivered; taking that
    /// position lets committed offsets reach the end of a transactional partition. (A seek
    /// invalidates the position until the next delivery, so a rewind is never skipped.)
    fn advance_past_control_records(&mut self, consumer: &BaseConsumer<GroupContext>) {
        let Ok(position) = consumer.position() else {
            return;
        };
        let shards = self.shared.shards.lock().unwrap();
        for e in position.elements() {
            let Offset::Offset(o) = e.offset() else {
                continue;
            };
            if !shards.contains_key(&e.partition()) {
                continue;
            }
            let key = (self.topic_index(e.topic()), e.partition());
            let next = self.positions.next.entry(key).or_insert(o);
            *next = (*next).max(o);
        }
    }

    /// Moves offsets confirmed by commit callbacks into the positions.
    fn take_confirmed_commits(&mut self, consumer: &BaseConsumer<GroupContext>) {
        let confirmed = std::mem::take(&mut *consumer.context().confirmed.lock().unwrap());
        for ((topic, p), o) in confirmed {
            let key = (self.topic_index(&topic), p);
            if self.positions.next.contains_key(&key) {
                self.positions.committed.insert(key, o);
            }
        }
    }

    /// Exactly_once: aborts the open transaction and begins a new one.
    pub(crate) fn abort_and_begin(&mut self) -> Result<(), CheckpointError> {
        let producer = self.producer.clone();
        txn_call("abort_transaction", Duration::from_secs(60), || {
            producer.abort_transaction(Duration::from_secs(30))
        })
        .map_err(|(_, why)| CheckpointError::Fatal(why))?;
        self.producer.context().reset_failures();
        txn_call("begin_transaction", Duration::from_secs(30), || {
            producer.begin_transaction()
        })
        .map_err(|(_, why)| CheckpointError::Fatal(why))
    }

    /// Back to the last durable checkpoint: a clean producer (the open transaction aborted, or
    /// a fresh idempotent producer), every active partition reloaded from its local store and
    /// the consumer sent back to the offsets it reflects. Re-processing re-sends the outputs
    /// since then with the same ids. Gives up after [`MAX_REWINDS`] rewinds in a row.
    fn rewind(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        fresh_producer: bool,
        reason: &str,
    ) -> Result<(), CheckpointError> {
        self.count_rewind(reason)?;
        self.reset_producer(fresh_producer)?;
        let rules = self.shared.engine().rules().clone();
        let shared = self.shared.clone();
        let mut shards = shared.shards.lock().unwrap();
        let limit = self.cfg.leads_per_partition(shards.len());
        for (p, shard) in shards.iter_mut() {
            let (mut leads, mut erasures) = (LeadTable::tracked(), Erasures::default());
            let fatal = |e: anyhow::Error| CheckpointError::Fatal(format!("rewind: {e:#}"));
            let (_, cold) = shard
                .store
                .load(&rules, &mut leads, &mut erasures, limit)
                .map_err(fatal)?;
            shard.cold = cold;
            shard.leads = leads;
            shard.erasures = erasures;
            shard.evicted.clear();
            let stored = shard.store.offsets().map_err(fatal)?;
            self.positions.drop_partition(*p);
            for topic in &self.cfg.input_topics {
                let t = self.topic_index(topic);
                let at = match stored.get(topic) {
                    Some(o) => {
                        self.positions.next.insert((t, *p), *o);
                        Offset::Offset(*o)
                    }
                    None => Offset::Beginning,
                };
                consumer
                    .seek(topic, *p, at, Duration::from_secs(10))
                    .map_err(|e| CheckpointError::Fatal(format!("seek {topic}/{p}: {e}")))?;
            }
            info!(partition = p, leads = shard.leads.len(), resume = %changelog::encode_offsets(&stored), "rewound to the last checkpoint");
        }
        Ok(())
    }

    /// Counts a rewind; fails when rewinds keep failing at the same positions.
    fn count_rewind(&mut self, reason: &str) -> Result<(), CheckpointError> {
        if self.rewinds.0 == 0 {
            self.rewinds.1 = self.positions.committed.clone();
        }
        self.rewinds.0 += 1;
        if self.rewinds.0 > MAX_REWINDS {
            counter!(crate::service::metrics::REWINDS_EXHAUSTED_TOTAL.name).increment(1);
            // Where consumption restarts each time: the committed offset, or the beginning of
            // a partition that never had one.
            let parts: Vec<i32> = self.shared.shards.lock().unwrap().keys().copied().collect();
            let mut at = Vec::new();
            for p in parts {
                for (t, topic) in self.cfg.input_topics.iter().enumerate() {
                    at.push(match self.rewinds.1.get(&(t, p)) {
                        Some(o) => format!("{topic}/{p}@{o}"),
                        None => format!("{topic}/{p}@beginning"),
                    });
                }
            }
            return Err(CheckpointError::Fatal(format!(
                "{MAX_REWINDS} rewinds in a row without a successful checkpoint, stuck at {}; \
                 last failure: {reason}",
                at.join(", ")
            )));
        }
        Ok(())
    }

    /// A producer with nothing pending: under exactly_once the open transaction is aborted
    /// (unless the producer is stuck); otherwise a fresh producer replaces the old one (whose
    /// idempotence state may be what failed).
    fn reset_producer(&mut self, fresh: bool) -> Result<(), CheckpointError> {
        if self.guarantee() == Guarantee::ExactlyOnce && !fresh {
            return self.abort_and_begin();
        }
        let fresh =
            make_producer(&self.cfg).map_err(|e| CheckpointError::Fatal(format!("{e:#}")))?;
        let old = std::mem::replace(&mut self.producer, fresh);
        old.purge(PurgeConfig::default().queue().inflight());
        drop(old);
        Ok(())
    }
}

/// A background checkpoint (at_least_once): its job, and the offsets to commit once it is done.
pub struct InFlight {
    task: std::thread::JoinHandle<Result<u64, CheckpointError>>,
    tpl: TopicPartitionList,
    started: Instant,
}

/// Step 2 of a background checkpoint: every message sent before the checkpoint (its delivery
/// epoch) is settled, and none failed.
fn await_delivery(producer: &OutputProducer, epoch: usize) -> Result<(), CheckpointError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while producer.context().unsettled(epoch) > 0 {
        if Instant::now() > deadline {
            return Err(CheckpointError::Undelivered(
                "not acknowledged within 60s".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    match producer::failures(producer) {
        0 => Ok(()),
        n => Err(CheckpointError::Undelivered(format!(
            "{n} message(s) could not be delivered"
        ))),
    }
}

/// Step 3: changed leads and offsets to the local stores. Outputs are visible by now, so a
/// failure here is fatal: rewinding to the older store would emit them again.
fn write_stores(stores: Vec<(Arc<PartitionStore>, StoreWrite)>) -> Result<u64, CheckpointError> {
    let mut leads_written = 0;
    for (store, w) in stores {
        leads_written += store
            .write(&w.changed, &w.removed, &w.erased, &w.offsets)
            .map_err(|e| CheckpointError::Fatal(format!("local store: {e:#}")))?;
    }
    Ok(leads_written)
}

/// Adds the input offsets to the open transaction, on a helper thread bounded to outlast
/// every retry (see [`producer::bounded`]).
fn send_offsets(
    producer: &Arc<OutputProducer>,
    tpl: TopicPartitionList,
    meta: ConsumerGroupMetadata,
) -> Result<(), CheckpointError> {
    let producer = producer.clone();
    let call = move || {
        txn_call(
            "send_offsets_to_transaction",
            Duration::from_secs(30),
            || producer.send_offsets_to_transaction(&tpl, &meta, Duration::from_secs(10)),
        )
    };
    match producer::bounded(
        "send_offsets_to_transaction",
        Duration::from_secs(100),
        call,
    ) {
        Ok(done) => done.map_err(CheckpointError::from_txn),
        Err(stuck) => Err(CheckpointError::ProducerStuck(stuck)),
    }
}

/// The changed leads of a table, encoded (leads never scored are skipped).
fn encode_changed(leads: &mut LeadTable, rules: &crate::rules::Rules) -> Vec<(Box<str>, Vec<u8>)> {
    leads
        .take_dirty()
        .into_iter()
        .filter(|l| l.state.clock().is_some())
        .map(|l| (l.id.clone(), l.state.to_bytes(rules)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_kind_has_one_recovery() {
        assert_eq!(
            CheckpointError::Undelivered("x".into()).recovery(),
            Recovery::Rewind
        );
        assert_eq!(
            CheckpointError::Aborted("x".into()).recovery(),
            Recovery::Rewind
        );
        assert_eq!(
            CheckpointError::AssignmentLost.recovery(),
            Recovery::Nothing
        );
        assert_eq!(
            CheckpointError::Fatal("x".into()).recovery(),
            Recovery::Exit
        );
    }

    #[test]
    fn a_transactional_commit_that_keeps_timing_out_is_fatal_not_aborted() {
        let e = CheckpointError::from_txn((TxnErrorClass::Retry, "commit".into()));
        assert_eq!(e.recovery(), Recovery::Exit);
        let e = CheckpointError::from_txn((TxnErrorClass::Abort, "send".into()));
        assert_eq!(e.recovery(), Recovery::Rewind);
    }
}
