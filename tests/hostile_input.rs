//! A hostile stream on the real broker: ordinary events of generated leads mixed with broken
//! and malicious messages (near-1 MB events and profile values, far-future and far-past times,
//! JSON nested 100k deep, invalid UTF-8, empty payloads, random bytes, non-objects, odd lead
//! ids, 100 binary headers, non-UTF-8 header keys, a key that disagrees with lead_id).
//! The service stays up without a restart and consumes everything; every invalid message is
//! in the dead-letter topic once, with its reason and its headers byte for byte (cut to fit
//! and marked when too large); every ordinary and odd-id lead equals replay, and the lookup
//! API answers for the odd ids.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use leadscore::event::decode_json;
use leadscore::gen::GenRecord;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use support::*;

/// One hand-made message and what must become of it.
struct Hostile {
    label: &'static str,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// `None`: a valid event, scored; else the start of the dead letter's reason.
    reason: Option<&'static str>,
}

fn msg(
    label: &'static str,
    key: &str,
    payload: impl Into<Vec<u8>>,
    reason: Option<&'static str>,
) -> Hostile {
    Hostile {
        label,
        key: Some(key.as_bytes().to_vec()),
        payload: Some(payload.into()),
        headers: Vec::new(),
        reason,
    }
}

fn view(lead: &str, id: &str, ts: &str) -> serde_json::Value {
    json!({"event_id": id, "type": "page_view", "lead_id": lead, "ts": ts,
           "url": "https://example.com/pricing", "duration_s": 30})
}

const TS: &str = "2026-11-10T10:00:00Z";

fn hostile_messages() -> Vec<Hostile> {
    let mut out = Vec::new();
    // Valid events: odd lead ids, binary headers, a near-1 MB payload (an unknown field).
    for (i, lead) in [
        "../../etc/passwd",
        "a/b?c#d",
        "\u{202e}gnp.exe",
        "😀 lead",
        "100%off%20",
    ]
    .into_iter()
    .enumerate()
    {
        let ev = view(lead, &format!("odd-{i}"), TS).to_string();
        out.push(msg("odd lead id", lead, ev, None));
    }
    let mut with_headers = msg(
        "binary headers",
        "hdr-lead",
        view("hdr-lead", "hdr-1", TS).to_string(),
        None,
    );
    with_headers.headers = vec![
        (vec![0xff, 0xfe, b'k'], vec![0, 1, 2, 255]),
        (b"trace".to_vec(), vec![0x80; 16]),
    ];
    out.push(with_headers);
    let mut big = view("big-valid", "big-1", TS);
    big["padding"] = json!("x".repeat(990_000));
    out.push(msg(
        "near-1 MB valid event",
        "big-valid",
        big.to_string(),
        None,
    ));
    // Invalid: sizes.
    let mut big_url = view("big-url", "bu-1", TS);
    big_url["url"] = json!(format!("https://example.com/{}", "u".repeat(1_000_500)));
    out.push(msg(
        "near-1 MB invalid event",
        "big-url",
        big_url.to_string(),
        Some("the message"),
    ));
    let form = json!({"event_id": "bf-1", "type": "form_conversion", "lead_id": "big-form",
        "ts": TS, "form_id": "f", "fields": {"job_title": "t".repeat(990_000)}});
    out.push(msg(
        "near-1 MB profile value",
        "big-form",
        form.to_string(),
        Some("profile field `job_title` in characters"),
    ));
    // Invalid: times.
    out.push(msg(
        "far future",
        "t1",
        view("t1", "t1", "9999-12-31T23:59:59Z").to_string(),
        Some("field `ts` must be from 2000-01-01"),
    ));
    out.push(msg(
        "far past",
        "t2",
        view("t2", "t2", "1970-01-01T00:00:00Z").to_string(),
        Some("field `ts` must be from 2000-01-01"),
    ));
    let soon = leadscore::time::format_rfc3339(leadscore::time::now_micros() + 3 * 3_600_000_000);
    out.push(msg(
        "3 h ahead of the wall clock",
        "t3",
        view("t3", "t3", &soon).to_string(),
        Some("field `ts` is 3.0h ahead"),
    ));
    // Invalid: shapes.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    out.push(msg(
        "JSON nested 100k deep",
        "deep",
        deep,
        Some("invalid JSON"),
    ));
    out.push(msg(
        "invalid UTF-8",
        "u8",
        vec![b'{', 0xff, 0xfe, b'}'],
        Some("invalid JSON"),
    ));
    out.push(msg(
        "empty payload",
        "empty",
        Vec::new(),
        Some("invalid JSON"),
    ));
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    out.push(msg("random bytes", "noise", noise, Some("invalid")));
    for (label, text) in [
        ("JSON array", "[1,2,3]"),
        ("JSON string", "\"lead\""),
        ("JSON number", "42"),
    ] {
        out.push(msg(label, "shape", text, Some("invalid JSON")));
    }
    out.push(msg(
        "key disagrees with lead_id",
        "someone-else",
        view("k1", "k1", TS).to_string(),
        Some("message key"),
    ));
    // Invalid: headers.
    let mut many = msg(
        "100 binary headers",
        "many",
        view("many", "m1", TS).to_string(),
        Some("the number of headers"),
    );
    // Keys without a NUL byte: librdkafka reads header names as C strings.
    many.headers = (1..=100u8)
        .map(|i| (vec![b'h', i], vec![i, 0xff, 0]))
        .collect();
    out.push(many);
    let mut bad_key = msg(
        "non-UTF-8 header key on an invalid event",
        "hk",
        b"not json".to_vec(),
        Some("invalid JSON"),
    );
    bad_key.headers = vec![(vec![0xc3, 0x28, b'x'], vec![0xde, 0xad, 0xbe, 0xef])];
    out.push(bad_key);
    out
}

