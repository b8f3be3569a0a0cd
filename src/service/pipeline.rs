//! The consume → score → publish loop, with manual offsets and partition-following state.
//!
//! One thread owns the consumer. Per poll batch it decodes each message, applies it to the
//! partition's lead table through the pure engine, and hands `sales_ready` and dead letters to
//! the idempotent producer. Every `commit_interval` (and on revoke and shutdown) it waits until
//! the producer has every output acknowledged, then commits the offsets of processed messages:
//! no offset is committed before its effects are durable.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use metrics::{counter, gauge, histogram};
use prost::Message as _;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, error, info, warn};

use crate::config::{Config, Guarantee, OutputFormat};
use crate::engine::{Engine, Outcome};
use crate::event::decode;
use crate::kafka::client_config;
use crate::leads::LeadTable;
use crate::output::SalesReady;
use crate::rules::Rules;
use crate::service::changelog;
use crate::service::metrics::{self as m, BatchCounts};
use crate::service::restore::{apply_range, fetch_start_for, rebuild_from_input};
use crate::service::store::{Offsets, PartitionStore};
use crate::state::LeadState;
use crate::time::now_micros;

/// Most messages handled per poll batch.
const MAX_BATCH: usize = 2048;

/// One owned input partition: its leads, its durable store, leads evicted since the last
/// checkpoint, and when it was last swept for eviction.
pub struct Shard {
    /// The partition's leads.
    pub leads: LeadTable,
    store: PartitionStore,
    evicted: Vec<Box<str>>,
    last_sweep: Instant,
}

/// State shared between the pipeline thread, rebalance callbacks and the HTTP server.
pub struct Shared {
    /// The engine (rules) in force; swapped by a reload while `shards` is locked (lock `shards`
    /// first, then read the engine, to see states and rules that belong together).
    engine: RwLock<Engine>,
    /// Set by SIGHUP: reload the rules file at the next turn of the pipeline loop.
    pub reload: AtomicBool,
    /// Input partition → its leads.
    pub shards: Mutex<BTreeMap<i32, Shard>>,
    /// Partitions assigned but not yet restored.
    pub pending: Mutex<Vec<i32>>,
    /// The group was joined at least once.
    pub joined: AtomicBool,
    /// Bumped on every rebalance callback.
    pub generation: AtomicU64,
    /// Wall-clock ms of the pipeline loop's last turn.
    pub heartbeat_ms: AtomicI64,
    /// Set by SIGTERM/SIGINT.
    pub shutdown: AtomicBool,
    /// A failure the pipeline must stop on (e.g. undeliverable output).
    pub fatal: Mutex<Option<String>>,
}

impl Shared {
    /// Fresh shared state for an engine.
    pub fn new(engine: Engine) -> Self {
        Shared {
            engine: RwLock::new(engine),
            reload: AtomicBool::new(false),
            shards: Mutex::new(BTreeMap::new()),
            pending: Mutex::new(Vec::new()),
            joined: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            heartbeat_ms: AtomicI64::new(now_micros() / 1000),
            shutdown: AtomicBool::new(false),
            fatal: Mutex::new(None),
        }
    }

    /// The engine in force (a cheap clone: the rules are shared).
    pub fn engine(&self) -> Engine {
        self.engine.read().unwrap().clone()
    }

    /// Joined the group and every assigned partition is restored.
    pub fn ready(&self) -> bool {
        self.joined.load(Ordering::Acquire) && self.pending.lock().unwrap().is_empty()
    }

    fn beat(&self) {
        self.heartbeat_ms
            .store(now_micros() / 1000, Ordering::Relaxed);
    }
}

/// Delivery reports: count failures; the pipeline refuses to commit past them.
pub struct DeliveryTracker {
    failures: Arc<AtomicU64>,
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, msg)) = result {
            self.failures.fetch_add(1, Ordering::AcqRel);
            counter!("leadscore_produce_errors_total", "topic" => msg.topic().to_string())
                .increment(1);
            error!(topic = msg.topic(), "output could not be delivered: {e}");
        }
    }
}

type OutputProducer = ThreadedProducer<DeliveryTracker>;

/// Processed positions (next offset to read) per (input topic index, partition).
#[derive(Default)]
struct Positions {
    next: BTreeMap<(usize, i32), i64>,
    dirty: bool,
}

