//! The consume → score → publish loop over one owned state struct, [`Pipeline`].
//!
//! One thread owns the consumer. Each turn of the loop dispatches explicit events to the
//! pipeline's handlers: restores that finished ([`Pipeline::finish_restores`], in
//! `assignment.rs`), a poll batch ([`Pipeline::on_messages`]), a due checkpoint
//! ([`Pipeline::on_checkpoint_due`], in `checkpoint.rs`). Rebalances arrive inside `poll` as
//! [`Pipeline::on_assign`] and [`Pipeline::on_revoke`]. No offset is committed before its
//! effects are durable.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use tracing::{error, info, warn};

use crate::config::{Config, Guarantee};
use crate::engine::{Engine, Outcome, VerdictOutcome};
use crate::event::{Event, InvalidEvent};
use crate::leads::LeadTable;
use crate::service::assignment::Restoring;
use crate::service::checkpoint::{InFlight, Reached};
use crate::service::group::{classify_consumer_error, ConsumerErrorClass, GroupContext};
use crate::service::metrics::{self as m, BatchCounts};
use crate::service::partition::Shard;
use crate::service::partition::{is_new, Positions};
use crate::service::producer::{self, make_producer, OutputProducer};
use crate::service::screen::{screen, Input};
use crate::service::shared::Shared;
use crate::service::upkeep::{reload_rules, sweep, Retention};
use crate::service::{changelog, topics};
use crate::time::now_micros;
use crate::verdict::Verdict;

/// Most messages handled per poll batch.
const MAX_BATCH: usize = 2048;

/// Everything the consumer loop owns: the output producer, positions, partitions being
/// restored, and the handlers that change them. Active partitions' leads live in
/// [`Shared::shards`], where the HTTP server reads them.
pub struct Pipeline {
    pub(crate) cfg: Arc<Config>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) producer: Arc<OutputProducer>,
    pub(crate) positions: Positions,
    pub(crate) restoring: BTreeMap<i32, Restoring>,
    pub(crate) changelog_topic: String,
    /// Stopping on a failure: nothing more is checkpointed (the final revoke included).
    pub(crate) abandon: bool,
    /// Rewinds since the last successful checkpoint, and the positions of the first.
    pub(crate) rewinds: (u32, BTreeMap<(usize, i32), i64>),
    /// The background checkpoint running, if any (at_least_once).
    pub(crate) in_flight: Option<InFlight>,
    counts: BatchCounts,
    latencies: Vec<f64>,
    out_buf: Vec<u8>,
    /// CloudEvents `source` of the outputs: `/leadscore/<group_id>`.
    ce_source: String,
    invalid_logs: LogLimit,
}

/// Log lines about invalid events per second at most; the rest are counted and the next line
/// says how many were left out (a flood of bad input must not flood the logs).
const INVALID_LOGS_PER_SECOND: u32 = 10;

/// A per-second budget of log lines.
#[derive(Debug)]
struct LogLimit {
    window: Instant,
    logged: u32,
    suppressed: u64,
}

impl LogLimit {
    fn new() -> Self {
        LogLimit {
            window: Instant::now(),
            logged: 0,
            suppressed: 0,
        }
    }