/// Headers with arbitrary bytes in keys: rust-rdkafka's `OwnedHeaders::insert` takes a
/// `&str` key, so they are added through librdkafka's C API.
fn native_headers(headers: &[(Vec<u8>, Vec<u8>)]) -> OwnedHeaders {
    let h = OwnedHeaders::new_with_capacity(headers.len());
    // SAFETY: `as_borrowed` is a view of the same native `rd_kafka_headers_t`, which `h` owns
    // and keeps alive; librdkafka copies the name and value bytes.
    let native = h.as_borrowed() as *const _ as *mut rdkafka::bindings::rd_kafka_headers_t;
    for (k, v) in headers {
        let mut name = k.clone();
        name.push(0);
        unsafe {
            rdkafka::bindings::rd_kafka_header_add(
                native,
                name.as_ptr() as *const _,
                k.len() as isize,
                v.as_ptr() as *const _,
                v.len() as isize,
            );
        }
    }
    h
}

/// Produces the messages; returns each one's "topic/partition/offset".
fn produce_hostile(topic: &str, msgs: &[Hostile]) -> Vec<String> {
    let producer: FutureProducer = leadscore::kafka::client_config(&brokers(), &BTreeMap::new())
        .set("message.max.bytes", "1048576")
        .create()
        .unwrap();
    rt().block_on(async {
        let mut at = Vec::new();
        for m in msgs {
            let mut r = FutureRecord::<[u8], [u8]>::to(topic).headers(native_headers(&m.headers));
            if let Some(k) = &m.key {
                r = r.key(k.as_slice());
            }
            if let Some(p) = &m.payload {
                r = r.payload(p.as_slice());
            }
            let d = producer
                .send(r, Duration::from_secs(30))
                .await
                .unwrap_or_else(|(e, _)| panic!("{}: {e}", m.label));
            at.push(format!("{topic}/{}/{}", d.partition, d.offset));
        }
        at
    })
}