/// Consumer callbacks: rebalances, commit results, statistics.
struct GroupContext {
    shared: Arc<Shared>,
    producer: std::sync::RwLock<Arc<OutputProducer>>,
    failures: Arc<AtomicU64>,
    positions: Arc<Mutex<Positions>>,
    topics: Vec<String>,
    changelog_topic: String,
    exactly_once: bool,
    /// Stopping on a failure: the revoke of the final close must not checkpoint.
    abandon: AtomicBool,
}

/// What one checkpoint writes for one partition: (partition, changed leads encoded, evicted
/// leads, input offsets).
type PartitionWrite = (i32, Vec<(Box<str>, Vec<u8>)>, Vec<Box<str>>, Offsets);

impl GroupContext {
    /// The checkpoint: (1) changed leads and evictions to the changelog, (2) wait until every
    /// output and changelog record is acknowledged, (3) changed leads and the input offsets they
    /// reflect to the local store in one transaction, (4) commit the consumer offsets. A crash
    /// between any two steps leaves a state that a restart resumes from without loss.
    fn checkpoint(
        &self,
        consumer: &BaseConsumer<GroupContext>,
        only: Option<&[i32]>,
        mode: CommitMode,
    ) -> Result<()> {
        let started = Instant::now();
        let rules = self.shared.engine().rules().clone();
        let mut shards = self.shared.shards.lock().unwrap();
        let pos = self.positions.lock().unwrap();
        let in_scope = |p: &i32| only.is_none_or(|o| o.contains(p));
        let mut writes: Vec<PartitionWrite> = Vec::new();
        for (p, shard) in shards.iter_mut().filter(|(p, _)| in_scope(p)) {
            let offsets: Offsets = pos
                .next
                .iter()
                .filter(|((_, q), _)| q == p)
                .map(|((t, _), n)| (self.topics[*t].clone(), *n))
                .collect();
            let header = changelog::encode_offsets(&offsets);
            let changed: Vec<(Box<str>, Vec<u8>)> = shard
                .leads
                .take_dirty()
                .into_iter()
                .filter(|l| l.state.clock().is_some())
                .map(|l| (l.id.clone(), l.state.to_bytes(&rules)))
                .collect();
            let removed = std::mem::take(&mut shard.evicted);
            if changed.is_empty() && removed.is_empty() && !pos.dirty {
                continue;
            }
            for (id, bytes) in &changed {
                self.send_changelog(*p, id, Some(bytes), &header);
            }
            for id in &removed {
                self.send_changelog(*p, id, None, &header);
            }
            writes.push((*p, changed, removed, offsets));
        }
        let mut tpl = TopicPartitionList::new();
        for ((t, p), next) in &pos.next {
            if in_scope(p) {
                tpl.add_partition_offset(&self.topics[*t], *p, Offset::Offset(*next))?;
            }
        }
        let producer = self.producer();
        if self.exactly_once {
            // Outputs, changelog and input offsets commit together, or not at all.
            let meta = consumer
                .group_metadata()
                .context("exactly_once: no consumer group metadata")?;
            let committed = producer
                .send_offsets_to_transaction(&tpl, &meta, Duration::from_secs(30))
                .and_then(|()| producer.commit_transaction(Duration::from_secs(60)));
            if let Err(e) = committed {
                let _ = producer.abort_transaction(Duration::from_secs(30));
                return Err(e).context("exactly_once: transaction not committed");
            }
        } else {
            producer
                .flush(Duration::from_secs(60))
                .context("outputs not acknowledged within 60s; offsets not committed")?;
        }
        let failed = self.failures.load(Ordering::Acquire);
        if failed > 0 {
            bail!("{failed} output message(s) could not be delivered; offsets not committed");
        }
        let mut leads_written = 0;
        for (p, changed, removed, offsets) in &writes {
            if let Some(shard) = shards.get(p) {
                leads_written += shard.store.write(changed, removed, offsets)?;
            }
        }
        drop(shards);
        let dirty = pos.dirty;
        drop(pos);
        if self.exactly_once {
            producer
                .begin_transaction()
                .context("exactly_once: cannot begin the next transaction")?;
            if only.is_none() {
                self.positions.lock().unwrap().dirty = false;
            }
        } else if tpl.count() > 0 && (dirty || only.is_some()) {
            consumer
                .commit(&tpl, mode)
                .context("offset commit failed")?;
            if only.is_none() {
                self.positions.lock().unwrap().dirty = false;
            }
        }
        if leads_written > 0 {
            counter!("leadscore_checkpoint_leads_total").increment(leads_written);
            histogram!("leadscore_checkpoint_seconds").record(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    fn send_changelog(&self, partition: i32, lead: &str, state: Option<&[u8]>, offsets: &str) {
        let headers = OwnedHeaders::new().insert(Header {
            key: changelog::OFFSETS_HEADER,
            value: Some(offsets),
        });
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.changelog_topic)
            .key(lead.as_bytes())
            .partition(partition)
            .headers(headers);
        if let Some(bytes) = state {
            record = record.payload(bytes);
        }
        send_with_retry(&self.producer(), record);
    }

    /// The producer in use.
    fn producer(&self) -> Arc<OutputProducer> {
        self.producer.read().unwrap().clone()
    }
}

impl ClientContext for GroupContext {
    fn stats(&self, stats: Statistics) {
        for (topic, t) in &stats.topics {
            if !self.topics.contains(topic) {
                continue;
            }
            for (p, part) in &t.partitions {
                if *p >= 0 && part.consumer_lag >= 0 {
                    gauge!("leadscore_consumer_lag", "topic" => topic.clone(), "partition" => p.to_string())
                        .set(part.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            counter!("leadscore_rebalances_total", "kind" => "revoke").increment(1);
            let mut parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            parts.sort_unstable();
            parts.dedup();
            info!(
                ?parts,
                "partitions revoked: committing and releasing their state"
            );
            if self.abandon.load(Ordering::Acquire) {
                info!("stopping on a failure: nothing committed on revoke");
            } else if let Err(e) = self.checkpoint(consumer, Some(&parts), CommitMode::Sync) {
                // Not committed: the next owner re-processes from the last commit (same
                // sales_ready ids), which is the at-least-once contract.
                error!("checkpoint on revoke failed, the next owner re-processes: {e:#}");
            }
            self.positions
                .lock()
                .unwrap()
                .next
                .retain(|(_, p), _| !parts.contains(p));
            let mut shards = self.shared.shards.lock().unwrap();
            for p in &parts {
                shards.remove(p);
            }
            self.shared
                .pending
                .lock()
                .unwrap()
                .retain(|p| !parts.contains(p));
            self.shared.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                counter!("leadscore_rebalances_total", "kind" => "assign").increment(1);
                let mut parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                parts.sort_unstable();
                parts.dedup();
                info!(?parts, "partitions assigned");
                self.shared.pending.lock().unwrap().extend(parts);
                self.shared.joined.store(true, Ordering::Release);
                self.shared.generation.fetch_add(1, Ordering::AcqRel);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => warn!("rebalance error: {e}"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _: &TopicPartitionList) {
        match result {
            Ok(()) => counter!("leadscore_commits_total", "result" => "ok").increment(1),
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                counter!("leadscore_commits_total", "result" => "error").increment(1);
                warn!("offset commit failed: {e}");
            }
        }
    }
}

/// Runs the pipeline until shutdown. Returns an error on a failure that must not be papered
/// over (undeliverable outputs): the process then exits non-zero without committing, and a
/// restart re-processes from the last committed offsets.
pub fn run(cfg: &Config, shared: Arc<Shared>) -> Result<()> {
    let failures = Arc::new(AtomicU64::new(0));
    let producer = make_producer(cfg, &failures)?;
    let positions = Arc::new(Mutex::new(Positions::default()));
    let ctx = GroupContext {
        shared: shared.clone(),
        producer: std::sync::RwLock::new(producer),
        failures,
        positions: positions.clone(),
        topics: cfg.input_topics.clone(),
        changelog_topic: changelog::topic(&cfg.group_id),
        exactly_once: cfg.guarantee == Guarantee::ExactlyOnce,
        abandon: AtomicBool::new(false),
    };
    let stats_ms = cfg.statistics_every()?.as_millis().to_string();
    let mut consumer_config = client_config(&cfg.brokers, &cfg.kafka);
    if !cfg.kafka.contains_key("fetch.wait.max.ms") {
        // Low latency by default: a broker that holds an empty fetch for the full wait (tansu
        // does) would otherwise add up to librdkafka's 500 ms default to every event.
        consumer_config.set("fetch.wait.max.ms", "10");
    }
    consumer_config
        .set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "range")
        .set("statistics.interval.ms", &stats_ms);
    if !cfg.kafka.contains_key("isolation.level") {
        // Events of aborted producer transactions are not events; restores read the same way.
        consumer_config.set("isolation.level", "read_committed");
    }
    if let Some(id) = &cfg.instance_id {
        // Static membership: a restarted instance takes its partitions back at once.
        consumer_config.set("group.instance.id", id);
    }
    let consumer: BaseConsumer<GroupContext> = consumer_config
        .create_with_context(ctx)
        .context("cannot create Kafka consumer")?;
    check_topics(cfg, &consumer)?;
    let topics: Vec<&str> = cfg.input_topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .context("cannot subscribe to the input topics")?;
    info!(topics = ?cfg.input_topics, group = %cfg.group_id, rules = %shared.engine().rules().version, "consuming");

    let commit_every = cfg.commit_every()?;
    let retention = Retention {
        floor: cfg.retention_floor,
        ttl: cfg.retention_ttl()?.as_micros() as i64,
        every: cfg.retention_sweep_every()?,
    };
    let mut last_commit = Instant::now();
    let mut counts = BatchCounts::default();
    let mut latencies: Vec<f64> = Vec::with_capacity(MAX_BATCH);
    let mut out_buf = Vec::with_capacity(512);
    let result = loop {
        shared.beat();
        if shared.shutdown.load(Ordering::Acquire) {
            break Ok(());
        }
        if let Some(f) = shared.fatal.lock().unwrap().clone() {
            break Err(anyhow!(f));
        }
        if shared.reload.swap(false, Ordering::AcqRel) {
            reload_rules(cfg, &shared);
        }
        if let Err(e) = restore_pending(cfg, &shared, &consumer, &positions) {
            break Err(e);
        }

        // Collect a batch; messages fetched before a rebalance are dropped (they are re-fetched
        // from the committed offsets if this instance still owns their partition).
        let gen0 = shared.generation.load(Ordering::Acquire);
        let mut batch: Vec<BorrowedMessage<'_>> = Vec::new();
        let mut timeout = Duration::from_millis(100);
        loop {
            let before = shared.generation.load(Ordering::Acquire);
            match consumer.poll(timeout) {
                None => break,
                Some(Err(e)) => {
                    debug!("consumer: {e}");
                    break;
                }
                Some(Ok(msg)) => {
                    if shared.generation.load(Ordering::Acquire) != before {
                        batch.clear();
                    }
                    batch.push(msg);
                }
            }
            if batch.len() >= MAX_BATCH || shared.generation.load(Ordering::Acquire) != gen0 {
                break;
            }
            timeout = Duration::ZERO;
        }
        if shared.generation.load(Ordering::Acquire) != gen0 {
            if let Err(e) = restore_pending(cfg, &shared, &consumer, &positions) {
                break Err(e);
            }
        }

        if !batch.is_empty() {
            let producer = consumer.context().producer();
            let started = Instant::now();
            let mut shards = shared.shards.lock().unwrap();
            let engine = shared.engine();
            let mut pos = positions.lock().unwrap();
            for msg in &batch {
                let p = msg.partition();
                let Some(shard) = shards.get_mut(&p) else {
                    continue;
                };
                let leads = &mut shard.leads;
                let t = cfg
                    .input_topics
                    .iter()
                    .position(|x| x == msg.topic())
                    .unwrap_or(0);
                // Never apply a message twice: after a restore or a re-fetch, skip what the
                // state already reflects.
                match pos.next.get(&(t, p)) {
                    Some(&next) if msg.offset() < next => continue,
                    Some(&next) if msg.offset() > next => {
                        // Consumption resumed past the restored offset (the broker answered a
                        // stale committed offset): apply the messages in between first.
                        warn!(
                            topic = msg.topic(),
                            partition = p,
                            "resuming at offset {} but state reflects {next}: catching up",
                            msg.offset()
                        );
                        if let Err(e) =
                            apply_range(cfg, &engine, leads, msg.topic(), p, next, msg.offset())
                        {
                            *shared.fatal.lock().unwrap() = Some(format!("catch-up failed: {e:#}"));
                            break;
                        }
                    }
                    _ => {}
                }
                match decode(
                    msg.payload().unwrap_or_default(),
                    msg.key(),
                    cfg.input_format,
                ) {
                    Err(e) => {
                        *counts.invalid.entry(e.code()).or_default() += 1;
                        warn!(
                            source = %format!("{}/{}/{}", msg.topic(), p, msg.offset()),
                            "invalid event to dead letters: {e}"
                        );
                        send_dead_letter(&producer, &cfg.dlq_topic, msg, &e.to_string());
                    }
                    Ok(ev) => {
                        *counts.events.entry((t, ev.kind)).or_default() += 1;
                        match engine.apply_to(leads, &ev) {
                            Outcome::Scored(Some(sr)) => {
                                counts.sales_ready += 1;
                                send_sales_ready(
                                    &producer,
                                    &cfg.output_topic,
                                    cfg.output_format,
                                    &sr,
                                    &mut out_buf,
                                );
                            }
                            Outcome::Scored(None) => {}
                            Outcome::Bot => counts.bot += 1,
                            Outcome::Duplicate => counts.duplicate += 1,
                        }
                    }
                }
                pos.next.insert((t, p), msg.offset() + 1);
                pos.dirty = true;
                if let Some(ts) = msg.timestamp().to_millis() {
                    latencies.push(ts as f64);
                }
            }
            drop(pos);
            let leads: usize = shards.values().map(|s| s.leads.len()).sum();
            let parts = shards.len();
            drop(shards);
            let per_event = started.elapsed().as_secs_f64() / batch.len() as f64;
            let now_ms = (now_micros() / 1000) as f64;
            for l in latencies.iter_mut() {
                *l = ((now_ms - *l) / 1000.0).max(0.0);
            }
            m::record_latencies(&latencies);
            latencies.clear();
            m::record_batch(per_event);
            counts.publish(&cfg.input_topics);
            m::set_state(leads, parts, shared.ready());
        }
        drop(batch);

        if last_commit.elapsed() >= commit_every {
            last_commit = Instant::now();
            sweep(&shared, &retention);
            if let Err(e) = consumer
                .context()
                .checkpoint(&consumer, None, CommitMode::Async)
            {
                if shared.shutdown.load(Ordering::Acquire) {
                    break Err(e);
                }
                warn!("checkpoint failed: {e:#}; rewinding to the last durable checkpoint");
                counter!("leadscore_rewinds_total").increment(1);
                while let Err(e) = rewind(cfg, &shared, &consumer) {
                    warn!("rewind failed, retrying in 1s: {e:#}");
                    std::thread::sleep(Duration::from_secs(1));
                    if shared.shutdown.load(Ordering::Acquire) {
                        break;
                    }
                }
            }
        }
    };

    match &result {
        Ok(()) => {
            info!("shutting down: flushing outputs and committing offsets");
            consumer
                .context()
                .checkpoint(&consumer, None, CommitMode::Sync)?;
            consumer.unsubscribe();
            // Serve the revoke callback of the unsubscribe.
            let _ = consumer.poll(Duration::from_millis(100));
            info!("offsets committed; bye");
        }
        Err(e) => {
            consumer.context().abandon.store(true, Ordering::Release);
            error!("stopping without committing: {e:#}")
        }
    }
    result
}

/// The output producer: idempotent, acks from all replicas.
/// In `exactly_once`, the producer is transactional: its first transaction is open on return.
fn make_producer(cfg: &Config, failures: &Arc<AtomicU64>) -> Result<Arc<OutputProducer>> {
    let mut config = client_config(&cfg.brokers, &cfg.kafka);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5");
    if cfg.guarantee == Guarantee::ExactlyOnce {
        config.set("transactional.id", transactional_id(cfg));
    }
    let producer: OutputProducer = config
        .create_with_context(DeliveryTracker {
            failures: failures.clone(),
        })
        .context("cannot create Kafka producer")?;
    if cfg.guarantee == Guarantee::ExactlyOnce {
        producer
            .init_transactions(Duration::from_secs(30))
            .context(
                "exactly_once: cannot initialise transactions (does the broker support them?)",
            )?;
        producer
            .begin_transaction()
            .context("exactly_once: cannot begin a transaction")?;
    }
    Ok(Arc::new(producer))
}

/// Stable per instance when `instance_id` is set (a restart fences its predecessor's open
/// transaction); otherwise unique per process, and consumer-group fencing (KIP-447) protects.
fn transactional_id(cfg: &Config) -> String {
    match &cfg.instance_id {
        Some(id) => format!("{}-{id}", cfg.group_id),
        None => format!("{}-{}-{}", cfg.group_id, std::process::id(), now_micros()),
    }
}

/// Recovers from outputs that could not be delivered (e.g. a restarted broker that forgot the
/// idempotent producer): a fresh producer, every owned partition reloaded from its local store
/// (the last durable checkpoint) and the consumer sent back there. Re-processing re-sends the
/// `sales_ready` events since that checkpoint with the same ids: at-least-once, without exiting.
fn rewind(cfg: &Config, shared: &Shared, consumer: &BaseConsumer<GroupContext>) -> Result<()> {
    let ctx = consumer.context();
    let fresh = make_producer(cfg, &ctx.failures)?;
    let old = std::mem::replace(&mut *ctx.producer.write().unwrap(), fresh);
    if ctx.exactly_once {
        let _ = old.abort_transaction(Duration::from_secs(10));
    }
    old.purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
    drop(old);
    ctx.failures.store(0, Ordering::Release);
    let rules = shared.engine().rules().clone();
    let mut shards = shared.shards.lock().unwrap();
    let mut pos = ctx.positions.lock().unwrap();
    pos.next.clear();
    pos.dirty = false;
    for (p, shard) in shards.iter_mut() {
        let mut leads = LeadTable::tracked();
        shard.store.load(&rules, &mut leads)?;
        shard.leads = leads;
        shard.evicted.clear();
        let stored = shard.store.offsets()?;
        for (t, topic) in cfg.input_topics.iter().enumerate() {
            let offset = stored.get(topic).copied().unwrap_or(0);
            let start = if offset > 0 {
                pos.next.insert((t, *p), offset);
                fetch_start_for(cfg, topic, *p, offset)?
            } else {
                0
            };
            consumer
                .seek(topic, *p, Offset::Offset(start), Duration::from_secs(10))
                .with_context(|| format!("cannot seek {topic}/{p} to {start}"))?;
        }
        info!(partition = p, leads = shard.leads.len(), resume = %changelog::encode_offsets(&stored), "rewound to the last checkpoint");
    }
    Ok(())
}

/// Fails fast when a topic the service needs does not exist.
fn check_topics(cfg: &Config, consumer: &BaseConsumer<GroupContext>) -> Result<()> {
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(15))
        .with_context(|| format!("cannot reach the Kafka brokers at {}", cfg.brokers))?;
    let have: Vec<&str> = md.topics().iter().map(|t| t.name()).collect();
    let missing: Vec<&str> = cfg
        .input_topics
        .iter()
        .chain([&cfg.output_topic, &cfg.dlq_topic])
        .map(String::as_str)
        .filter(|t| !have.contains(t))
        .collect();
    if !missing.is_empty() {
        bail!(
            "topic(s) {} do not exist on {}\n  fix: create them, e.g. `leadscore topics create --brokers {} {}`",
            missing.join(", "),
            cfg.brokers,
            cfg.brokers,
            missing.join(" ")
        );
    }
    // The changelog is the service's own: created (compacted, partitioned like the input) when
    // missing; a changelog partitioned otherwise would put leads in the wrong partitions.
    let partitions = |name: &str| {
        md.topics()
            .iter()
            .find(|t| t.name() == name)
            .map(|t| t.partitions().len() as i32)
    };
    let input_parts = partitions(&cfg.input_topics[0]).unwrap_or(0);
    for t in &cfg.input_topics[1..] {
        if partitions(t) != Some(input_parts) {
            bail!(
                "input topics {} ({input_parts} partitions) and {t} ({:?}) are not co-partitioned\n  fix: give every input topic the same partition count",
                cfg.input_topics[0],
                partitions(t)
            );
        }
    }
    let log = changelog::topic(&cfg.group_id);
    match partitions(&log) {
        Some(n) if n == input_parts => {}
        Some(n) => bail!(
            "changelog topic {log} has {n} partitions but the input has {input_parts}\n  fix: delete {log} (state is then rebuilt from the input) or repartition it"
        ),
        None => {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(crate::kafka::ensure_compacted_topic(
                    &cfg.brokers,
                    &cfg.kafka,
                    &log,
                    input_parts,
                ))?;
            info!(topic = %log, partitions = input_parts, "created the state changelog topic");
        }
    }
    Ok(())
}

/// Restores newly assigned partitions before any of their messages is processed: from the
/// local store when it is at least as recent as the group's committed offsets, else from the
/// changelog, else (no changelog yet) by re-applying the input. Then positions the consumer.
fn restore_pending(
    cfg: &Config,
    shared: &Shared,
    consumer: &BaseConsumer<GroupContext>,
    positions: &Mutex<Positions>,
) -> Result<()> {
    loop {
        let next = shared.pending.lock().unwrap().first().copied();
        let Some(p) = next else { return Ok(()) };
        let started = Instant::now();
        let rules = shared.engine().rules().clone();
        let mut tpl = TopicPartitionList::new();
        for t in &cfg.input_topics {
            tpl.add_partition(t, p);
        }
        let committed: Offsets = consumer
            .committed_offsets(tpl, Duration::from_secs(30))
            .with_context(|| format!("cannot read committed offsets of partition {p}"))?
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.topic().to_string(), o)),
                _ => None,
            })
            .collect();
        let store = PartitionStore::open(&cfg.state_dir, &cfg.group_id, p)?;
        let local = store.offsets()?;
        let local_covers = !local.is_empty()
            && committed
                .iter()
                .all(|(t, o)| local.get(t).copied().unwrap_or(0) >= *o);
        let (leads, resume, source) = if committed.is_empty() && local.is_empty() {
            // Never processed by anyone: nothing to restore.
            (LeadTable::tracked(), committed, "new")
        } else if local_covers {
            let mut leads = LeadTable::tracked();
            store.load(&rules, &mut leads)?;
            (leads, local, "local")
        } else if let Some(leads) = changelog::restore(cfg, &rules, p, &committed)? {
            store.replace_all(&rules, &leads, &committed)?;
            (leads, committed, "changelog")
        } else {
            let until: Vec<(String, i64)> = committed.clone().into_iter().collect();
            let leads = rebuild_from_input(cfg, &shared.engine(), p, &until)?;
            store.replace_all(&rules, &leads, &committed)?;
            (leads, committed, "input")
        };
        let secs = started.elapsed().as_secs_f64();
        counter!("leadscore_restore_leads_total", "source" => source).increment(leads.len() as u64);
        info!(
            partition = p,
            source,
            leads = leads.len(),
            resume = %changelog::encode_offsets(&resume),
            "partition restored in {secs:.2}s ({:.0} leads/s)",
            leads.len() as f64 / secs.max(1e-9)
        );
        shared.beat();
        let mut pending = shared.pending.lock().unwrap();
        // A revoke during the restore removed it from pending: drop the result.
        let Some(i) = pending.iter().position(|x| *x == p) else {
            continue;
        };
        pending.remove(i);
        shared.shards.lock().unwrap().insert(
            p,
            Shard {
                leads,
                store,
                evicted: Vec::new(),
                last_sweep: Instant::now(),
            },
        );
        let mut pos = positions.lock().unwrap();
        for (topic, offset) in &resume {
            let Some(t) = cfg.input_topics.iter().position(|x| x == topic) else {
                continue;
            };
            if *offset <= 0 {
                continue;
            }
            pos.next.insert((t, p), *offset);
            // Resume from a batch start: a broker like tansu would otherwise skip the rest of
            // the batch the offset falls in. Messages below it are skipped by the position check.
            let start = fetch_start_for(cfg, topic, p, *offset)?;
            consumer
                .seek(topic, p, Offset::Offset(start), Duration::from_secs(10))
                .with_context(|| format!("cannot seek {topic}/{p} to {start}"))?;
        }
    }
}

