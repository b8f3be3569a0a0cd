//! Prometheus metrics of the service. Names and labels are documented in docs/OPERATIONS.md.
//!
//! The per-event path counts into a plain [`BatchCounts`] and publishes once per poll batch, so
//! metrics cost nothing per event beyond an integer increment.

use std::collections::BTreeMap;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::event::EventType;

/// Installs the global Prometheus recorder and returns the handle that renders `/metrics`.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("leadscore_event_latency_seconds".into()),
            &[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ],
        )?
        .set_buckets_for_metric(
            Matcher::Full("leadscore_batch_processing_seconds".into()),
            &[
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
            ],
        )?
        .install_recorder()?;
    describe();
    Ok(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "leadscore_events_total",
        "Valid input events by topic and type"
    );
    describe_counter!(
        "leadscore_invalid_total",
        "Invalid input messages sent to the dead-letter topic, by reason"
    );
    describe_counter!(
        "leadscore_bot_total",
        "Email opens/clicks ignored as bot activity"
    );
    describe_counter!("leadscore_duplicate_total", "Events ignored as duplicates");
    describe_counter!("leadscore_sales_ready_total", "sales_ready events emitted");
    describe_counter!(
        "leadscore_rebalances_total",
        "Consumer group rebalances by kind"
    );
    describe_counter!(
        "leadscore_produce_errors_total",
        "Messages the producer could not deliver"
    );
    describe_counter!("leadscore_commits_total", "Offset commits by result");
    describe_counter!(
        "leadscore_rules_reloads_total",
        "Rules reloads (SIGHUP) by result: ok, failed (previous rules kept)"
    );
    describe_counter!(
        "leadscore_restore_events_total",
        "Input events re-applied to rebuild partition state"
    );
    describe_gauge!("leadscore_leads", "Leads held in state by this instance");
    describe_gauge!("leadscore_partitions_assigned", "Input partitions owned");
    describe_gauge!(
        "leadscore_consumer_lag",
        "Messages behind the high watermark, per input partition"
    );
    describe_gauge!(
        "leadscore_ready",
        "1 when all assigned partitions are restored"
    );
    describe_histogram!(
        "leadscore_event_latency_seconds",
        Unit::Seconds,
        "From the Kafka message timestamp to the end of its processing"
    );
    describe_histogram!(
        "leadscore_batch_processing_seconds",
        Unit::Seconds,
        "Time to decode, score and emit one event, averaged per poll batch"
    );
}

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
}

impl BatchCounts {
    /// Adds the counts to the global metrics and resets them.
    pub fn publish(&mut self, topics: &[String]) {
        for ((t, ty), n) in std::mem::take(&mut self.events) {
            counter!("leadscore_events_total", "topic" => topics[t].clone(), "type" => ty.as_str())
                .increment(n);
        }
        for (reason, n) in std::mem::take(&mut self.invalid) {
            counter!("leadscore_invalid_total", "reason" => reason).increment(n);
        }
        if self.bot > 0 {
            counter!("leadscore_bot_total").increment(std::mem::take(&mut self.bot));
        }
        if self.duplicate > 0 {
            counter!("leadscore_duplicate_total").increment(std::mem::take(&mut self.duplicate));
        }
        if self.sales_ready > 0 {
            counter!("leadscore_sales_ready_total")
                .increment(std::mem::take(&mut self.sales_ready));
        }
        if self.erasures > 0 {
            counter!("leadscore_erasures_total").increment(std::mem::take(&mut self.erasures));
        }
        if self.erased > 0 {
            counter!("leadscore_erased_events_total").increment(std::mem::take(&mut self.erased));
        }
    }
}

/// Records end-to-end latencies of a batch.
pub fn record_latencies(latencies: &[f64]) {
    let h = histogram!("leadscore_event_latency_seconds");
    for l in latencies {
        h.record(*l);
    }
}

/// Records the per-event processing time of a batch.
pub fn record_batch(seconds_per_event: f64) {
    histogram!("leadscore_batch_processing_seconds").record(seconds_per_event);
}

/// Sets the state-size gauges.
pub fn set_state(leads: usize, partitions: usize, ready: bool) {
    gauge!("leadscore_leads").set(leads as f64);
    gauge!("leadscore_partitions_assigned").set(partitions as f64);
    gauge!("leadscore_ready").set(if ready { 1.0 } else { 0.0 });
}