#[test]
fn a_hostile_stream_leaves_the_service_up_every_invalid_message_dead_lettered_and_leads_exact() {
    let n = Names::new("hostile");
    create_topics(&n, 3);
    let ordinary = stream(150, 23);
    let hostile = hostile_messages();
    let mut svc = Service::start(&n, &[("LEADSCORE_GUARANTEE", "exactly_once")]);
    svc.wait_ready(Duration::from_secs(60));
    let (first, rest) = ordinary.split_at(ordinary.len() / 2);
    let ends = produce_records(&n.input, first);
    let sources = produce_hostile(&n.input, &hostile);
    let ends = merge(
        merge(ends, produce_records(&n.input, rest)),
        high_watermarks(&n.input),
    );
    wait_all_committed(&n.group, &n.input, &ends, Duration::from_secs(180), &[&svc]);
    assert!(
        svc.child.try_wait().unwrap().is_none(),
        "the service stayed up:\n{}",
        svc.log_text()
    );
    assert!(!svc.log_text().contains("panicked"), "{}", svc.log_text());

    // Every invalid message in the dead letters exactly once, with its reason and headers.
    let dead = read_committed(&n.dlq);
    let invalid: Vec<(&Hostile, &String)> = hostile
        .iter()
        .zip(&sources)
        .filter(|(h, _)| h.reason.is_some())
        .collect();
    assert_eq!(
        dead.len(),
        invalid.len(),
        "dead letters, duplicates counted: {:?}",
        dead.iter()
            .map(|d| d.headers.get("leadscore.source"))
            .collect::<Vec<_>>()
    );
    for (h, source) in &invalid {
        let d = dead
            .iter()
            .find(|d| d.headers.get("leadscore.source") == Some(source))
            .unwrap_or_else(|| panic!("{}: no dead letter from {source}", h.label));
        let reason = &d.headers["leadscore.error"];
        assert!(
            reason.contains(h.reason.unwrap()),
            "{}: reason {reason:?}",
            h.label
        );
        assert_eq!(d.key, h.key, "{}: key", h.label);
        let original = h.payload.clone().unwrap_or_default();
        let got = d.payload.clone().unwrap_or_default();
        match d.headers.get("leadscore.truncated") {
            Some(len) => {
                assert_eq!(len, &original.len().to_string(), "{}", h.label);
                assert!(
                    got.len() < original.len() && original.starts_with(&got),
                    "{}",
                    h.label
                );
            }
            None => assert_eq!(got, original, "{}: payload byte for byte", h.label),
        }
        let copied: Vec<(Vec<u8>, Vec<u8>)> = d
            .raw_headers
            .iter()
            .filter(|(k, _)| {
                !(k.starts_with(b"leadscore.") || k.starts_with(b"ce_") || k == b"content-type")
            })
            .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
            .collect();
        assert_eq!(copied, h.headers, "{}: headers byte for byte", h.label);
    }
    assert!(
        dead.iter()
            .any(|d| d.headers.contains_key("leadscore.truncated")),
        "a dead letter was cut to fit"
    );
    assert_eq!(svc.metric("leadscore_invalid_total"), invalid.len() as f64);

    // Every valid event counts: ordinary and odd-id leads equal replay, outputs exactly.
    let mut reference: Vec<GenRecord> = ordinary.clone();
    for h in hostile.iter().filter(|h| h.reason.is_none()) {
        let ev = decode_json(h.payload.as_ref().unwrap())
            .unwrap()
            .into_owned();
        reference.push(GenRecord {
            delivered_at: ev.ts,
            lead_id: ev.lead_id.to_string(),
            event: Some(ev),
            malformed: None,
        });
    }
    assert_replay_exactly(&n, &reference, &[&svc]);

    // No personal data in the log: no lead id, no profile value.
    let log = svc.log_text();
    for r in &reference {
        let ev = r.event.as_ref().unwrap();
        assert!(
            !log.contains(&*ev.lead_id),
            "lead id {:?} in the log",
            ev.lead_id
        );
        for (_, v) in &ev.fields {
            if let leadscore::event::FieldValue::Str(v) = v {
                assert!(
                    v.len() < 4 || !log.contains(&**v),
                    "profile value {v:?} in the log"
                );
            }
        }
    }
    for lead in [
        "../../etc/passwd",
        "a/b?c#d",
        "\u{202e}gnp.exe",
        "😀 lead",
        "100%off%20",
    ] {
        let (status, body) = svc
            .get(&format!("/v1/leads/{}", percent_encode(lead)))
            .unwrap();
        assert_eq!(status, 200, "{lead}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["lead_id"], lead);
    }
}

#[test]
fn a_dead_letter_topic_too_small_for_max_message_bytes_is_refused_at_start() {
    let mut n = Names::new("smalldlq");
    create_topics(&n, 1);
    n.dlq = format!("{}-small", n.dlq);
    rt().block_on(leadscore::kafka::ensure_topics(
        &brokers(),
        &BTreeMap::new(),
        &[(n.dlq.clone(), 1)],
        &[("max.message.bytes", "100000")],
    ))
    .unwrap();
    let mut svc = Service::start(&n, &[]);
    let status = svc.child.wait().unwrap();
    assert!(!status.success());
    let log = svc.log_text();
    assert!(
        log.contains(&format!(
            "topic {} accepts records up to 100000 bytes",
            n.dlq
        )) && log.contains("fix: lower max_message_bytes to 99488"),
        "{log}"
    );
}

#[test]
fn an_output_the_broker_always_refuses_stops_the_service_after_five_rewinds_naming_the_offset() {
    let mut n = Names::new("refused");
    create_topics(&n, 1);
    // sales_ready records (~400 bytes) never fit this output topic: every delivery is refused.
    n.output = format!("{}-tiny", n.output);
    rt().block_on(leadscore::kafka::ensure_topics(
        &brokers(),
        &BTreeMap::new(),
        &[(n.output.clone(), 1)],
        &[("max.message.bytes", "100")],
    ))
    .unwrap();
    let mut svc = Service::start(&n, &[]);
    svc.wait_ready(Duration::from_secs(60));
    produce_records(&n.input, &stream(200, 5));
    let status = svc.child.wait().unwrap();
    assert!(!status.success(), "exits non-zero");
    let log = svc.log_text();
    assert_eq!(
        log.matches("rewound to the last checkpoint").count(),
        5,
        "{log}"
    );
    let stuck = format!(
        "5 rewinds in a row without a successful checkpoint, stuck at {}/0@beginning; last failure: outputs not delivered",
        n.input
    );
    assert!(log.contains(&stuck), "{log}");
}
