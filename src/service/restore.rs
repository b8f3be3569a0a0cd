//! Reading a partition to its end for restores: the changelog (see [`super::changelog`]) or,
//! when no changelog exists yet, the input itself.
//!
//! State is a pure function of the input prefix, so a partition's leads can be rebuilt by
//! re-applying its input messages up to the offset where processing resumes (outputs for those
//! were emitted and acknowledged before their offsets were committed, so none is re-sent).
//!
//! Reads stop at the end the broker reports when the read starts (the last stable offset under
//! read_committed) or at a given offset, whichever comes first; offsets need not be contiguous.
//! Progress with an ETA is logged every few seconds, and a restore can be cancelled (its
//! partition was revoked meanwhile).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use metrics::counter;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::config::Config;
use crate::engine::Engine;
use crate::erasure::Erasures;
use crate::kafka::client_config;
use crate::leads::LeadTable;
use crate::service::screen::{screen, Input};

/// How often restores log their progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(3);

/// A consumer for reading assigned partitions to their end: no group membership, no commits,
/// partition EOF reported, only committed transactional data. Its fetch wait is the service's
/// short one: the last fetch of every read waits for it in full.
pub fn reader(cfg: &Config) -> Result<BaseConsumer> {
    client_config(&cfg.brokers, &cfg.kafka)
        .set("group.id", format!("{}-restore", cfg.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", crate::service::group::FETCH_WAIT_MS)
        .set(
            "fetch.queue.backoff.ms",
            crate::service::group::FETCH_QUEUE_BACKOFF_MS,
        )
        .create()
        .context("cannot create a restore consumer")
}

/// Reads `topic`/`partition` from `from` until the offset `until` (exclusive) or the end the
/// broker reports at the start, calling `each` per message. Returns the messages read.
pub fn read_partition(
    cfg: &Config,
    topic: &str,
    partition: i32,
    from: Offset,
    until: Option<i64>,
    cancel: &AtomicBool,
    mut each: impl FnMut(&BorrowedMessage<'_>),
) -> Result<u64> {
    let consumer = reader(cfg)?;
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(30))
        .with_context(|| format!("cannot read the watermarks of {topic}/{partition}"))?;
    let start = match from {
        Offset::Offset(o) => o.max(low),
        _ => low,
    };
    let end = until.map_or(high, |u| u.min(high));
    if start >= end {
        return Ok(0);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(start))?;
    consumer.assign(&tpl)?;
    let mut progress = Progress::new(topic, partition, start, end);
    let mut read = 0u64;
    loop {
        if cancel.load(Ordering::Acquire) {
            bail!("restore of {topic}/{partition} cancelled (partition revoked)");
        }
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => warn!(topic, partition, "restore read: {e}"),
            Some(Ok(m)) => {
                if m.offset() >= end {
                    break;
                }
                each(&m);
                read += 1;
                progress.at(m.offset() + 1);
                if m.offset() + 1 >= end {
                    break;
                }
            }
        }
    }
    Ok(read)
}

/// Progress lines with an ETA for a read from `start` to `end`.
struct Progress<'a> {
    topic: &'a str,
    partition: i32,
    start: i64,
    end: i64,
    began: Instant,
    last: Instant,
}

impl<'a> Progress<'a> {
    fn new(topic: &'a str, partition: i32, start: i64, end: i64) -> Self {
        let now = Instant::now();
        Progress {
            topic,
            partition,
            start,
            end,
            began: now,
            last: now,
        }
    }

    fn at(&mut self, offset: i64) {
        if self.last.elapsed() < PROGRESS_EVERY {
            return;
        }
        self.last = Instant::now();
        let done = (offset - self.start) as f64;
        let total = (self.end - self.start) as f64;
        let secs = self.began.elapsed().as_secs_f64();
        let eta = if done > 0.0 {
            secs * (total - done) / done
        } else {
            f64::NAN
        };
        info!(
            topic = self.topic,
            partition = self.partition,
            "restoring: offset {offset} of {} ({:.0}%), {:.0} records/s, ETA {eta:.0}s",
            self.end,
            100.0 * done / total,
            done / secs.max(1e-9)
        );
    }
}

/// Re-applies `topic`/`partition` messages `[0, until)` for each `(topic, until)`, without
/// outputs; `forget` commands erase as they did the first time.
pub fn rebuild_from_input(
    cfg: &Config,
    engine: &Engine,
    partition: i32,
    until: &[(String, i64)],
    cancel: &AtomicBool,
) -> Result<(LeadTable, Erasures)> {
    let mut leads = LeadTable::tracked();
    let mut erasures = Erasures::default();
    let started = Instant::now();
    let mut applied = 0;
    for (topic, until) in until {
        applied += read_partition(
            cfg,
            topic,
            partition,
            Offset::Beginning,
            Some(*until),
            cancel,
            |m| match screen(cfg, m) {
                Ok(Input::Event(ev)) if !erasures.blocks_event(&leads, &ev.lead_id, ev.ts) => {
                    engine.apply_to(&mut leads, &ev);
                }
                Ok(Input::Verdict(v)) if !erasures.blocks_event(&leads, &v.lead_id, v.ts) => {
                    engine.apply_verdict(leads.get_or_insert(&v.lead_id), &v);
                }
                Ok(Input::Forget { lead_id, at }) => {
                    erasures.forget(&mut leads, lead_id, at);
                }
                _ => {}
            },
        )?;
    }
    counter!(crate::service::metrics::RESTORE_EVENTS_TOTAL.name).increment(applied);
    info!(
        partition,
        events = applied,
        leads = leads.len(),
        "partition state rebuilt from input in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    Ok((leads, erasures))
}
