//! The group consumer: its settings (assignment protocol, isolation, static membership), its
//! callbacks (rebalance → the pipeline's `on_assign`/`on_revoke`, commit results, client errors,
//! statistics), and the classification of consumer errors.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use metrics::{counter, gauge};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{error, warn};

use crate::config::{Assignment, Config};
use crate::kafka::client_config;
use crate::service::pipeline::Pipeline;
use crate::service::shared::Shared;

/// What a consumer error means for the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerErrorClass {
    /// Not an error (end of partition).
    Ignore,
    /// librdkafka retries by itself (broker down, timeouts, rebalancing): log and count.
    Transient,
    /// The consumer cannot go on (fenced, not authorised, max.poll.interval exceeded, fatal):
    /// the service turns unhealthy and exits non-zero.
    Fatal,
}

/// Sorts a consumer or client error.
pub fn classify_consumer_error(e: &KafkaError) -> ConsumerErrorClass {
    use RDKafkaErrorCode as C;
    if matches!(e, KafkaError::PartitionEOF(_)) {
        return ConsumerErrorClass::Ignore;
    }
    match e.rdkafka_error_code() {
        Some(
            C::Fatal
            | C::Fenced
            | C::FencedInstanceId
            | C::PollExceeded
            | C::Authentication
            | C::SaslAuthenticationFailed
            | C::TopicAuthorizationFailed
            | C::GroupAuthorizationFailed
            | C::ClusterAuthorizationFailed,
        ) => ConsumerErrorClass::Fatal,
        _ => ConsumerErrorClass::Transient,
    }
}

/// The consumer's default `fetch.wait.max.ms`.
pub const FETCH_WAIT_MS: &str = "100";

/// The consumer's default `fetch.queue.backoff.ms`. librdkafka's 1000 ms postpones a
/// partition's next fetch by a second whenever its local queue is over its thresholds, which
/// starved the service: 120k instead of 329k events/s on scripts/bench-service.sh
/// (docs/BENCHMARKS.md, "Where the time goes").
pub const FETCH_QUEUE_BACKOFF_MS: &str = "100";

/// The consumer's settings for this configuration.
pub fn consumer_config(cfg: &Config) -> Result<rdkafka::ClientConfig> {
    let stats_ms = cfg.statistics_interval.as_millis().to_string();
    let mut c = client_config(&cfg.brokers, &cfg.kafka);
    if !cfg.kafka.contains_key("fetch.wait.max.ms") {
        // An idle partition's fetch answers within 100 ms of new data, at a tenth of the idle
        // fetches of 10 ms (librdkafka's default is 500 ms).
        c.set("fetch.wait.max.ms", FETCH_WAIT_MS);
    }
    if !cfg.kafka.contains_key("fetch.queue.backoff.ms") {
        c.set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS);
    }
    c.set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Events of aborted producer transactions are not events; restores read the same way.
        .set("isolation.level", "read_committed")
        .set("statistics.interval.ms", &stats_ms);
    match cfg.assignment {
        Assignment::Range => {
            c.set("partition.assignment.strategy", "range");
        }
        Assignment::CooperativeSticky => {
            c.set("partition.assignment.strategy", "cooperative-sticky");
        }
        Assignment::Consumer => {
            let assignor = if cfg.input_topics.len() > 1 {
                "range"
            } else {
                "uniform"
            };
            c.set("group.protocol", "consumer")
                .set("group.remote.assignor", assignor);
        }
    }
    if let Some(id) = &cfg.instance_id {
        // Static membership: a restarted instance takes its partitions back at once.
        c.set("group.instance.id", id);
    }
    Ok(c)
}

/// Callbacks of the group consumer. The rebalance callback runs inside `poll` on the pipeline
/// thread, never while the loop holds `pipeline`.
pub struct GroupContext {
    /// The pipeline's state and handlers.
    pub pipeline: Mutex<Pipeline>,
    /// Offsets the broker confirmed in commit callbacks, drained by the pipeline (a separate
    /// lock: a synchronous commit may call back while `pipeline` is held).
    pub confirmed: Mutex<BTreeMap<(String, i32), i64>>,
    /// For health and fatal errors.
    pub shared: Arc<Shared>,
    /// Input topics (for statistics).
    pub topics: Vec<String>,
}

