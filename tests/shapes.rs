//! Shape functions of the rules (SPEC §3 "Shapes"), point by point with hand-computed scores,
//! through `replay`: points per second of dwell with a cap, duration bands, count bands (the
//! k-th to m-th match, a lifetime cap, a count window), visits (the n-th page of a visit),
//! half-open numeric bins and `missing` for fit; and the state that carries them round-trips.

use std::path::Path;
use std::sync::Arc;

use leadscore::engine::Engine;
use leadscore::leads::LeadTable;
use leadscore::replay::replay;
use leadscore::rules::Rules;
use leadscore::state::LeadState;
use serde_json::{json, Value};

fn engine(rules: &str) -> Engine {
    let text = format!("[threshold]\nsales_ready = 1e9\n[decay]\nhalf_life = \"never\"\n{rules}");
    Engine::new(Arc::new(
        Rules::parse(Path::new("shapes.toml"), text.as_bytes()).unwrap_or_else(|e| panic!("{e}")),
    ))
}

/// Page views of lead L at `minutes` after 2026-11-01 with `duration_s`.
fn views(items: &[(f64, f64)]) -> Vec<Value> {
    items
        .iter()
        .enumerate()
        .map(|(i, (minutes, d))| {
            let ts = 1_793_491_200_000_000i64 + (minutes * 60e6) as i64;
            json!({"event_id": format!("v{i}"), "type": "page_view", "lead_id": "L",
                "ts": leadscore::time::format_rfc3339(ts), "url": "https://x.test/pricing",
                "duration_s": d})
        })
        .collect()
}

fn run(engine: &Engine, events: &[Value]) -> LeadTable {
    let input: String = events.iter().map(|e| format!("{e}\n")).collect();
    let (leads, _) = replay(
        engine,
        input.as_bytes(),
        std::io::sink(),
        std::io::sink(),
        false,
    )
    .unwrap();
    leads
}

fn score(rules: &str, events: &[Value]) -> (f64, LeadState, Engine) {
    let e = engine(rules);
    let leads = run(&e, events);
    let st = leads.get("L").unwrap().clone();
    (st.score(), st, e)
}

fn rule(body: &str) -> String {
    format!("[[engagement]]\nname = \"r\"\non = \"page_view\"\n{body}\n")
}

#[test]
fn points_per_second_of_dwell_with_a_cap() {
    let r = rule("points_per_second = 0.1\nmax_seconds = 60");
    let (s, _, _) = score(&r, &views(&[(0.0, 100.0), (1.0, 30.0)]));
    assert!((s - (6.0 + 3.0)).abs() < 1e-9, "{s}");
    // Without a duration a per-second rule does not match.
    let e = engine(&r);
    let no_duration = json!({"event_id": "x", "type": "page_view", "lead_id": "L",
        "ts": "2026-11-01T00:00:00Z", "url": "https://x.test/"});
    let leads = run(&e, &[no_duration]);
    assert_eq!(leads.get("L").unwrap().score(), 0.0);
}

#[test]
fn dwell_bands_shape_the_total_time_on_site() {
    // Seconds 0–100 of the lead's total dwell are worth 0.1 each, seconds 100–300 worth 1,
    // beyond 300 nothing: a piecewise-linear function of the total, exact on the stream.
    let rules = format!(
        "{}[[engagement]]\nname = \"mid\"\non = \"page_view\"\npoints_per_second = 1.0\ndwell_band = [100, 300]\n",
        rule("points_per_second = 0.1\ndwell_band = [0, 100]")
    );
    // Totals after each view: 60, 160, 400.
    let (s, st, e) = score(&rules, &views(&[(0.0, 60.0), (1.0, 100.0), (2.0, 240.0)]));
    assert!((s - (10.0 + 200.0)).abs() < 1e-9, "{s}");
    assert_eq!(
        LeadState::decode(e.rules(), &st.to_bytes(e.rules())).unwrap(),
        st
    );
    let bad = "[threshold]\nsales_ready = 1\n[[engagement]]\nname = \"r\"\non = \"page_view\"\npoints = 1.0\ndwell_band = [0, 10]\n";
    let err = Rules::parse(Path::new("bad.toml"), bad.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("needs points_per_second"), "{err}");
}

