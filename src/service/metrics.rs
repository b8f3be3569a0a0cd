//! Prometheus metrics of the service. Names and labels are documented in docs/OPERATIONS.md.
//!
//! The per-event path counts into a plain [`BatchCounts`] and publishes once per poll batch, so
//! metrics cost nothing per event beyond an integer increment.

use std::collections::BTreeMap;

use metrics::Unit;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::event::EventType;

/// Installs the global Prometheus recorder and returns the handle that renders `/metrics`.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(EVENT_LATENCY_SECONDS.name.into()),
            &[
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
                30.0,
            ],
        )?
        .set_buckets_for_metric(
            Matcher::Full(BATCH_PROCESSING_SECONDS.name.into()),
            &[
                0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2,
            ],
        )?
        .install_recorder()?;
    describe();
    Ok(handle)
}

/// Describes every metric of [`ALL`] and starts its zero-initialised series.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    for m in ALL {
        match (m.kind, m.unit) {
            (Kind::Counter, _) => describe_counter!(m.name, m.help),
            (Kind::Gauge, _) => describe_gauge!(m.name, m.help),
            (Kind::Histogram, Some(unit)) => describe_histogram!(m.name, unit, m.help),
            (Kind::Histogram, None) => describe_histogram!(m.name, m.help),
        }
        if let (Kind::Counter, Some(sets)) = (m.kind, m.zero) {
            for set in sets {
                let labels: Vec<metrics::Label> = set
                    .iter()
                    .map(|(k, v)| metrics::Label::new(*k, *v))
                    .collect();
                counter!(m.name, labels).absolute(0);
            }
        }
    }
}

/// How a metric is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// A current value.
    Gauge,
    /// A distribution (rendered as a Prometheus histogram or summary).
    Histogram,
}

/// One metric of the service: the only place its name is written, with its kind, unit and
/// description, and the label sets it starts at zero with (so that alerts on failures have a
/// series to watch before the first failure).
#[derive(Debug)]
pub struct Metric {
    /// Prometheus name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Unit, when it has one.
    pub unit: Option<Unit>,
    /// `# HELP` text.
    pub help: &'static str,
    /// Label sets initialised to zero at start (`&[]`: the unlabelled series).
    pub zero: Option<&'static [&'static [(&'static str, &'static str)]]>,
}

/// `leadscore_events_total`: valid input events consumed, by topic and type (bot activity and duplicates included).
pub const EVENTS_TOTAL: Metric = Metric {
    name: "leadscore_events_total",
    kind: Kind::Counter,
    unit: None,
    help: "Valid input events consumed, by topic and type (bot activity and duplicates included)",
    zero: None,
};

/// `leadscore_invalid_total`: invalid input messages sent to the dead-letter topic, by reason.
pub const INVALID_TOTAL: Metric = Metric {
    name: "leadscore_invalid_total",
    kind: Kind::Counter,
    unit: None,
    help: "Invalid input messages sent to the dead-letter topic, by reason",
    zero: Some(&[
        &[("reason", "bad_json")],
        &[("reason", "bad_protobuf")],
        &[("reason", "missing_field")],
        &[("reason", "wrong_type")],
        &[("reason", "unknown_type")],
        &[("reason", "bad_length")],
        &[("reason", "bad_timestamp")],
        &[("reason", "bad_value")],
        &[("reason", "key_mismatch")],
        &[("reason", "over_limit")],
        &[("reason", "untimely")],
    ]),
};

/// `leadscore_bot_total`: email opens and clicks ignored as bot activity.
pub const BOT_TOTAL: Metric = Metric {
    name: "leadscore_bot_total",
    kind: Kind::Counter,
    unit: None,
    help: "Email opens and clicks ignored as bot activity",
    zero: Some(&[&[]]),
};

/// `leadscore_duplicate_total`: events ignored as duplicates.
pub const DUPLICATE_TOTAL: Metric = Metric {
    name: "leadscore_duplicate_total",
    kind: Kind::Counter,
    unit: None,
    help: "Events ignored as duplicates",
    zero: Some(&[&[]]),
};

/// `leadscore_sales_ready_total`: sales_ready events emitted.
pub const SALES_READY_TOTAL: Metric = Metric {
    name: "leadscore_sales_ready_total",
    kind: Kind::Counter,
    unit: None,
    help: "sales_ready events emitted",
    zero: Some(&[&[]]),
};

