//! CloudEvents 1.0 on Kafka (protocol binding, binary mode): a subscriber written with the
//! official Python SDK (tests/cloudevents_subscriber.py) reads every `sales_ready` and every
//! dead letter as a CloudEvent with the promised attributes; input may itself arrive as a
//! CloudEvent, in binary or structured mode, and scores as the plain event does.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use leadscore::gen::GenRecord;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use support::*;

/// What the SDK subscriber read from a topic: one JSON value per event.
fn subscribe(topic: &str, count: usize) -> Vec<Value> {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cloudevents_subscriber.py");
    let out = Command::new("python3")
        .arg(script)
        .args([&brokers(), topic, &count.to_string()])
        .output()
        .expect("python3 (scripts/install-test-tools.sh installs the SDK)");
    assert!(
        out.status.success(),
        "subscriber: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Produces events as CloudEvents: the first half in binary mode, the rest structured.
fn produce_as_cloudevents(topic: &str, records: &[GenRecord]) {
    let producer: FutureProducer = leadscore::kafka::client_config(&brokers(), &BTreeMap::new())
        .create()
        .unwrap();
    rt().block_on(async {
        for (i, r) in records.iter().enumerate() {
            let event: Value = serde_json::from_str(&r.json_line()).unwrap();
            let id = event["event_id"].as_str().unwrap().to_string();
            let (headers, payload) = if i % 2 == 0 {
                let h = [
                    ("ce_specversion", "1.0"),
                    ("ce_id", id.as_str()),
                    ("ce_source", "/tracker"),
                    ("ce_type", "com.example.page_event"),
                    ("content-type", "application/json"),
                ]
                .into_iter()
                .fold(OwnedHeaders::new(), |h, (key, v)| {
                    h.insert(Header {
                        key,
                        value: Some(v),
                    })
                });
                (h, event.to_string())
            } else {
                let h = OwnedHeaders::new().insert(Header {
                    key: "content-type",
                    value: Some("application/cloudevents+json; charset=UTF-8"),
                });
                let envelope = json!({"specversion": "1.0", "id": id, "source": "/tracker",
                    "type": "com.example.page_event", "datacontenttype": "application/json",
                    "data": event});
                (h, envelope.to_string())
            };
            let record = FutureRecord::to(topic)
                .key(&r.lead_id)
                .payload(&payload)
                .headers(headers);
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| e)
                .unwrap();
        }
    });
}

#[test]
fn a_subscriber_reads_sales_ready_and_dead_letters_as_cloudevents_with_the_official_sdk() {
    let n = Names::new("ce");
    create_topics(&n, 3);
    let mut svc = Service::start(&n, &[]);
    svc.wait_ready(Duration::from_secs(60));
    let records: Vec<GenRecord> = stream(120, 12)
        .into_iter()
        .filter(|r| r.event.is_some())
        .collect();
    let (plain, wrapped) = records.split_at(records.len() / 2);
    produce_records(&n.input, plain);
    produce_as_cloudevents(&n.input, wrapped);
    let bad = [("x", b"{not json".to_vec()), ("y", b"[]".to_vec())];
    produce(
        &n.input,
        bad.iter().map(|(k, v)| (k.to_string(), v.clone())),
    );
    wait_all_committed(
        &n.group,
        &n.input,
        &high_watermarks(&n.input),
        Duration::from_secs(120),
        &[&svc],
    );

    // Wrapped or not, every event scores as replay says.
    assert_replay_at_least_once(&n, &records, &[&svc]);
    let outputs = read_all(&n.output);
    assert!(!outputs.is_empty());
    let events = subscribe(&n.output, outputs.len());
    assert_eq!(events.len(), outputs.len());
    let source = format!("/leadscore/{}", n.group);
    for (record, ce) in outputs.iter().zip(&events) {
        let sr: Value = serde_json::from_slice(record.payload.as_ref().unwrap()).unwrap();
        let a = &ce["attributes"];
        assert_eq!(a["specversion"], "1.0");
        assert_eq!(a["id"], sr["event_id"]);
        assert_eq!(a["type"], "com.leadscore.sales_ready.v1");
        assert_eq!(a["source"], source.as_str());
        assert_eq!(a["subject"], sr["lead_id"]);
        assert_eq!(a["time"], sr["qualified_at"]);
        assert_eq!(a["datacontenttype"], "application/json");
        assert_eq!(ce["key"], sr["lead_id"]);
    }
    let dead = read_all(&n.dlq);
    assert_eq!(dead.len(), bad.len());
    for (record, ce) in dead.iter().zip(subscribe(&n.dlq, dead.len())) {
        let origin = &record.headers["leadscore.source"];
        let a = &ce["attributes"];
        assert_eq!(a["type"], "com.leadscore.dead_letter.v1");
        assert_eq!(a["id"], format!("dlq:{origin}"));
        assert_eq!(a["subject"], origin.as_str());
        assert_eq!(a["source"], source.as_str());
        assert_eq!(a["datacontenttype"], "application/octet-stream");
        assert!(a["time"].as_str().unwrap().ends_with('Z'));
    }
}
