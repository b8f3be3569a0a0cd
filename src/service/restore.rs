//! Rebuilding a partition's state when this instance is assigned it.
//!
//! State is a pure function of the input prefix, so a partition's leads can be rebuilt by
//! re-applying its input messages from the beginning up to the committed offset (outputs for
//! those were already emitted and acknowledged before the commit, so they are not re-sent).
//! Cost grows with the topic's history; the durable store and changelog replace this path.

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

/// Re-applies `topic`/`partition` messages `[beginning, until)` for each `(topic, until)`.
pub fn rebuild_from_input(
    cfg: &Config,
    engine: &Engine,
    partition: i32,
    until: &[(String, i64)],
) -> Result<LeadTable> {
    let mut leads = LeadTable::new();
    let wanted: Vec<&(String, i64)> = until.iter().filter(|(_, o)| *o > 0).collect();
    if wanted.is_empty() {
        return Ok(leads);
    }
    let consumer: BaseConsumer = client_config(&cfg.brokers, &cfg.kafka)
        .set("group.id", format!("{}-restore", cfg.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .context("cannot create restore consumer")?;
    let started = Instant::now();
    let mut applied = 0u64;
    for (topic, until) in wanted {
        // Read from the beginning to the committed offset. The end is found by offsets and
        // partition EOF, never by ListOffsets (tansu 0.6 answers it wrongly; ARCHITECTURE.md).
        let end = *until;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let mut last_log = Instant::now();
        let mut first = true;
        let mut next = 0;
        while next < end {
            match consumer.poll(Duration::from_millis(500)) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    warn!(
                        topic,
                        partition, "input ends at offset {next}, before the committed offset {end}"
                    );
                    break;
                }
                Some(Err(e)) => warn!(topic, partition, "restore poll: {e}"),
                Some(Ok(m)) => {
                    if first && m.offset() > 0 {
                        warn!(
                            topic,
                            partition,
                            "input history before offset {} is gone (retention): rebuilt state starts there",
                            m.offset()
                        );
                    }
                    first = false;
                    next = m.offset() + 1;
                    if m.offset() >= end {
                        break;
                    }
                    if let Ok(ev) =
                        decode(m.payload().unwrap_or_default(), m.key(), cfg.input_format)
                    {
                        engine.apply(leads.get_or_insert(&ev.lead_id), &ev);
                    }
                    applied += 1;
                    if last_log.elapsed() >= Duration::from_secs(2) {
                        last_log = Instant::now();
                        info!(
                            topic,
                            partition,
                            "restoring: offset {next} of {end} ({} leads)",
                            leads.len()
                        );
                    }
                }
            }
        }
        consumer.unassign()?;
    }
    counter!("leadscore_restore_events_total").increment(applied);
    info!(
        partition,
        events = applied,
        leads = leads.len(),
        "partition state rebuilt from input in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    Ok(leads)
}
