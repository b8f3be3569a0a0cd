//! Sales verdicts on the real broker: gen's verdicts → the `lead-outcomes` topic → the service
//! (lead view, metrics) → `leadscore outcomes export` → the very outcomes CSV gen wrote; and
//! a rejection withholds a re-qualification for `suppress_after_rejection`, then lets the next
//! one through.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use leadscore::gen::{self, GenConfig};
use leadscore::time::parse_rfc3339;
use leadscore::verdict::{SalesOutcome, Verdict};
use serde_json::Value;
use support::*;

fn outcomes_topic(n: &Names) -> String {
    format!("{}-outcomes", n.input)
}

/// Topics of the test, the outcomes topic co-partitioned with the input.
fn create_with_outcomes(n: &Names, partitions: i32) -> String {
    create_topics(n, partitions);
    let topic = outcomes_topic(n);
    rt().block_on(leadscore::kafka::ensure_topics(
        &brokers(),
        &BTreeMap::new(),
        &[(topic.clone(), partitions)],
        &[],
    ))
    .unwrap();
    topic
}

fn wait_caught_up(n: &Names, topics: &[&str], svc: &Service) {
    for t in topics {
        wait_all_committed(
            &n.group,
            t,
            &high_watermarks(t),
            Duration::from_secs(120),
            &[svc],
        );
    }
}

#[test]
fn verdicts_flow_from_the_topic_to_the_lead_view_the_metrics_and_back_to_the_outcomes_csv() {
    let n = Names::new("verdicts");
    let topic = create_with_outcomes(&n, 3);
    // A window well in the past: every verdict (up to weeks after the activity) is dated
    // before the wall clock, as the time window demands.
    let g = gen::generate(&GenConfig {
        seed: 5,
        leads: 300,
        start: parse_rfc3339("2026-06-01T00:00:00Z").unwrap(),
        ..GenConfig::default()
    });
    let verdicts = gen::verdicts(&g, 5);
    produce_records(&n.input, &g.records);
    produce(
        &topic,
        verdicts
            .iter()
            .map(|v| (v.lead_id.clone(), v.to_json().into_bytes())),
    );
    let mut svc = Service::start(&n, &[("LEADSCORE_OUTCOMES_TOPIC", topic.as_str())]);
    svc.wait_ready(Duration::from_secs(60));
    wait_caught_up(&n, &[&n.input, &topic], &svc);

    // Metrics count every verdict by outcome; nothing went to the dead letters.
    let count = |o: SalesOutcome| verdicts.iter().filter(|v| v.outcome == o).count() as f64;
    let (_, body) = svc.get("/metrics").unwrap();
    for o in SalesOutcome::ALL {
        let line = format!(
            "leadscore_sales_outcomes_total{{outcome=\"{}\"}} ",
            o.as_str()
        );
        let got: f64 = body
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("no {line} in /metrics"))
            .parse()
            .unwrap();
        assert_eq!(got, count(o), "{}", o.as_str());
    }
    assert_eq!(svc.metric("leadscore_invalid_total"), 0.0);

    // The lead view lists each lead's verdicts, every field, in order.
    let mut by_lead: BTreeMap<&str, Vec<&Verdict>> = BTreeMap::new();
    for v in &verdicts {
        by_lead.entry(&v.lead_id).or_default().push(v);
    }
    for (lead, vs) in by_lead.iter().take(40) {
        let (status, body) = svc.get_retrying_busy(&format!("/v1/leads/{lead}")).unwrap();
        assert_eq!(status, 200, "{lead}: {body}");
        let view: Value = serde_json::from_str(&body).unwrap();
        let got = view["verdicts"].as_array().unwrap();
        assert_eq!(got.len(), vs.len(), "{lead}: {body}");
        for (g, v) in got.iter().zip(vs) {
            let want: Value = serde_json::from_str(&v.to_json()).unwrap();
            for field in ["ts", "outcome", "reason", "sales_ready_event_id"] {
                assert_eq!(g.get(field), want.get(field), "{lead} {field}: {body}");
            }
        }
    }

    // Export: the topic back to the outcomes CSV, byte for byte what gen wrote.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("exported.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_leadscore"))
        .args([
            "outcomes",
            "export",
            "--brokers",
            &brokers(),
            "--topic",
            &topic,
            "-o",
        ])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut want = Vec::new();
    gen::write_outcomes(&g.outcomes, &mut want).unwrap();
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap(),
        String::from_utf8(want).unwrap()
    );
    assert_eq!(svc.terminate(Duration::from_secs(30)).code(), Some(0));
}

