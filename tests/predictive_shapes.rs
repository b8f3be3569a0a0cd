//! Learned shape functions score as fitted, through `replay` and through the service on the
//! real broker: `train` on a generated history learns count bands, dwell bands and visits;
//! replay of the history (cut before each conversion) gives every lead the score `train`
//! predicted, so the holdout AUC is reproduced exactly; and the service, fed the same history,
//! holds the same score for every lead.

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use leadscore::engine::Engine;
use leadscore::gen::{generate, GenConfig, GenRecord};
use leadscore::replay::replay;
use leadscore::train::metrics::roc_auc;
use support::*;

#[test]
fn learned_shapes_score_as_fitted_in_replay_and_in_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(&GenConfig {
        seed: 23,
        leads: 2500,
        ..GenConfig::default()
    });
    let events = dir.path().join("events.ndjson");
    let outcomes = dir.path().join("outcomes.csv");
    std::fs::write(&events, ndjson(&g.records)).unwrap();
    leadscore::gen::write_outcomes(&g.outcomes, std::fs::File::create(&outcomes).unwrap()).unwrap();
    let learned = dir.path().join("learned.toml");
    let predictions = dir.path().join("p.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_leadscore"))
        .args([
            "train",
            "--bootstrap",
            "10",
            "--min-support",
            "20",
            "--events",
        ])
        .arg(&events)
        .arg("--outcomes")
        .arg(&outcomes)
        .arg("-o")
        .arg(&learned)
        .arg("--predictions")
        .arg(&predictions)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&learned).unwrap();
    for shape in ["nth = [", "dwell_band = [", "visit_page = "] {
        assert!(text.contains(shape), "no `{shape}` rule learned:\n{text}");
    }

    // The history as train saw it: each lead's events before its conversion.
    let converted_at: HashMap<&str, Option<i64>> = g
        .outcomes
        .iter()
        .map(|o| (o.lead_id.as_str(), o.converted_at))
        .collect();
    let cut: Vec<GenRecord> = g
        .records
        .iter()
        .filter(|r| match (&r.event, converted_at[r.lead_id.as_str()]) {
            (Some(ev), Some(at)) => ev.ts < at,
            (Some(_), None) => true,
            (None, _) => false,
        })
        .cloned()
        .collect();
    let engine = Engine::new(Arc::new(leadscore::rules_file::load(&learned).unwrap()));
    let (leads, _) = replay(
        &engine,
        ndjson(&cut).as_bytes(),
        std::io::sink(),
        std::io::sink(),
        false,
    )
    .unwrap();

    // Replay gives every lead train's score; the holdout AUC follows exactly.
    let mut rdr = csv::Reader::from_path(&predictions).unwrap();
    let (mut replayed, mut predicted, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for rec in rdr.records() {
        let rec = rec.unwrap();
        let (id, split, conv, score) = (&rec[0], &rec[1], &rec[2], rec[3].parse::<f64>().unwrap());
        // A lead with no event before its conversion has no state, and no score.
        let s = leads
            .get(id)
            .map_or(0.0, |st| engine.lead_score(id, st).score);
        assert!(
            (s - score).abs() <= 1e-9 * score.abs().max(1.0),
            "{id}: replay {s} vs train {score}"
        );
        if split == "holdout" {
            replayed.push(s);
            predicted.push(score);
            y.push(conv == "1");
        }
    }
    let (a, b) = (roc_auc(&replayed, &y), roc_auc(&predicted, &y));
    assert_eq!(a, b);
    assert!(a > 0.75, "holdout AUC {a}");

    // The service, fed the same history with the learned rules, holds the same scores.
    let n = Names::new("shapes");
    create_topics(&n, 3);
    let ends = produce_records(&n.input, &cut);
    let learned_s = learned.to_string_lossy().to_string();
    let mut svc = Service::start(&n, &[("LEADSCORE_RULES", learned_s.as_str())]);
    svc.wait_ready(Duration::from_secs(60));
    wait_all_committed(&n.group, &n.input, &ends, Duration::from_secs(180), &[&svc]);
    assert_scores_match(&[&svc], &leads, &engine);
    assert_eq!(svc.terminate(Duration::from_secs(30)).code(), Some(0));
}