#[test]
fn duration_bands_are_half_open() {
    let r = rule("min_duration_s = 30\nmax_duration_s = 120\npoints = 1.0");
    let (s, _, _) = score(
        &r,
        &views(&[(0.0, 29.9), (1.0, 30.0), (2.0, 119.9), (3.0, 120.0)]),
    );
    assert_eq!(s, 2.0);
}

#[test]
fn count_bands_split_the_first_matches_from_the_rest() {
    let rules = format!(
        "{}[[engagement]]\nname = \"later\"\non = \"page_view\"\nnth = [4, inf]\npoints = 1.0\n",
        rule("nth = [1, 3]\npoints = 10.0")
    );
    let five: Vec<(f64, f64)> = (0..5).map(|i| (i as f64 * 60.0, 5.0)).collect();
    let (s, st, e) = score(&rules, &views(&five));
    assert_eq!(s, 10.0 * 3.0 + 1.0 * 2.0);
    let back = LeadState::decode(e.rules(), &st.to_bytes(e.rules())).unwrap();
    assert_eq!(
        back, st,
        "the counters round-trip through the state encoding"
    );

    let (s, _, _) = score(&rule("max_total = 2\npoints = 5.0"), &views(&five));
    assert_eq!(s, 10.0);
}

#[test]
fn a_count_window_restarts_the_count_after_a_quiet_spell() {
    // First match only, counted afresh after a day without a match: day 0 yes, 12 h no
    // (second match), day 2 yes (1.5 days after the previous match).
    let r = rule("nth = [1, 1]\ncount_window = \"1d\"\npoints = 1.0");
    let (s, _, _) = score(&r, &views(&[(0.0, 5.0), (720.0, 5.0), (2880.0, 5.0)]));
    assert_eq!(s, 2.0);
}

#[test]
fn visits_are_page_views_less_than_the_gap_apart() {
    let rules = format!(
        "[visits]\ngap = \"30m\"\n{}[[engagement]]\nname = \"deep-visit\"\non = \"page_view\"\nvisit_page = 3\npoints = 10.0\n",
        rule("visit_page = 1\npoints = 1.0")
    );
    // Visit 1: 0, 10, 20 min (three pages); visit 2: 120 min; visit 3: 160 min (40 min gap);
    // a late page view at 15 min (processed last) joins the current visit 3 as its page 2.
    let (s, st, e) = score(
        &rules,
        &views(&[
            (0.0, 5.0),
            (10.0, 5.0),
            (20.0, 5.0),
            (120.0, 5.0),
            (160.0, 5.0),
            (15.0, 5.0),
        ]),
    );
    assert_eq!(s, 3.0 * 1.0 + 10.0);
    let visit = st.shape().unwrap().visit.unwrap();
    assert_eq!(visit.pages, 2);
    assert_eq!(
        LeadState::decode(e.rules(), &st.to_bytes(e.rules())).unwrap(),
        st
    );
}

#[test]
fn numeric_bins_are_half_open_and_missing_holds_from_the_first_event() {
    let fit = "[[fit]]\nname = \"small\"\nfield = \"size\"\nbin = [10, 50]\npoints = 7.0\n\
               [[fit]]\nname = \"no-size\"\nfield = \"size\"\nmissing = true\npoints = -3.0\n";
    let e = engine(fit);
    let form = |id: &str, size: Value| {
        json!({"event_id": id, "type": "form_conversion", "lead_id": "L",
            "ts": "2026-11-01T01:00:00Z", "form_id": "f", "fields": {"size": size}})
    };
    let first = views(&[(0.0, 5.0)]);
    assert_eq!(
        run(&e, &first).get("L").unwrap().fit(),
        -3.0,
        "missing holds at once"
    );
    for (size, fit) in [
        (json!(10), 7.0),
        (json!("49.9"), 7.0),
        (json!(50), 0.0),
        (json!(9), 0.0),
    ] {
        let leads = run(&e, &[first[0].clone(), form("f", size.clone())]);
        assert_eq!(leads.get("L").unwrap().fit(), fit, "size {size}");
    }
}