/// A lead-event line at `day` (days after 2026-09-01) for lead `X`.
fn visit(i: u32, day: f64) -> (String, Vec<u8>) {
    let t = parse_rfc3339("2026-09-01T00:00:00Z").unwrap() + (day * 86_400e6) as i64;
    let line = format!(
        r#"{{"event_id":"x-{i}","type":"page_view","lead_id":"X","ts":"{}","url":"https://x.test/pricing"}}"#,
        leadscore::time::format_rfc3339(t)
    );
    ("X".into(), line.into_bytes())
}

#[test]
fn a_rejection_withholds_alerts_for_the_configured_period_only() {
    let n = Names::new("suppress");
    let topic = create_with_outcomes(&n, 2);
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        r#"
[threshold]
sales_ready = 100.0
rearm_below = 50.0
suppress_after_rejection = "10d"
[decay]
half_life = "1d"
[[engagement]]
name = "visit"
on = "page_view"
points = 60.0
"#,
    )
    .unwrap();
    let rules_s = rules.to_string_lossy().to_string();
    let mut svc = Service::start(
        &n,
        &[
            ("LEADSCORE_OUTCOMES_TOPIC", topic.as_str()),
            ("LEADSCORE_RULES", rules_s.as_str()),
        ],
    );
    svc.wait_ready(Duration::from_secs(60));
    // Day 0: two visits qualify X (alert 1).
    produce(&n.input, [visit(1, 0.0), visit(2, 0.01)]);
    wait_caught_up(&n, &[&n.input], &svc);
    assert_eq!(outputs(&n.output).len(), 1);
    // Sales rejects it an hour later: alerts are withheld until day 10.04.
    let rejected = r#"{"lead_id":"X","ts":"2026-09-01T01:00:00Z","outcome":"rejected","reason":"student","sales_ready_event_id":"sr:X:1"}"#;
    produce(&topic, [("X".to_string(), rejected.as_bytes().to_vec())]);
    wait_caught_up(&n, &[&topic], &svc);
    // Day 3: interest is back (re-armed after decay) and crosses again: withheld.
    // Day 12: after the period it crosses again: alert 2.
    produce(
        &n.input,
        [
            visit(3, 3.0),
            visit(4, 3.01),
            visit(5, 12.0),
            visit(6, 12.01),
        ],
    );
    wait_caught_up(&n, &[&n.input], &svc);
    let alerts = outputs(&n.output);
    let got: Vec<(u64, &str)> = alerts
        .iter()
        .map(|a| {
            (
                a["sequence"].as_u64().unwrap(),
                a["trigger_event_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, vec![(1, "x-2"), (2, "x-6")], "{alerts:?}");
    assert_eq!(svc.metric("leadscore_alerts_withheld_total"), 1.0);
    let (_, body) = svc.get("/metrics").unwrap();
    assert!(
        body.contains("leadscore_rejections_by_signal_total{rule=\"visit\"} 1"),
        "the rejection is charged to the alert's top signal:\n{body}"
    );
    let (_, view) = svc.get_retrying_busy("/v1/leads/X").unwrap();
    let view: Value = serde_json::from_str(&view).unwrap();
    assert_eq!(view["suppressed_until"], "2026-09-11T01:00:00Z");
    assert_eq!(view["verdicts"][0]["reason"], "student");
    assert_eq!(svc.terminate(Duration::from_secs(30)).code(), Some(0));
}