impl GroupContext {
    /// Creates the consumer.
    pub fn consumer(cfg: &Config, ctx: GroupContext) -> Result<BaseConsumer<GroupContext>> {
        consumer_config(cfg)?
            .create_with_context(ctx)
            .context("cannot create Kafka consumer")
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
                    gauge!(crate::service::metrics::CONSUMER_LAG.name, "topic" => topic.clone(), "partition" => p.to_string())
                        .set(part.consumer_lag as f64);
                }
            }
        }
    }

    fn error(&self, e: KafkaError, reason: &str) {
        match classify_consumer_error(&e) {
            ConsumerErrorClass::Ignore => {}
            ConsumerErrorClass::Transient => {
                counter!(crate::service::metrics::CONSUMER_ERRORS_TOTAL.name, "class" => "transient").increment(1);
                warn!("consumer: {e}: {reason}");
            }
            ConsumerErrorClass::Fatal => {
                counter!(crate::service::metrics::CONSUMER_ERRORS_TOTAL.name, "class" => "fatal")
                    .increment(1);
                self.shared.fail(format!("consumer: {e}: {reason}"));
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let mut pipeline = self.pipeline.lock().unwrap();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                pipeline.on_assign(consumer, tpl)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                pipeline.on_revoke(consumer, tpl)
            }
            other => {
                let code: RDKafkaErrorCode = other.into();
                error!("rebalance error: {code}; releasing the assignment");
                pipeline.on_revoke(consumer, tpl);
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                counter!(crate::service::metrics::COMMITS_TOTAL.name, "result" => "ok")
                    .increment(1);
                let mut confirmed = self.confirmed.lock().unwrap();
                for e in offsets.elements() {
                    if let Offset::Offset(o) = e.offset() {
                        confirmed.insert((e.topic().to_string(), e.partition()), o);
                    }
                }
            }
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                // The offsets stay dirty: the next checkpoint commits them again.
                counter!(crate::service::metrics::COMMITS_TOTAL.name, "result" => "error")
                    .increment(1);
                warn!("offset commit failed (retried at the next checkpoint): {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fencing_authorisation_and_poll_timeouts_are_fatal() {
        for code in [
            RDKafkaErrorCode::FencedInstanceId,
            RDKafkaErrorCode::PollExceeded,
            RDKafkaErrorCode::SaslAuthenticationFailed,
            RDKafkaErrorCode::GroupAuthorizationFailed,
        ] {
            let e = KafkaError::MessageConsumption(code);
            assert_eq!(
                classify_consumer_error(&e),
                ConsumerErrorClass::Fatal,
                "{code:?}"
            );
        }
    }

    #[test]
    fn broker_outages_are_transient_and_eof_is_ignored() {
        let e = KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown);
        assert_eq!(classify_consumer_error(&e), ConsumerErrorClass::Transient);
        let e = KafkaError::MessageConsumption(RDKafkaErrorCode::BrokerTransportFailure);
        assert_eq!(classify_consumer_error(&e), ConsumerErrorClass::Transient);
        assert_eq!(
            classify_consumer_error(&KafkaError::PartitionEOF(3)),
            ConsumerErrorClass::Ignore
        );
    }

    #[test]
    fn several_input_topics_under_kip_848_use_the_range_assignor() {
        let mut cfg = Config {
            assignment: Assignment::Consumer,
            ..Config::default()
        };
        let c = consumer_config(&cfg).unwrap();
        assert_eq!(c.get("group.protocol"), Some("consumer"));
        assert_eq!(c.get("group.remote.assignor"), Some("uniform"));
        assert_eq!(c.get("partition.assignment.strategy"), None);
        cfg.input_topics.push("more".into());
        let c = consumer_config(&cfg).unwrap();
        assert_eq!(c.get("group.remote.assignor"), Some("range"));
        assert_eq!(c.get("isolation.level"), Some("read_committed"));
    }
}