/// Eviction settings.
struct Retention {
    floor: f64,
    ttl: i64,
    every: Duration,
}

/// Evicts, per partition at most every `retention.every`, leads with no fit points that never
/// qualified, whose score decayed to the partition's newest lead clock is below the floor and
/// whose clock is more than the TTL behind it (event time, so replays and restarts evict alike).
/// SIGHUP: loads the rules file again. On success, every lead's state is carried over to the new
/// rules by stable rule keys (accumulated engagement kept, accumulators of removed rules
/// dropped, fit re-evaluated; SPEC §4 "reload") and marked changed so the next checkpoint
/// persists it; new points apply to events scored from then on. A file that does not load
/// leaves the previous rules in force.
fn reload_rules(cfg: &Config, shared: &Shared) {
    let old = shared.engine();
    let new = match Rules::load(&cfg.rules) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            counter!("leadscore_rules_reloads_total", "result" => "failed").increment(1);
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
    counter!("leadscore_rules_reloads_total", "result" => "ok").increment(1);
    info!(from = %old.rules().version, to = %version, leads, "rules reloaded");
}

fn sweep(shared: &Shared, retention: &Retention) {
    let mut shards = shared.shards.lock().unwrap();
    let engine = shared.engine();
    for (p, shard) in shards.iter_mut() {
        if shard.last_sweep.elapsed() < retention.every {
            continue;
        }
        shard.last_sweep = Instant::now();
        let newest = shard
            .leads
            .iter()
            .filter_map(|l| l.state.clock())
            .max()
            .unwrap_or(i64::MIN);
        let gone = shard.leads.evict(|l| {
            let st = &l.state;
            st.fit() == 0.0
                && st.sequence() == 0
                && engine.engagement_at(st, newest).abs() < retention.floor
                && st.clock().is_some_and(|c| newest - c > retention.ttl)
        });
        if !gone.is_empty() {
            counter!("leadscore_evicted_total").increment(gone.len() as u64);
            info!(
                partition = p,
                leads = gone.len(),
                "evicted idle, negligible leads"
            );
            shard.evicted.extend(gone);
        }
    }
}

