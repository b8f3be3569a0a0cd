//! Input written by a transactional upstream producer (as Kafka Streams, Flink or Debezium
//! write it): committed transactions interleaved with aborted ones. The input's offsets are then
//! not contiguous (every transaction leaves a control record). Every committed event must be
//! scored exactly as `replay` scores the committed events, with every output present and no
//! aborted event scored.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use support::*;

/// Writes `committed` in transactions of `size` records; before every third one, a transaction
/// of `poison` records that is aborted.
fn produce_transactionally(
    topic: &str,
    committed: &[leadscore::gen::GenRecord],
    poison: &[(String, String)],
    size: usize,
) {
    let producer: ThreadedProducer<DefaultProducerContext> =
        leadscore::kafka::client_config(&brokers(), &BTreeMap::new())
            .set("transactional.id", unique("upstream"))
            .set("linger.ms", "5")
            .create()
            .unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    let send = |(key, payload): &(String, String)| {
        let mut record = BaseRecord::to(topic).key(key).payload(payload);
        loop {
            match producer.send(record) {
                Ok(()) => return,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    };
    let mut poison = poison.chunks(size / 4);
    for (i, chunk) in committed.chunks(size).enumerate() {
        if i % 3 == 0 {
            if let Some(bad) = poison.next() {
                producer.begin_transaction().unwrap();
                bad.iter().for_each(send);
                producer.flush(Duration::from_secs(30)).unwrap();
                producer.abort_transaction(Duration::from_secs(30)).unwrap();
            }
        }
        producer.begin_transaction().unwrap();
        chunk
            .iter()
            .map(|r| (r.lead_id.clone(), r.json_line()))
            .for_each(|kv| send(&kv));
        producer
            .commit_transaction(Duration::from_secs(30))
            .unwrap();
    }
}

#[test]
fn committed_transactional_input_scores_as_replay_and_aborted_events_never_count() {
    let n = Names::new("txn-input");
    create_topics(&n, 4);
    let records = stream(3_000, 51);
    // Aborted events would qualify leads if they were scored: the same leads' pricing and demo
    // activity, with ids of their own.
    let poison: Vec<(String, String)> = stream(3_000, 52)
        .iter()
        .map(|r| {
            let line = r
                .json_line()
                .replace("\"event_id\":\"", "\"event_id\":\"aborted-");
            (r.lead_id.clone(), line)
        })
        .collect();
    let mut svc = Service::start(&n, &[]);
    svc.wait_ready(Duration::from_secs(90));
    produce_transactionally(&n.input, &records, &poison, 400);

    let ends = high_watermarks(&n.input);
    let offsets: i64 = ends.values().sum();
    assert!(
        offsets > records.len() as i64,
        "control records and aborted events leave gaps: {offsets} offsets for {} events",
        records.len()
    );
    wait_all_committed(&n.group, &n.input, &ends, Duration::from_secs(180), &[&svc]);
    assert_replay_exactly(&n, &records, &[&svc]);
    let valid = svc.metric("leadscore_events_total") + svc.metric("leadscore_invalid_total");
    assert_eq!(
        valid as usize,
        records.len(),
        "every committed event, nothing aborted"
    );
    let log = svc.log_text();
    assert!(!log.contains("WARN"), "no warnings on gaps:\n{log}");
}