    /// `Some(lines left out since the last logged one)` when this line may be logged.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            (self.window, self.logged) = (now, 0);
        }
        if self.logged < INVALID_LOGS_PER_SECOND {
            self.logged += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

impl Pipeline {
    fn new(cfg: &Config, shared: Arc<Shared>) -> Result<Self> {
        let producer = make_producer(cfg)?;
        Ok(Pipeline {
            cfg: Arc::new(cfg.clone()),
            shared,
            producer,
            positions: Positions::default(),
            restoring: BTreeMap::new(),
            changelog_topic: changelog::topic(&cfg.group_id),
            abandon: false,
            rewinds: (0, BTreeMap::new()),
            in_flight: None,
            counts: BatchCounts::default(),
            latencies: Vec::with_capacity(MAX_BATCH),
            out_buf: Vec::with_capacity(512),
            ce_source: format!("/leadscore/{}", cfg.group_id),
            invalid_logs: LogLimit::new(),
        })
    }

    /// The delivery guarantee in force.
    pub(crate) fn guarantee(&self) -> Guarantee {
        self.cfg.guarantee
    }

    /// Index of an input topic.
    pub(crate) fn topic_index(&self, topic: &str) -> usize {
        self.cfg
            .input_topics
            .iter()
            .position(|x| x == topic)
            .unwrap_or(0)
    }

    /// Scores a poll batch: each message of an active partition that the state does not
    /// reflect yet is decoded and applied; its `sales_ready` or dead letter is handed to the
    /// producer. Messages of partitions not active (restoring, revoked meanwhile) are left for
    /// the partition's next owner or for after its restore (it is paused until then).
    pub fn on_messages(&mut self, batch: &[BorrowedMessage<'_>]) {
        let started = Instant::now();
        let shared = self.shared.clone();
        let mut shards = shared.shards.lock().unwrap();
        let engine = shared.engine();
        for msg in batch {
            let p = msg.partition();
            let Some(shard) = shards.get_mut(&p) else {
                continue;
            };
            let t = self.topic_index(msg.topic());
            if !is_new(self.positions.next.get(&(t, p)).copied(), msg.offset()) {
                continue;
            }
            self.score(&engine, shard, t, msg);
            self.positions.next.insert((t, p), msg.offset() + 1);
            if let Some(ts) = msg.timestamp().to_millis() {
                self.latencies.push(ts as f64);
            }
        }
        let leads: usize = shards.values().map(|s| s.leads.len()).sum();
        let parts = shards.len();
        drop(shards);
        self.publish_batch_metrics(started, batch.len(), leads, parts);
    }

    /// Screens and applies one message: an event is scored (its `sales_ready` emitted), a
    /// `forget` command erases its lead, an invalid message goes to the dead letters.
    fn score(&mut self, engine: &Engine, shard: &mut Shard, t: usize, msg: &BorrowedMessage<'_>) {
        let input = screen(&self.cfg, msg);
        if let Ok(input) = &input {
            self.read_back(engine, shard, input.lead_id());
        }
        match input {
            Err(e) => self.dead_letter(msg, &e),
            Ok(Input::Forget { lead_id, at }) => {
                shard.erasures.forget(&mut shard.leads, lead_id, at);
                // The tombstone deletes the lead from the changelog and the store.
                shard.evicted.insert(lead_id.into());
                self.counts.erasures += 1;
                info!(
                    source = %format!("{}/{}/{}", msg.topic(), msg.partition(), msg.offset()),
                    "forget command: a lead's state erased"
                );
            }
            Ok(Input::Event(ev))
                if shard
                    .erasures
                    .blocks_event(&shard.leads, &ev.lead_id, ev.ts) =>
            {
                self.counts.erased += 1;
            }
            Ok(Input::Event(ev)) => self.apply_event(engine, &mut shard.leads, t, &ev),
            Ok(Input::Verdict(v))
                if shard.erasures.blocks_event(&shard.leads, &v.lead_id, v.ts) =>
            {
                self.counts.erased += 1;
            }
            Ok(Input::Verdict(v)) => self.apply_verdict(engine, &mut shard.leads, &v),
        }
    }

    /// A lead shed from memory comes back from the store before its input is applied; a store
    /// that cannot be read stops the service (the lead's state would otherwise restart at zero).
    fn read_back(&mut self, engine: &Engine, shard: &mut Shard, lead_id: &str) {
        match shard.read_back(engine.rules(), lead_id) {
            Ok(true) => self.counts.read_back += 1,
            Ok(false) => {}
            Err(e) => self.shared.fail(format!(
                "cannot read a lead back from the local store: {e:#}"
            )),
        }
    }

    fn dead_letter(&mut self, msg: &BorrowedMessage<'_>, e: &InvalidEvent) {
        *self.counts.invalid.entry(e.code()).or_default() += 1;
        // The reason quotes input (lead ids are personal data): it goes to the dead letter's
        // `leadscore.error` header, the log gets its code, at most INVALID_LOGS_PER_SECOND times.
        if let Some(suppressed) = self.invalid_logs.admit(Instant::now()) {
            warn!(
                source = %format!("{}/{}/{}", msg.topic(), msg.partition(), msg.offset()),
                reason = e.code(),
                suppressed_before = suppressed,
                "invalid event to dead letters"
            );
        }
        producer::send_dead_letter(
            &self.producer,
            &self.cfg.dlq_topic,
            msg,
            &e.to_string(),
            self.cfg.limits.max_message_bytes,
            &self.ce_source,
        );
    }

    fn apply_event(&mut self, engine: &Engine, leads: &mut LeadTable, t: usize, ev: &Event<'_>) {
        *self.counts.events.entry((t, ev.kind)).or_default() += 1;
        match engine.apply_to(leads, ev) {
            Outcome::Scored(Some(sr)) => {
                self.counts.sales_ready += 1;
                producer::send_sales_ready(
                    &self.producer,
                    &self.cfg.output_topic,
                    self.cfg.output_format,
                    &sr,
                    &mut self.out_buf,
                    &self.ce_source,
                );
            }
            Outcome::Scored(None) => {}
            Outcome::Withheld => self.counts.withheld += 1,
            Outcome::Bot => self.counts.bot += 1,
            Outcome::Duplicate => self.counts.duplicate += 1,
        }
    }

    fn apply_verdict(&mut self, engine: &Engine, leads: &mut LeadTable, v: &Verdict) {
        match engine.apply_verdict(leads.get_or_insert(&v.lead_id), v) {
            VerdictOutcome::Duplicate => self.counts.duplicate += 1,
            VerdictOutcome::Recorded { rejected_signal } => {
                *self.counts.verdicts.entry(v.outcome.as_str()).or_default() += 1;
                if let Some(rule) = rejected_signal {
                    *self.counts.rejections.entry(rule).or_default() += 1;
                }
            }
        }
    }

    fn publish_batch_metrics(&mut self, started: Instant, n: usize, leads: usize, parts: usize) {
        if n > 0 {
            m::record_batch(started.elapsed().as_secs_f64() / n as f64);
        }
        let now_ms = (now_micros() / 1000) as f64;
        for l in self.latencies.iter_mut() {
            *l = ((now_ms - *l) / 1000.0).max(0.0);
        }
        m::record_latencies(&self.latencies);
        self.latencies.clear();
        self.counts.publish(&self.cfg.input_topics);
        m::set_state(leads, parts, self.shared.ready());
    }
}

/// Runs the pipeline until shutdown. Returns an error on a failure that must not be papered
/// over (fenced, not authorised, undeliverable changelog, repeated rewinds at one offset): the
/// process then exits non-zero without committing, and a restart resumes from the last
/// committed offsets.
pub fn run(cfg: &Config, shared: Arc<Shared>) -> Result<()> {
    let pipeline = Pipeline::new(cfg, shared.clone())?;
    let consumer = GroupContext::consumer(
        cfg,
        GroupContext {
            pipeline: Mutex::new(pipeline),
            confirmed: Mutex::new(BTreeMap::new()),
            shared: shared.clone(),
            topics: cfg.input_topics.clone(),
        },
    )?;
    topics::check_topics(cfg, &consumer)?;
    let names: Vec<&str> = cfg.input_topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .context("cannot subscribe to the input topics")?;
    info!(topics = ?cfg.input_topics, group = %cfg.group_id, assignment = cfg.assignment.as_str(),
        guarantee = ?cfg.guarantee, rules = %shared.engine().rules().version, "consuming");
    let result = consume(cfg, &shared, &consumer);
    close(&consumer, result)
}

/// The loop: one dispatch per turn, until shutdown or a fatal failure.
fn consume(cfg: &Config, shared: &Shared, consumer: &BaseConsumer<GroupContext>) -> Result<()> {
    let commit_every = cfg.commit_interval;
    let retention = Retention::of(cfg)?;
    let pipeline = &consumer.context().pipeline;
    let mut last_checkpoint = Instant::now();
    loop {
        shared.beat();
        if shared.shutdown.load(Ordering::Acquire) {
            return Ok(());
        }
        if let Some(why) = shared.failure() {
            return Err(anyhow!(why));
        }
        if shared.reload.swap(false, Ordering::AcqRel) {
            reload_rules(cfg, shared);
        }
        {
            let mut p = pipeline.lock().unwrap();
            p.finish_restores(consumer);
            if let Err(e) = p.collect_checkpoint(consumer, false) {
                p.on_checkpoint_error(consumer, e);
            }
        }
        let batch = poll_batch(consumer, shared);
        if !batch.is_empty() {
            pipeline.lock().unwrap().on_messages(&batch);
        }
        drop(batch);
        if last_checkpoint.elapsed() >= commit_every {
            last_checkpoint = Instant::now();
            sweep(shared, &retention);
            pipeline.lock().unwrap().on_checkpoint_due(consumer);
        }
    }
}

/// Collects up to [`MAX_BATCH`] messages, waiting up to 100 ms for the first; stops early when
/// a rebalance happened, so that restores start at once. Consumer errors are classified: fatal
/// ones stop the service, transient ones are logged and counted.
fn poll_batch<'c>(
    consumer: &'c BaseConsumer<GroupContext>,
    shared: &Shared,
) -> Vec<BorrowedMessage<'c>> {
    let generation = shared.generation.load(Ordering::Acquire);
    let mut batch = Vec::new();
    let mut timeout = Duration::from_millis(100);
    while batch.len() < MAX_BATCH && shared.generation.load(Ordering::Acquire) == generation {
        match consumer.poll(timeout) {
            None => break,
            Some(Ok(msg)) => batch.push(msg),
            Some(Err(e)) => {
                on_consumer_error(shared, &e);
                break;
            }
        }
        timeout = Duration::ZERO;
    }
    batch
}

