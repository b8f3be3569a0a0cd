//! `leadscore backtest`: every variant's alerts equal a separate `replay` with that rules file
//! and threshold (all fields, every alert, in order); precision and recall on a hand-computed
//! case; alerts never increase with the threshold when leads cannot re-arm.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use leadscore::backtest::{self as bt, RulesFile, Window};
use leadscore::engine::Gate;
use leadscore::gen::{self, GenConfig};
use leadscore::rules::Rules;
use leadscore::time::parse_rfc3339;
use leadscore::train::data::read_outcomes;
use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_leadscore"))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("leadscore runs");
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A gen history with the generated sales verdicts merged in by time, and its outcomes CSV.
fn history(dir: &Path, leads: usize, seed: u64) -> (PathBuf, PathBuf) {
    let cfg = GenConfig {
        seed,
        leads,
        ..GenConfig::default()
    };
    let g = gen::generate(&cfg);
    let verdicts = gen::verdicts(&g, seed);
    let mut lines: Vec<(i64, String)> = g
        .records
        .iter()
        .map(|r| (r.delivered_at, r.json_line()))
        .chain(verdicts.iter().map(|v| (v.ts, v.to_json())))
        .collect();
    lines.sort_by_key(|(t, _)| *t);
    let events = dir.join("history.ndjson");
    let text: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    std::fs::write(&events, text).unwrap();
    let outcomes = dir.join("outcomes.csv");
    gen::write_outcomes(&g.outcomes, std::fs::File::create(&outcomes).unwrap()).unwrap();
    (events, outcomes)
}

/// The example rules with `[threshold]` replaced.
fn rules_with(threshold: &str) -> String {
    let base =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rules.toml"))
            .unwrap();
    let start = base.find("[threshold]").unwrap();
    let end = start + base[start..].find("\n[").unwrap();
    format!(
        "{}[threshold]\n{threshold}\n{}",
        &base[..start],
        &base[end..]
    )
}

