//! The Kafka service against the real broker (tansu over the Kafka protocol): outputs equal
//! `replay`, dead letters, rebalancing between instances, lead lookups, clean shutdown.

mod support;

use std::time::Duration;

use prost::Message as _;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::{json, Value};
use support::*;

const READY: Duration = Duration::from_secs(60);
const DONE: Duration = Duration::from_secs(120);

#[test]
fn generated_stream_yields_exactly_the_replay_sales_ready_sequence() {
    let n = Names::new("equal");
    create_topics(&n, 8);
    let records = stream(3000, 11);
    let (want, _, _) = reference(&records);
    assert!(
        want.len() > 50,
        "the stream must qualify leads: {}",
        want.len()
    );
    let mut svc = Service::start(&n, &[]);
    svc.wait_ready(READY);
    let ends = produce_records(&n.input, &records);
    wait_all_committed(&n.group, &n.input, &ends, DONE, &[&svc]);
    let got = outputs(&n.output);
    assert_eq!(
        got.len(),
        want.len(),
        "one output per qualification, none repeated"
    );
    assert_same_sequences(&by_lead(&got), &by_lead(&want));
    // Every field, not only the ids: the outputs are the replay outputs.
    let mut got_sorted = got.clone();
    let mut want_sorted = want.clone();
    let key = |v: &Value| v["event_id"].as_str().unwrap().to_string();
    got_sorted.sort_by_key(key);
    want_sorted.sort_by_key(key);
    for (g, w) in got_sorted.iter().zip(&want_sorted) {
        for f in [
            "lead_id",
            "sequence",
            "qualified_at",
            "trigger_event_id",
            "rules_version",
            "type",
        ] {
            assert_eq!(g[f], w[f], "{f} of {}", w["event_id"]);
        }
        assert_eq!(
            g["top_signals"].as_array().unwrap().len(),
            w["top_signals"].as_array().unwrap().len()
        );
    }
    // Metrics reflect the stream.
    let (_, metrics) = svc.get("/metrics").unwrap();
    assert!(
        metrics.contains(&format!("leadscore_sales_ready_total {}", want.len())),
        "{metrics}"
    );
    assert!(metrics.contains("leadscore_events_total{"), "{metrics}");
    assert!(
        metrics.contains("leadscore_event_latency_seconds_bucket"),
        "{metrics}"
    );
}

fn ev(id: &str, lead: &str, ts: &str, kind: &str) -> Value {
    match kind {
        "bofu" => json!({"event_id": id, "type": "form_conversion", "lead_id": lead, "ts": ts,
            "form_id": "demo-request", "offer_stage": "bofu",
            "fields": {"job_title": "VP Engineering", "industry": "saas", "company_size": 300}}),
        _ => json!({"event_id": id, "type": "page_view", "lead_id": lead, "ts": ts,
            "url": "https://x.io/pricing"}),
    }
}