#[test]
fn shape_fields_that_cannot_work_are_refused_with_the_fix() {
    for (body, says) in [
        (
            "points = 1.0\npoints_per_second = 0.1",
            "exactly one of `points` and `points_per_second`",
        ),
        ("points = 1.0\nmax_seconds = 5", "needs points_per_second"),
        ("points = 1.0\nnth = [3, 2]", "field `nth`"),
        ("points = 1.0\nnth = [1, 2]\nmax_total = 3", "keep one"),
        (
            "points = 1.0\ncount_window = \"1d\"",
            "needs nth, max_total or dwell_band",
        ),
        ("points = 1.0\nvisit_page = 0", "field `visit_page`"),
    ] {
        let text = format!("[threshold]\nsales_ready = 1\n{}", rule(body));
        let e = Rules::parse(Path::new("bad.toml"), text.as_bytes()).unwrap_err();
        assert!(e.to_string().contains(says), "{body}: {e}");
    }
    let text = "[threshold]\nsales_ready = 1\n[[engagement]]\nname = \"o\"\non = \"email_open\"\nvisit_page = 1\npoints = 1.0\n";
    let e = Rules::parse(Path::new("bad.toml"), text.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("page_view"), "{e}");
}

proptest::proptest! {
    /// Dwell bands that partition [0, ∞) split every second exactly once: their points add up
    /// to the total dwell, whatever the durations and the cut points.
    #[test]
    fn dwell_bands_partition_the_total(
        durations in proptest::collection::vec(0.0f64..2000.0, 1..20),
        a in 1.0f64..500.0,
        gap in 1.0f64..2000.0,
    ) {
        let b = a + gap;
        let rules = format!(
            "{}{}{}",
            rule(&format!("points_per_second = 1.0\ndwell_band = [0, {a}]")).replace("\"r\"", "\"low\""),
            rule(&format!("points_per_second = 1.0\ndwell_band = [{a}, {b}]")).replace("\"r\"", "\"mid\""),
            rule(&format!("points_per_second = 1.0\ndwell_band = [{b}, inf]")).replace("\"r\"", "\"high\""),
        );
        let items: Vec<(f64, f64)> = durations.iter().enumerate().map(|(i, d)| (i as f64, *d)).collect();
        let (s, _, _) = score(&rules, &views(&items));
        let total: f64 = durations.iter().sum();
        proptest::prop_assert!((s - total).abs() <= 1e-6 * total.max(1.0), "{} vs {}", s, total);
    }

    /// Count bands that partition the matches count every match once.
    #[test]
    fn count_bands_partition_the_matches(n in 1usize..40, p in 2u32..10, width in 0u32..10) {
        // [1, p − 1], [p, q], [q + 1, ∞)
        let q = p + width;
        let rules = format!(
            "{}{}{}",
            rule(&format!("nth = [1, {}]\npoints = 1.0", p - 1)).replace("\"r\"", "\"a\""),
            rule(&format!("nth = [{p}, {q}]\npoints = 1.0")).replace("\"r\"", "\"b\""),
            rule(&format!("nth = [{}, inf]\npoints = 1.0", q + 1)).replace("\"r\"", "\"c\""),
        );
        let items: Vec<(f64, f64)> = (0..n).map(|i| (i as f64, 1.0)).collect();
        let (s, _, _) = score(&rules, &views(&items));
        proptest::prop_assert_eq!(s, n as f64);
    }
}