/// The fields of an alert both tools print, in emission order.
fn alerts_of(ndjson: &str) -> Vec<(String, u64, String, String, String)> {
    ndjson
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["lead_id"].as_str().unwrap().to_string(),
                v["sequence"].as_u64().unwrap(),
                v["qualified_at"].as_str().unwrap().to_string(),
                v["score"].to_string(),
                v["trigger_event_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn replay_alerts(rules: &Path, events: &Path) -> (String, String) {
    let out = bin()
        .args(["replay", "--rules"])
        .arg(rules)
        .arg("--input")
        .arg(events)
        .output()
        .unwrap();
    assert!(out.status.success());
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn every_variant_equals_a_separate_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (events, outcomes) = history(dir.path(), 3000, 11);
    let a = dir.path().join("a.toml");
    let b = dir.path().join("b.toml");
    std::fs::write(
        &a,
        rules_with("sales_ready = 120.0\nrearm_below = 60.0\nsuppress_after_rejection = \"10d\""),
    )
    .unwrap();
    std::fs::write(&b, rules_with("sales_ready = 90.0\nmin_fit = 10.0")).unwrap();
    let alerts = dir.path().join("alerts");
    run_ok(
        bin()
            .args(["backtest", "-q", "--events"])
            .arg(&events)
            .arg("--outcomes")
            .arg(&outcomes)
            .arg("--rules")
            .arg(&a)
            .arg("--rules")
            .arg(&b)
            .args(["--thresholds", "60:140:40", "--alerts"])
            .arg(&alerts),
    );
    let mut compared = 0;
    for (file, label) in [(&a, "a"), (&b, "b")] {
        let own = Gate::of(&leadscore::rules_file::load(file).unwrap());
        for t in [60.0, 100.0, 140.0] {
            let rearm = bt::sweep_rearm(&own, t);
            let mut threshold = format!("sales_ready = {t:?}\nrearm_below = {rearm:?}");
            if label == "a" {
                threshold += "\nsuppress_after_rejection = \"10d\"";
            } else {
                threshold += "\nmin_fit = 10.0";
            }
            let variant = dir.path().join(format!("{label}-{t}.toml"));
            std::fs::write(&variant, rules_with(&threshold)).unwrap();
            let (expected, summary) = replay_alerts(&variant, &events);
            let got = std::fs::read_to_string(alerts.join(format!("{label}@{t}.ndjson"))).unwrap();
            let (want, have) = (alerts_of(&expected), alerts_of(&got));
            assert!(!want.is_empty(), "{label}@{t}: replay raised no alert");
            assert_eq!(have, want, "{label}@{t}: backtest differs from replay");
            if label == "a" && t == 60.0 {
                assert!(
                    !summary.contains("withheld 0,"),
                    "the rejection suppression was not exercised: {summary}"
                );
            }
            compared += want.len();
        }
    }
    assert!(compared > 500, "only {compared} alerts compared");

    // Without a sweep each file runs at its own threshold.
    let own = dir.path().join("own");
    run_ok(
        bin()
            .args(["backtest", "-q", "--events"])
            .arg(&events)
            .arg("--outcomes")
            .arg(&outcomes)
            .arg("--rules")
            .arg(&a)
            .arg("--alerts")
            .arg(&own),
    );
    let (expected, _) = replay_alerts(&a, &events);
    let got = std::fs::read_to_string(own.join("a.ndjson")).unwrap();
    assert_eq!(alerts_of(&got), alerts_of(&expected));
}

fn tiny_rules() -> Arc<Rules> {
    let toml = br#"
[threshold]
sales_ready = 10.0
rearm_below = 5.0
[decay]
half_life = "never"
[[engagement]]
name = "visit"
on = "page_view"
points = 10.0
"#;
    Arc::new(Rules::parse(Path::new("tiny.toml"), toml).unwrap())
}

#[test]
fn precision_recall_and_lead_time_match_a_hand_computed_case() {
    // L1 alerts on day 1 and converts on day 5: a hit, recalled, 4 days of lead time.
    // L2 alerts on day 1 and never converts. L5 alerts on day 2 but converted on day 1.5:
    // no hit, not recalled. L4 converts on day 3 with no alert. L3 has no outcome row.
    let ev = |id: &str, lead: &str, day: &str| {
        format!(
            r#"{{"event_id":"{id}","type":"page_view","lead_id":"{lead}","ts":"2026-11-0{day}T00:00:00Z","url":"https://x.test/p"}}"#
        )
    };
    let history = [
        ev("e1", "L1", "1"),
        ev("e2", "L2", "1"),
        ev("e3", "L5", "2"),
        ev("e4", "L3", "2"),
    ]
    .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("o.csv");
    std::fs::write(
        &csv,
        "lead_id,converted,converted_at\nL1,1,2026-11-05T00:00:00Z\nL2,0,\nL4,1,2026-11-03T00:00:00Z\nL5,1,2026-11-01T12:00:00Z\n",
    )
    .unwrap();
    let files = [RulesFile {
        label: "tiny".into(),
        rules: tiny_rules(),
    }];
    let variants = bt::variants(&files, None, false);
    let pass = bt::run(&files, &variants, history.as_bytes(), |_| {}).unwrap();
    let outcomes = read_outcomes(&csv).unwrap();
    let r = &bt::evaluate(
        &pass,
        &variants,
        &["tiny".into()],
        &outcomes,
        Window::default(),
        Some(2),
    )[0];
    assert_eq!(r.alerts, 4);
    assert_eq!(r.alerted_leads, 4);
    assert_eq!(r.converted_alerted, 1);
    assert_eq!(r.precision, Some(0.25));
    assert_eq!(r.converters, 3);
    assert_eq!(r.converters_alerted, 1);
    assert_eq!(r.recall, Some(1.0 / 3.0));
    assert_eq!(r.lead_time_median_days, Some(4.0));
    assert_eq!(r.re_mqls, 0);
    // The window is day 1 to just after day 2: two alerts per 1 day + 1 µs ≈ 4 alerts / (1/7 week).
    assert!(
        (r.alerts_per_week - 28.0).abs() < 1e-3,
        "{}",
        r.alerts_per_week
    );
    assert_eq!(r.alerts_per_rep_per_week, Some(r.alerts_per_week / 2.0));

    // From day 2 on, only L5 and L3 alerts count; L4's day-3 conversion is still in.
    let from = Window {
        from: parse_rfc3339("2026-11-02T00:00:00Z"),
        to: None,
    };
    let r = &bt::evaluate(&pass, &variants, &["tiny".into()], &outcomes, from, None)[0];
    assert_eq!((r.alerts, r.alerted_leads, r.converted_alerted), (2, 2, 0));
    assert_eq!((r.converters, r.converters_alerted), (2, 0));
    assert_eq!(r.precision, Some(0.0));
}

#[test]
fn without_rearm_alerts_never_increase_with_the_threshold() {
    for seed in [1, 2, 3] {
        let cfg = GenConfig {
            seed,
            leads: 800,
            ..GenConfig::default()
        };
        let g = gen::generate(&cfg);
        let text = gen_lines(&g);
        let files = [RulesFile {
            label: "ex".into(),
            rules: Arc::new(
                leadscore::rules_file::load(
                    &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rules.toml"),
                )
                .unwrap(),
            ),
        }];
        let sweep = bt::parse_thresholds("0:200:5").unwrap();
        let variants = bt::variants(&files, Some(&sweep), true);
        let pass = bt::run(&files, &variants, text.as_bytes(), |_| {}).unwrap();
        let counts: Vec<usize> = pass.alerts.iter().map(Vec::len).collect();
        assert!(counts[0] > counts[counts.len() - 1], "{counts:?}");
        for w in counts.windows(2) {
            assert!(
                w[0] >= w[1],
                "seed {seed}: alerts rose with the threshold: {counts:?}"
            );
        }
        // And each lead alerts at most once.
        for alerts in &pass.alerts {
            assert!(alerts.iter().all(|a| a.sequence == 1));
        }
    }
}

fn gen_lines(g: &gen::Generated) -> String {
    g.records.iter().map(|r| r.json_line() + "\n").collect()
}
