//! The topics the service needs, checked at start: inputs co-partitioned, outputs present, and
//! the state changelog created (compacted, partitioned like the input) when missing.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use tracing::info;

use crate::config::Config;
use crate::service::changelog;

/// Fails fast when a topic the service needs does not exist or is partitioned wrongly.
pub fn check_topics<C: ConsumerContext>(cfg: &Config, consumer: &BaseConsumer<C>) -> Result<()> {
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(15))
        .with_context(|| format!("cannot reach the Kafka brokers at {}", cfg.brokers))?;
    let partitions = |name: &str| {
        md.topics()
            .iter()
            .find(|t| t.name() == name && t.error().is_none())
            .map(|t| t.partitions().len() as i32)
    };
    let missing: Vec<&str> = cfg
        .input_topics
        .iter()
        .chain([&cfg.output_topic, &cfg.dlq_topic])
        .map(String::as_str)
        .filter(|t| partitions(t).is_none())
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
    ensure_changelog(cfg, &log, partitions(&log), input_parts)?;
    check_record_sizes(cfg, &log)
}

/// The changelog exists with the input's partition count (created when missing): partitioned
/// otherwise it would put leads in the wrong partitions.
fn ensure_changelog(cfg: &Config, log: &str, has: Option<i32>, input_parts: i32) -> Result<()> {
    match has {
        Some(n) if n == input_parts => {}
        Some(n) => bail!(
            "changelog topic {log} has {n} partitions but the input has {input_parts}\n  fix: delete {log} (state is then rebuilt from the input) or repartition it"
        ),
        None => {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(crate::kafka::ensure_topics(
                    &cfg.brokers,
                    &cfg.kafka,
                    &[(log.to_string(), input_parts)],
                    &[("cleanup.policy", "compact")],
                ))?;
            info!(topic = %log, partitions = input_parts, "created the state changelog topic");
        }
    }
    Ok(())
}

/// Every topic the service writes records of up to `max_message_bytes` to (dead letters, the
/// changelog) accepts them: otherwise one large dead letter would be refused at every retry.
fn check_record_sizes(cfg: &Config, log: &str) -> Result<()> {
    let max = cfg.limits.max_message_bytes;
    let topics = [cfg.dlq_topic.as_str(), log];
    let sizes = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(crate::kafka::max_message_bytes(
            &cfg.brokers,
            &cfg.kafka,
            &topics,
        ))?;
    for (topic, accepts) in sizes {
        // A record batch adds ~100 bytes of framing to one record.
        if accepts < max + 512 {
            bail!(
                "topic {topic} accepts records up to {accepts} bytes (max.message.bytes) but \
                 max_message_bytes is {max}\n  fix: lower max_message_bytes to {} or raise the \
                 topic's max.message.bytes",
                accepts.saturating_sub(512)
            );
        }
    }
    Ok(())
}