fn send_with_retry<'a>(producer: &OutputProducer, mut record: BaseRecord<'a, [u8], [u8]>) {
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err((e, r)) => {
                // Counted like a failed delivery: the next checkpoint refuses to commit.
                counter!("leadscore_produce_errors_total", "topic" => r.topic.to_string())
                    .increment(1);
                error!(topic = r.topic, "cannot enqueue output: {e}");
                producer.context().failures.fetch_add(1, Ordering::AcqRel);
                return;
            }
        }
    }
}

fn send_sales_ready(
    producer: &OutputProducer,
    topic: &str,
    format: OutputFormat,
    sr: &SalesReady,
    buf: &mut Vec<u8>,
) {
    buf.clear();
    match format {
        OutputFormat::Json => buf.extend_from_slice(sr.to_json().as_bytes()),
        OutputFormat::Protobuf => sr.to_proto().encode(buf).expect("a Vec grows as needed"),
    }
    let record = BaseRecord::to(topic)
        .key(sr.lead_id.as_bytes())
        .payload(buf.as_slice());
    send_with_retry(producer, record);
}

fn send_dead_letter(
    producer: &OutputProducer,
    topic: &str,
    msg: &BorrowedMessage<'_>,
    reason: &str,
) {
    let source = format!("{}/{}/{}", msg.topic(), msg.partition(), msg.offset());
    let mut headers = OwnedHeaders::new();
    if let Some(h) = msg.headers() {
        for hdr in h.iter() {
            headers = headers.insert(Header {
                key: hdr.key,
                value: hdr.value,
            });
        }
    }
    headers = headers
        .insert(Header {
            key: "leadscore.error",
            value: Some(reason),
        })
        .insert(Header {
            key: "leadscore.source",
            value: Some(&source),
        });
    let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).headers(headers);
    if let Some(k) = msg.key() {
        record = record.key(k);
    }
    if let Some(p) = msg.payload() {
        record = record.payload(p);
    }
    send_with_retry(producer, record);
}