/// `leadscore_erasures_total`: forget commands applied.
pub const ERASURES_TOTAL: Metric = Metric {
    name: "leadscore_erasures_total",
    kind: Kind::Counter,
    unit: None,
    help: "forget commands applied",
    zero: Some(&[&[]]),
};

/// `leadscore_alerts_withheld_total`: crossings withheld because sales rejected the lead
/// less than `suppress_after_rejection` ago.
pub const ALERTS_WITHHELD_TOTAL: Metric = Metric {
    name: "leadscore_alerts_withheld_total",
    kind: Kind::Counter,
    unit: None,
    help: "Threshold crossings withheld because sales rejected the lead recently",
    zero: Some(&[&[]]),
};

/// `leadscore_sales_outcomes_total`: sales verdicts applied, by outcome.
pub const SALES_OUTCOMES_TOTAL: Metric = Metric {
    name: "leadscore_sales_outcomes_total",
    kind: Kind::Counter,
    unit: None,
    help:
        "Sales verdicts applied from the outcomes topic, by outcome (accepted, rejected, won, lost)",
    zero: Some(&[
        &[("outcome", "accepted")],
        &[("outcome", "rejected")],
        &[("outcome", "won")],
        &[("outcome", "lost")],
    ]),
};

/// `leadscore_rejections_by_signal_total`: rejections by the top signal of the rejected
/// lead's last alert.
pub const REJECTIONS_BY_SIGNAL_TOTAL: Metric = Metric {
    name: "leadscore_rejections_by_signal_total",
    kind: Kind::Counter,
    unit: None,
    help: "Sales rejections by the rule that was the top signal of the lead's last alert",
    zero: None,
};

/// `leadscore_erased_events_total`: events refused because their lead was erased.
pub const ERASED_EVENTS_TOTAL: Metric = Metric {
    name: "leadscore_erased_events_total",
    kind: Kind::Counter,
    unit: None,
    help: "Events refused because their lead was erased",
    zero: Some(&[&[]]),
};

/// `leadscore_erasures_expired_total`: erasure records dropped after erasure_retention.
pub const ERASURES_EXPIRED_TOTAL: Metric = Metric {
    name: "leadscore_erasures_expired_total",
    kind: Kind::Counter,
    unit: None,
    help: "Erasure records dropped after erasure_retention",
    zero: Some(&[&[]]),
};

/// `leadscore_rebalances_total`: consumer group rebalances, by kind (assign, revoke).
pub const REBALANCES_TOTAL: Metric = Metric {
    name: "leadscore_rebalances_total",
    kind: Kind::Counter,
    unit: None,
    help: "Consumer group rebalances, by kind (assign, revoke)",
    zero: Some(&[&[("kind", "assign")], &[("kind", "revoke")]]),
};

/// `leadscore_assignment_lost_total`: revocations after the assignment was lost (nothing written for them).
pub const ASSIGNMENT_LOST_TOTAL: Metric = Metric {
    name: "leadscore_assignment_lost_total",
    kind: Kind::Counter,
    unit: None,
    help: "Revocations after the assignment was lost (nothing written for them)",
    zero: Some(&[&[]]),
};

/// `leadscore_produce_errors_total`: messages the producer could not deliver, by topic.
pub const PRODUCE_ERRORS_TOTAL: Metric = Metric {
    name: "leadscore_produce_errors_total",
    kind: Kind::Counter,
    unit: None,
    help: "Messages the producer could not deliver, by topic",
    zero: None,
};

/// `leadscore_client_errors_total`: errors reported by a Kafka client, by client.
pub const CLIENT_ERRORS_TOTAL: Metric = Metric {
    name: "leadscore_client_errors_total",
    kind: Kind::Counter,
    unit: None,
    help: "Errors reported by a Kafka client, by client",
    zero: Some(&[&[("client", "producer")]]),
};

/// `leadscore_commits_total`: offset commit callbacks (at_least_once), by result.
pub const COMMITS_TOTAL: Metric = Metric {
    name: "leadscore_commits_total",
    kind: Kind::Counter,
    unit: None,
    help: "Offset commit callbacks (at_least_once), by result",
    zero: Some(&[&[("result", "ok")], &[("result", "error")]]),
};

/// `leadscore_consumer_errors_total`: consumer errors, by class: transient (retried) or fatal (the service stops).
pub const CONSUMER_ERRORS_TOTAL: Metric = Metric {
    name: "leadscore_consumer_errors_total",
    kind: Kind::Counter,
    unit: None,
    help: "Consumer errors, by class: transient (retried) or fatal (the service stops)",
    zero: Some(&[&[("class", "transient")], &[("class", "fatal")]]),
};

