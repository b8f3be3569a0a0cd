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
    // A changelog partitioned otherwise would put leads in the wrong partitions.
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
                .block_on(crate::kafka::ensure_topics(
                    &cfg.brokers,
                    &cfg.kafka,
                    &[(log.clone(), input_parts)],
                    &[("cleanup.policy", "compact")],
                ))?;
            info!(topic = %log, partitions = input_parts, "created the state changelog topic");
        }
    }
    Ok(())
}