/// A consumer error from `poll`.
fn on_consumer_error(shared: &Shared, e: &KafkaError) {
    match classify_consumer_error(e) {
        ConsumerErrorClass::Ignore => {}
        ConsumerErrorClass::Transient => {
            metrics::counter!(crate::service::metrics::CONSUMER_ERRORS_TOTAL.name, "class" => "transient")
                .increment(1);
            warn!("consumer: {e}");
        }
        ConsumerErrorClass::Fatal => {
            metrics::counter!(crate::service::metrics::CONSUMER_ERRORS_TOTAL.name, "class" => "fatal").increment(1);
            shared.fail(format!("consumer: {e}"));
        }
    }
}

/// Leaves the group: after a clean stop, a last checkpoint and commit; after a failure, nothing
/// is written (a restart resumes from the last durable checkpoint).
fn close(consumer: &BaseConsumer<GroupContext>, result: Result<()>) -> Result<()> {
    let mut pipeline = consumer.context().pipeline.lock().unwrap();
    pipeline.cancel_restores();
    match result {
        Ok(()) => {
            info!("shutting down: flushing outputs and committing offsets");
            if let Err(e) =
                pipeline.checkpoint(consumer, None, CommitMode::Sync, Reached::ConsumerPosition)
            {
                pipeline.abandon = true;
                drop(pipeline);
                error!("stopping without committing: {e}");
                return Err(anyhow!(e));
            }
            drop(pipeline);
            consumer.unsubscribe();
            // Serve the revoke callback of the unsubscribe.
            let _ = consumer.poll(Duration::from_millis(100));
            info!("offsets committed; bye");
            Ok(())
        }
        Err(e) => {
            pipeline.abandon = true;
            error!("stopping without committing: {e:#}");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_event_logs_are_limited_per_second_and_count_what_they_leave_out() {
        let mut limit = LogLimit::new();
        let t0 = limit.window;
        let admitted = (0..25).filter(|_| limit.admit(t0).is_some()).count();
        assert_eq!(admitted, INVALID_LOGS_PER_SECOND as usize);
        assert_eq!(limit.admit(t0 + Duration::from_millis(1001)), Some(15));
        assert_eq!(limit.admit(t0 + Duration::from_millis(1002)), Some(0));
    }
}