#[test]
fn invalid_messages_go_to_the_dead_letter_topic_and_later_events_still_score() {
    let n = Names::new("dlq");
    create_topics(&n, 1);
    let mut svc = Service::start(&n, &[]);
    svc.wait_ready(READY);
    let valid = ev("ok-1", "L-ok", "2026-11-02T10:00:00Z", "pricing").to_string();
    let cases: Vec<(Option<&str>, Vec<u8>, &str)> = vec![
        (Some("L-x"), b"{not json".to_vec(), "invalid JSON"),
        (
            Some("L-x"),
            br#"{"event_id":"e","type":"page_view","lead_id":"L-x","url":"/p"}"#.to_vec(),
            "missing required field `ts`",
        ),
        (
            Some("L-x"),
            br#"{"event_id":"e","type":"signup","lead_id":"L-x","ts":"2026-11-02T10:00:00Z"}"#.to_vec(),
            "unknown event type `signup`",
        ),
        (Some("OTHER"), valid.clone().into_bytes(), "message key `OTHER` does not match lead_id `L-ok`"),
        (
            Some("L-x"),
            br#"{"event_id":"e","type":"page_view","lead_id":"L-x","ts":"02/11/2026","url":"/p"}"#.to_vec(),
            "field `ts` is not an RFC 3339 timestamp",
        ),
        (
            Some("L-x"),
            br#"{"event_id":"e","type":"page_view","lead_id":"L-x","ts":"2026-11-02T10:00:00Z","url":"/p","duration_s":"long"}"#.to_vec(),
            "field `duration_s` must be a number, got a string",
        ),
        (Some("L-x"), vec![0x0a, 0xff, 0xff], "invalid Protobuf"),
        (None, Vec::new(), "invalid JSON"),
    ];
    let producer: ThreadedProducer<DefaultProducerContext> =
        leadscore::kafka::client_config(&brokers(), &Default::default())
            .create()
            .unwrap();
    for (i, (key, payload, _)) in cases.iter().enumerate() {
        let headers = OwnedHeaders::new().insert(Header {
            key: "trace-id",
            value: Some(&format!("t{i}")),
        });
        let mut r: BaseRecord<'_, str, [u8]> = BaseRecord::to(&n.input)
            .payload(payload.as_slice())
            .headers(headers);
        if let Some(k) = key {
            r = r.key(*k);
        }
        producer.send(r).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let bad_ends: Ends = [(0, cases.len() as i64)].into();
    // Valid events after the bad ones, in both encodings.
    let pb = leadscore::event::decode_json(
        ev("ok-2", "L-ok", "2026-11-02T11:00:00Z", "bofu")
            .to_string()
            .as_bytes(),
    )
    .unwrap()
    .to_proto()
    .encode_to_vec();
    let ends = produce(
        &n.input,
        vec![
            ("L-ok".to_string(), valid.into_bytes()),
            ("L-ok".to_string(), pb),
        ],
    );
    wait_all_committed(&n.group, &n.input, &merge(bad_ends, ends), DONE, &[&svc]);

    let dead = read_all(&n.dlq);
    assert_eq!(dead.len(), cases.len(), "every invalid message, once");
    for (i, (rec, (key, payload, reason))) in dead.iter().zip(&cases).enumerate() {
        let err = &rec.headers["leadscore.error"];
        assert!(
            err.contains(reason),
            "case {i}: {err:?} should contain {reason:?}"
        );
        assert_eq!(
            rec.headers["leadscore.source"],
            format!("{}/0/{i}", n.input)
        );
        assert_eq!(
            rec.headers["trace-id"],
            format!("t{i}"),
            "original headers kept"
        );
        assert_eq!(
            rec.payload.clone().unwrap_or_default(),
            *payload,
            "payload unchanged"
        );
        assert_eq!(rec.key.as_deref(), key.map(str::as_bytes), "key unchanged");
    }
    // The service kept going: the later events were scored (15 pricing + 30 bofu + fit 45).
    let (status, body) = svc.get("/v1/leads/L-ok").unwrap();
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let pricing = 15.0 * 2f64.powf(-1.0 / (7.0 * 24.0));
    assert!(
        (v["engagement_score"].as_f64().unwrap() - (pricing + 30.0)).abs() < 1e-9,
        "{v}"
    );
    let (_, metrics) = svc.get("/metrics").unwrap();
    assert!(
        metrics.contains("leadscore_invalid_total{reason=\"bad_json\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("leadscore_invalid_total{reason=\"key_mismatch\"} 1"),
        "{metrics}"
    );
    assert!(svc.child.try_wait().unwrap().is_none(), "still running");
}

#[test]
fn two_instances_split_the_partitions_and_one_takes_over_when_the_other_stops() {
    let n = Names::new("rebalance");
    create_topics(&n, 8);
    let records = stream(3000, 12);
    let (want, _, _) = reference(&records);
    let mut a = Service::start(&n, &[]);
    a.wait_ready(READY);
    let mut b = Service::start(&n, &[]);
    b.wait_ready(READY);
    // Both own partitions once the group has settled.
    let deadline = std::time::Instant::now() + READY;
    loop {
        let pa = owned(&a);
        let pb = owned(&b);
        if !pa.is_empty() && !pb.is_empty() && pa.len() + pb.len() == 8 {
            assert!(pa.iter().all(|p| !pb.contains(p)), "{pa:?} {pb:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no split: {pa:?} {pb:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let half = records.len() / 2;
    let first = produce_records(&n.input, &records[..half]);
    // Stop A while B keeps running; then the rest of the stream.
    let status = a.terminate(Duration::from_secs(60));
    assert!(status.success(), "A exits 0: {status}\n{}", a.log_text());
    let ends = merge(first, produce_records(&n.input, &records[half..]));
    wait_until(
        READY,
        || owned(&b).len() == 8,
        || format!("B never took over: {:?}", owned(&b)),
    );
    wait_all_committed(&n.group, &n.input, &ends, DONE, &[&a, &b]);
    let got = outputs(&n.output);
    // A re-sent sales_ready keeps its event_id; dedupe by it, keeping first occurrence.
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<Value> = got
        .into_iter()
        .filter(|v| seen.insert(v["event_id"].as_str().unwrap().to_string()))
        .collect();
    assert_same_sequences(&by_lead(&unique), &by_lead(&want));
}

#[test]
fn lead_lookup_agrees_with_replay_scores() {
    let n = Names::new("lookup");
    create_topics(&n, 8);
    let records = stream(800, 13);
    let (_, leads, engine) = reference(&records);
    let mut svc = Service::start(&n, &[]);
    svc.wait_ready(READY);
    let ends = produce_records(&n.input, &records);
    wait_all_committed(&n.group, &n.input, &ends, DONE, &[&svc]);
    let mut checked = 0;
    for lead in leads.sorted() {
        let want = engine.lead_score(&lead.id, &lead.state);
        let (status, body) = svc.get(&format!("/v1/leads/{}", lead.id)).unwrap();
        assert_eq!(status, 200, "{}: {body}", lead.id);
        let v: Value = serde_json::from_str(&body).unwrap();
        for (f, w) in [
            ("score", want.score),
            ("fit_score", want.fit_score),
            ("engagement_score", want.engagement_score),
        ] {
            let g = v[f].as_f64().unwrap();
            assert!(
                (g - w).abs() <= 1e-9 * w.abs().max(1e-12),
                "{} {f}: {g} vs {w}",
                lead.id
            );
        }
        assert_eq!(v["as_of"], want.as_of.as_str());
        assert_eq!(v["sequence"], lead.state.sequence());
        assert_eq!(v["armed"], lead.state.armed());
        // score_now: decayed to the wall clock of the request (milliseconds apart from ours).
        let now =
            lead.state.fit() + engine.engagement_at(&lead.state, leadscore::time::now_micros());
        let g = v["score_now"].as_f64().unwrap();
        assert!(
            (g - now).abs() <= 1e-6 * now.abs().max(1.0),
            "{} score_now {g} vs {now}",
            lead.id
        );
        checked += 1;
    }
    assert!(checked > 700);
    let (status, _) = svc.get("/v1/leads/nobody").unwrap();
    assert_eq!(status, 404);
}

#[test]
fn sigterm_commits_offsets_and_exits_0_then_a_restart_restores_state() {
    let n = Names::new("sigterm");
    create_topics(&n, 4);
    let records = stream(600, 14);
    let (_, leads, engine) = reference(&records);
    // No periodic commits: only the shutdown can commit.
    let mut svc = Service::start(&n, &[("LEADSCORE_COMMIT_INTERVAL", "1h")]);
    svc.wait_ready(READY);
    let ends = produce_records(&n.input, &records);
    let total = records.len() as f64;
    wait_until(
        DONE,
        || svc.metric("leadscore_events_total") + svc.metric("leadscore_invalid_total") >= total,
        || format!("not processed:\n{}", svc.log_text()),
    );
    assert!(
        committed(&n.group, &n.input).is_empty(),
        "nothing committed before SIGTERM"
    );
    let status = svc.terminate(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{}", svc.log_text());
    // Everything processed is committed, right away.
    let got = committed(&n.group, &n.input);
    for (p, h) in &ends {
        {
            assert_eq!(
                got.get(p),
                Some(h),
                "partition {p}: committed {got:?}, end {ends:?}"
            );
        }
    }
    assert!(
        svc.log_text().contains("offsets committed"),
        "{}",
        svc.log_text()
    );

    // A restart rebuilds the state of its partitions before answering ready.
    let mut again = Service::start(&n, &[]);
    again.wait_ready(READY);
    for lead in leads.sorted().iter().take(50) {
        let want = engine.lead_score(&lead.id, &lead.state);
        let (status, body) = again.get(&format!("/v1/leads/{}", lead.id)).unwrap();
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let g = v["score"].as_f64().unwrap();
        assert!(
            (g - want.score).abs() <= 1e-9 * want.score.abs().max(1e-12),
            "{}",
            lead.id
        );
    }
    assert!(
        outputs(&n.output).len() == reference(&records).0.len(),
        "nothing re-sent on a clean restart"
    );
}

/// A pricing-page view of `lead` at 10:00 plus `minutes`.
fn pricing_view(lead: &str, id: &str, minutes: u32) -> (String, Vec<u8>) {
    let ev = json!({
        "event_id": id, "type": "page_view", "lead_id": lead,
        "ts": format!("2026-11-28T{:02}:{:02}:00Z", 10 + minutes / 60, minutes % 60),
        "url": "https://example.com/pricing",
    });
    (lead.to_string(), ev.to_string().into_bytes())
}

fn score_of(s: &Service, lead: &str) -> f64 {
    let (status, body) = s.get(&format!("/v1/leads/{lead}")).unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["score"]
        .as_f64()
        .unwrap()
}

fn wait_log(s: &Service, needle: &str) {
    wait_until(
        Duration::from_secs(30),
        || s.log_text().contains(needle),
        || format!("no `{needle}` in the log:\n{}", s.log_text()),
    );
}

#[test]
fn sighup_reloads_the_rules_and_a_broken_file_keeps_the_previous_ones() {
    let n = Names::new("reload");
    create_topics(&n, 2);
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    let original = std::fs::read_to_string(rules_path()).unwrap();
    std::fs::write(&rules, &original).unwrap();
    let rules_s = rules.to_string_lossy().to_string();
    let mut svc = Service::start(&n, &[("LEADSCORE_RULES", &rules_s)]);
    svc.wait_ready(Duration::from_secs(90));

    // pricing-page is worth 15 points.
    let ends = produce(&n.input, [pricing_view("R-A", "a1", 0)]);
    wait_all_committed(&n.group, &n.input, &ends, Duration::from_secs(60), &[&svc]);
    assert_eq!(score_of(&svc, "R-A"), 15.0);

    // A broken file: the reload fails, the previous rules stay in force.
    std::fs::write(
        &rules,
        original.replacen("points = 15.0", "points = \"many\"", 1),
    )
    .unwrap();
    assert!(svc.signal("HUP"));
    wait_log(&svc, "rules reload failed, keeping the rules in force");
    let ends = produce(&n.input, [pricing_view("R-B", "b1", 0)]);
    wait_all_committed(&n.group, &n.input, &ends, Duration::from_secs(60), &[&svc]);
    assert_eq!(score_of(&svc, "R-B"), 15.0);

    // A good file: pricing-page is now worth 40 for events scored from now on; what R-A has
    // accumulated is kept (decayed by its 7-day half-life over the hour to its next event).
    std::fs::write(
        &rules,
        original.replacen("points = 15.0", "points = 40.0", 1),
    )
    .unwrap();
    assert!(svc.signal("HUP"));
    wait_log(&svc, "rules reloaded");
    let ends = produce(
        &n.input,
        [pricing_view("R-A", "a2", 60), pricing_view("R-C", "c1", 0)],
    );
    wait_all_committed(&n.group, &n.input, &ends, Duration::from_secs(60), &[&svc]);
    assert_eq!(score_of(&svc, "R-C"), 40.0);
    let want = 15.0 * 2f64.powf(-3600.0 / (7.0 * 86400.0)) + 40.0;
    let got = score_of(&svc, "R-A");
    assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    assert_eq!(svc.metric("leadscore_rules_reloads_total"), 2.0);
    assert!(
        svc.child.try_wait().unwrap().is_none(),
        "the service exited"
    );
}