/// `leadscore_transaction_errors_total`: failed transactional calls (exactly_once), by call and class.
pub const TRANSACTION_ERRORS_TOTAL: Metric = Metric {
    name: "leadscore_transaction_errors_total",
    kind: Kind::Counter,
    unit: None,
    help: "Failed transactional calls (exactly_once), by call and class",
    zero: Some(&[&[("call", "commit_transaction"), ("class", "retry")]]),
};

/// `leadscore_producer_stuck_total`: transactional calls abandoned after their bound (librdkafka#5456), by call.
pub const PRODUCER_STUCK_TOTAL: Metric = Metric {
    name: "leadscore_producer_stuck_total",
    kind: Kind::Counter,
    unit: None,
    help: "Transactional calls abandoned after their bound (librdkafka#5456), by call",
    zero: None,
};

/// `leadscore_fatal_errors_total`: failures the service stopped on.
pub const FATAL_ERRORS_TOTAL: Metric = Metric {
    name: "leadscore_fatal_errors_total",
    kind: Kind::Counter,
    unit: None,
    help: "Failures the service stopped on",
    zero: Some(&[&[]]),
};

/// `leadscore_rewinds_total`: rewinds to the last durable checkpoint.
pub const REWINDS_TOTAL: Metric = Metric {
    name: "leadscore_rewinds_total",
    kind: Kind::Counter,
    unit: None,
    help: "Rewinds to the last durable checkpoint",
    zero: Some(&[&[]]),
};

/// `leadscore_rewinds_exhausted_total`: 1 when five rewinds in a row failed and the service stopped.
pub const REWINDS_EXHAUSTED_TOTAL: Metric = Metric {
    name: "leadscore_rewinds_exhausted_total",
    kind: Kind::Counter,
    unit: None,
    help: "1 when five rewinds in a row failed and the service stopped",
    zero: Some(&[&[]]),
};

/// `leadscore_rules_reloads_total`: rules reloads (SIGHUP), by result: ok, failed (previous rules kept).
pub const RULES_RELOADS_TOTAL: Metric = Metric {
    name: "leadscore_rules_reloads_total",
    kind: Kind::Counter,
    unit: None,
    help: "Rules reloads (SIGHUP), by result: ok, failed (previous rules kept)",
    zero: Some(&[&[("result", "ok")], &[("result", "failed")]]),
};

/// `leadscore_restore_events_total`: input events re-applied to rebuild partition state.
pub const RESTORE_EVENTS_TOTAL: Metric = Metric {
    name: "leadscore_restore_events_total",
    kind: Kind::Counter,
    unit: None,
    help: "Input events re-applied to rebuild partition state",
    zero: Some(&[&[]]),
};

/// `leadscore_restore_leads_total`: leads restored, by source: local, changelog, input, new.
pub const RESTORE_LEADS_TOTAL: Metric = Metric {
    name: "leadscore_restore_leads_total",
    kind: Kind::Counter,
    unit: None,
    help: "Leads restored, by source: local, changelog, input, new",
    zero: None,
};

/// `leadscore_store_corrupt_total`: local store files found unreadable, quarantined and restored from the changelog.
pub const STORE_CORRUPT_TOTAL: Metric = Metric {
    name: "leadscore_store_corrupt_total",
    kind: Kind::Counter,
    unit: None,
    help: "Local store files found unreadable, quarantined and restored from the changelog",
    zero: Some(&[&[]]),
};

/// `leadscore_checkpoint_leads_total`: leads written by checkpoints.
pub const CHECKPOINT_LEADS_TOTAL: Metric = Metric {
    name: "leadscore_checkpoint_leads_total",
    kind: Kind::Counter,
    unit: None,
    help: "Leads written by checkpoints",
    zero: Some(&[&[]]),
};

/// `leadscore_evicted_total`: leads evicted by retention.
pub const EVICTED_TOTAL: Metric = Metric {
    name: "leadscore_evicted_total",
    kind: Kind::Counter,
    unit: None,
    help: "Leads evicted by retention",
    zero: Some(&[&[]]),
};

/// `leadscore_leads_shed_total`: leads dropped from memory to keep `max_leads_in_memory`.
pub const LEADS_SHED_TOTAL: Metric = Metric {
    name: "leadscore_leads_shed_total",
    kind: Kind::Counter,
    unit: None,
    help: "Leads dropped from memory (kept in the local store) to stay within max_leads_in_memory",
    zero: Some(&[&[]]),
};

