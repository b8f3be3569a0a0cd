//! Rebuilding partition state from the input topic.
//!
//! State is a pure function of the input prefix, so a partition's leads can be rebuilt by
//! re-applying its input messages up to the offset where processing resumes (outputs for those
//! were emitted and acknowledged before their offsets were committed, so none is re-sent). The
//! same routine closes a gap: if the first message processed after a restore is further ahead
//! than the restored offset (a stale committed offset was read), the messages in between are
//! applied first, so the state always equals the input before the message being processed.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use metrics::counter;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::config::Config;
use crate::engine::Engine;
use crate::event::decode;
use crate::kafka::client_config;
use crate::leads::LeadTable;

/// Re-applies `topic`/`partition` messages `[0, until)` for each `(topic, until)`.
pub fn rebuild_from_input(
    cfg: &Config,
    engine: &Engine,
    partition: i32,
    until: &[(String, i64)],
) -> Result<LeadTable> {
    let mut leads = LeadTable::tracked();
    let started = Instant::now();
    let mut applied = 0;
    for (topic, until) in until {
        if *until > 0 {
            applied += apply_range(cfg, engine, &mut leads, topic, partition, 0, *until)?;
        }
    }
    info!(
        partition,
        events = applied,
        leads = leads.len(),
        "partition state rebuilt from input in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    Ok(leads)
}

/// A consumer for reading assigned partitions to their end (restores, probes): no commits,
/// partition EOF reported, short fetch waits, only committed transactional data.
pub fn reader(cfg: &Config) -> Result<BaseConsumer> {
    client_config(&cfg.brokers, &cfg.kafka)
        .set("group.id", format!("{}-restore", cfg.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "10")
        .create()
        .context("cannot create a restore consumer")
}

/// The offset where a fetch must start so that the message at `offset` is delivered.
///
/// Apache Kafka returns the record batch *containing* a requested offset. tansu 0.6 returns the
/// first batch whose base offset is at or after it, so a consumer resuming from an offset inside
/// a batch silently loses the rest of that batch (and waits for new data if it was the last).
/// Probing backwards (offset − 1, − 16, − 256, ...) until a fetch returns a message at or before
/// `offset` finds a batch start that works on both; callers skip what lies before `offset`.
pub fn fetch_start_for(cfg: &Config, topic: &str, partition: i32, offset: i64) -> Result<i64> {
    if offset <= 0 {
        return Ok(0);
    }
    let consumer = reader(cfg)?;
    let mut step = 1i64;
    loop {
        let at = (offset - step).max(0);
        if at == 0 {
            return Ok(0);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(at))?;
        consumer.assign(&tpl)?;
        // An offset inside the last batch fetches nothing on tansu: give up on it quickly.
        let deadline = Instant::now() + Duration::from_millis(300);
        let first = loop {
            match consumer.poll(Duration::from_millis(50)) {
                Some(Ok(m)) => break Some(m.offset()),
                Some(Err(KafkaError::PartitionEOF(_))) => break None,
                Some(Err(e)) => warn!(topic, partition, "probe: {e}"),
                None if Instant::now() > deadline => break None,
                None => {}
            }
        };
        if let Some(f) = first {
            if f <= offset {
                return Ok(f);
            }
        }
        step *= 16;
    }
}

/// Applies the input messages `[from, to)` of one topic-partition to `leads`, without outputs.
/// The end is found by offsets and partition EOF, never by ListOffsets (tansu 0.6 answers it
/// wrongly; see docs/ARCHITECTURE.md). Returns the number of messages applied.
pub fn apply_range(
    cfg: &Config,
    engine: &Engine,
    leads: &mut LeadTable,
    topic: &str,
    partition: i32,
    from: i64,
    to: i64,
) -> Result<u64> {
    let consumer = reader(cfg)?;
    let start = fetch_start_for(cfg, topic, partition, from)?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(start))?;
    consumer.assign(&tpl)?;
    let mut last_log = Instant::now();
    let mut first = true;
    let mut next = from;
    let mut applied = 0u64;
    while next < to {
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => {
                warn!(
                    topic,
                    partition, "input ends at offset {next}, before the expected offset {to}"
                );
                break;
            }
            Some(Err(e)) => warn!(topic, partition, "restore poll: {e}"),
            Some(Ok(m)) => {
                if first && m.offset() > from {
                    warn!(
                        topic,
                        partition,
                        "input before offset {} is gone (retention): state is rebuilt from there",
                        m.offset()
                    );
                }
                first = false;
                next = m.offset() + 1;
                if m.offset() < from {
                    continue;
                }
                if m.offset() >= to {
                    break;
                }
                if let Ok(ev) = decode(m.payload().unwrap_or_default(), m.key(), cfg.input_format) {
                    engine.apply_to(leads, &ev);
                }
                applied += 1;
                if last_log.elapsed() >= Duration::from_secs(2) {
                    last_log = Instant::now();
                    info!(
                        topic,
                        partition,
                        "restoring: offset {next} of {to} ({} leads)",
                        leads.len()
                    );
                }
            }
        }
    }
    counter!("leadscore_restore_events_total").increment(applied);
    Ok(applied)
}