/// `leadscore_leads_read_back_total`: cold leads read back from the local store.
pub const LEADS_READ_BACK_TOTAL: Metric = Metric {
    name: "leadscore_leads_read_back_total",
    kind: Kind::Counter,
    unit: None,
    help: "Leads read back from the local store on their next event (max_leads_in_memory)",
    zero: Some(&[&[]]),
};

/// `leadscore_leads`: leads held in memory by this instance.
pub const LEADS: Metric = Metric {
    name: "leadscore_leads",
    kind: Kind::Gauge,
    unit: None,
    help: "Leads held in memory by this instance",
    zero: None,
};

/// `leadscore_partitions_assigned`: input partitions owned.
pub const PARTITIONS_ASSIGNED: Metric = Metric {
    name: "leadscore_partitions_assigned",
    kind: Kind::Gauge,
    unit: None,
    help: "Input partitions owned",
    zero: None,
};

/// `leadscore_ready`: 1 when every assigned partition is restored.
pub const READY: Metric = Metric {
    name: "leadscore_ready",
    kind: Kind::Gauge,
    unit: None,
    help: "1 when every assigned partition is restored",
    zero: None,
};

/// `leadscore_consumer_lag`: messages behind the high watermark, per input partition.
pub const CONSUMER_LAG: Metric = Metric {
    name: "leadscore_consumer_lag",
    kind: Kind::Gauge,
    unit: None,
    help: "Messages behind the high watermark, per input partition",
    zero: None,
};

/// `leadscore_restore_seconds`: duration of one partition's restore.
pub const RESTORE_SECONDS: Metric = Metric {
    name: "leadscore_restore_seconds",
    kind: Kind::Histogram,
    unit: Some(Unit::Seconds),
    help: "Duration of one partition's restore",
    zero: None,
};

/// `leadscore_checkpoint_seconds`: duration of a checkpoint (changelog, flush or commit, store, offsets).
pub const CHECKPOINT_SECONDS: Metric = Metric {
    name: "leadscore_checkpoint_seconds",
    kind: Kind::Histogram,
    unit: Some(Unit::Seconds),
    help: "Duration of a checkpoint (changelog, flush or commit, store, offsets)",
    zero: None,
};

/// `leadscore_event_latency_seconds`: from the Kafka message timestamp to the end of its processing.
pub const EVENT_LATENCY_SECONDS: Metric = Metric {
    name: "leadscore_event_latency_seconds",
    kind: Kind::Histogram,
    unit: Some(Unit::Seconds),
    help: "From the Kafka message timestamp to the end of its processing",
    zero: None,
};

/// `leadscore_batch_processing_seconds`: time to screen, score and emit one event, averaged per poll batch.
pub const BATCH_PROCESSING_SECONDS: Metric = Metric {
    name: "leadscore_batch_processing_seconds",
    kind: Kind::Histogram,
    unit: Some(Unit::Seconds),
    help: "Time to screen, score and emit one event, averaged per poll batch",
    zero: None,
};

/// Every metric, in the order docs/OPERATIONS.md lists them.
pub const ALL: [&Metric; 38] = [
    &EVENTS_TOTAL,
    &INVALID_TOTAL,
    &BOT_TOTAL,
    &DUPLICATE_TOTAL,
    &SALES_READY_TOTAL,
    &ALERTS_WITHHELD_TOTAL,
    &SALES_OUTCOMES_TOTAL,
    &REJECTIONS_BY_SIGNAL_TOTAL,
    &ERASURES_TOTAL,
    &ERASED_EVENTS_TOTAL,
    &ERASURES_EXPIRED_TOTAL,
    &REBALANCES_TOTAL,
    &ASSIGNMENT_LOST_TOTAL,
    &PRODUCE_ERRORS_TOTAL,
    &CLIENT_ERRORS_TOTAL,
    &COMMITS_TOTAL,
    &CONSUMER_ERRORS_TOTAL,
    &TRANSACTION_ERRORS_TOTAL,
    &PRODUCER_STUCK_TOTAL,
    &FATAL_ERRORS_TOTAL,
    &REWINDS_TOTAL,
    &REWINDS_EXHAUSTED_TOTAL,
    &RULES_RELOADS_TOTAL,
    &RESTORE_EVENTS_TOTAL,
    &RESTORE_LEADS_TOTAL,
    &STORE_CORRUPT_TOTAL,
    &CHECKPOINT_LEADS_TOTAL,
    &EVICTED_TOTAL,
    &LEADS_SHED_TOTAL,
    &LEADS_READ_BACK_TOTAL,
    &LEADS,
    &PARTITIONS_ASSIGNED,
    &READY,
    &CONSUMER_LAG,
    &RESTORE_SECONDS,
    &CHECKPOINT_SECONDS,
    &EVENT_LATENCY_SECONDS,
    &BATCH_PROCESSING_SECONDS,
];

/// Counters of one poll batch, published together.
#[derive(Debug, Default)]
pub struct BatchCounts {
    /// (topic, type) → valid events.
    pub events: BTreeMap<(usize, EventType), u64>,
    /// reason code → invalid messages.
    pub invalid: BTreeMap<&'static str, u64>,
    /// Bot activity.
    pub bot: u64,
    /// Duplicates.
    pub duplicate: u64,
    /// sales_ready emitted.
    pub sales_ready: u64,
    /// `forget` commands applied.
    pub erasures: u64,
    /// Events refused because their lead was erased.
    pub erased: u64,
    /// Crossings withheld after a rejection.
    pub withheld: u64,
    /// Cold leads read back from the local store.
    pub read_back: u64,
    /// Verdicts applied, by outcome.
    pub verdicts: BTreeMap<&'static str, u64>,
    /// Rejections by the rule charged with them.
    pub rejections: BTreeMap<Box<str>, u64>,
}

impl BatchCounts {
    /// Adds the counts to the global metrics and resets them.
    pub fn publish(&mut self, topics: &[String]) {
        for ((t, ty), n) in std::mem::take(&mut self.events) {
            counter!(EVENTS_TOTAL.name, "topic" => topics[t].clone(), "type" => ty.as_str())
                .increment(n);
        }
        for (reason, n) in std::mem::take(&mut self.invalid) {
            counter!(INVALID_TOTAL.name, "reason" => reason).increment(n);
        }
        if self.bot > 0 {
            counter!(BOT_TOTAL.name).increment(std::mem::take(&mut self.bot));
        }
        if self.duplicate > 0 {
            counter!(DUPLICATE_TOTAL.name).increment(std::mem::take(&mut self.duplicate));
        }
        if self.sales_ready > 0 {
            counter!(SALES_READY_TOTAL.name).increment(std::mem::take(&mut self.sales_ready));
        }
        if self.erasures > 0 {
            counter!(ERASURES_TOTAL.name).increment(std::mem::take(&mut self.erasures));
        }
        if self.erased > 0 {
            counter!(ERASED_EVENTS_TOTAL.name).increment(std::mem::take(&mut self.erased));
        }
        if self.withheld > 0 {
            counter!(ALERTS_WITHHELD_TOTAL.name).increment(std::mem::take(&mut self.withheld));
        }
        if self.read_back > 0 {
            counter!(LEADS_READ_BACK_TOTAL.name).increment(std::mem::take(&mut self.read_back));
        }
        for (outcome, n) in std::mem::take(&mut self.verdicts) {
            counter!(SALES_OUTCOMES_TOTAL.name, "outcome" => outcome).increment(n);
        }
        for (rule, n) in std::mem::take(&mut self.rejections) {
            counter!(REJECTIONS_BY_SIGNAL_TOTAL.name, "rule" => rule.to_string()).increment(n);
        }
    }
}

/// Records end-to-end latencies of a batch.
pub fn record_latencies(latencies: &[f64]) {
    let h = histogram!(EVENT_LATENCY_SECONDS.name);
    for l in latencies {
        h.record(*l);
    }
}

/// Records the per-event processing time of a batch.
pub fn record_batch(seconds_per_event: f64) {
    histogram!(BATCH_PROCESSING_SECONDS.name).record(seconds_per_event);
}

/// Sets the state-size gauges.
pub fn set_state(leads: usize, partitions: usize, ready: bool) {
    gauge!(LEADS.name).set(leads as f64);
    gauge!(PARTITIONS_ASSIGNED.name).set(partitions as f64);
    gauge!(READY.name).set(if ready { 1.0 } else { 0.0 });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_operations_md_lists_exactly_the_metrics() {
        let docs = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/OPERATIONS.md"),
        )
        .unwrap();
        let table: Vec<&str> = docs
            .lines()
            .filter_map(|l| l.strip_prefix("| `leadscore_"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let names: Vec<&str> = ALL.iter().map(|m| &m.name["leadscore_".len()..]).collect();
        assert_eq!(
            table, names,
            "docs/OPERATIONS.md's metrics table, in the order of ALL"
        );
    }
}
