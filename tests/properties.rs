//! Property tests: decay and ordering maths, state encoding.

use std::path::Path;
use std::sync::Arc;

use leadscore::engine::{Engine, Outcome};
use leadscore::event::decode_json;
use leadscore::rules::Rules;
use leadscore::state::LeadState;
use proptest::prelude::*;
use serde_json::json;

const RULES: &str = r#"
name = "prop"
[threshold]
sales_ready = 1e12
[[engagement]]
name = "hourly"
on = "page_view"
url_path_prefix = "/a"
points = 7.5
half_life = "1h"
[[engagement]]
name = "three-days"
on = "page_view"
url_path_prefix = "/b"
points = 12.0
half_life = "3d"
[[engagement]]
name = "never"
on = "page_view"
url_path_prefix = "/c"
points = -4.0
half_life = "never"
[[engagement]]
name = "both"
on = "page_view"
url_contains = "/a"
points = 3.0
half_life = "90m"
[[fit]]
name = "senior"
field = "job_title"
matches = "(?i)vp"
points = 20.0
"#;

fn engine() -> Engine {
    Engine::new(Arc::new(
        Rules::parse(Path::new("prop.toml"), RULES.as_bytes()).unwrap(),
    ))
}

const PATHS: [&str; 4] = ["/a", "/b", "/c", "/z"];
/// (points, half-life seconds) of the rules each path matches.
fn matched(path: usize) -> Vec<(f64, Option<f64>)> {
    match path {
        0 => vec![(7.5, Some(3600.0)), (3.0, Some(5400.0))],
        1 => vec![(12.0, Some(3.0 * 86400.0))],
        2 => vec![(-4.0, None)],
        _ => vec![],
    }
}

const T0: i64 = 1_790_000_000; // seconds

fn line(i: usize, secs: i64, path: usize) -> String {
    let ts = chrono::DateTime::from_timestamp(T0 + secs, 0).unwrap();
    json!({"event_id": format!("e{i}"), "type": "page_view", "lead_id": "L",
           "ts": ts.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
           "url": format!("https://x.io{}", PATHS[path])})
    .to_string()
}

fn events() -> impl Strategy<Value = Vec<(i64, usize)>> {
    prop::collection::vec((0i64..20 * 86400, 0usize..4), 1..60)
}

proptest! {
    /// Whatever the order of a lead's events, its final score is Σ p·2^(−(T−t)/h).
    #[test]
    fn final_score_is_the_direct_formula_in_any_order(
        evs in events(),
        perm_seed in any::<u64>(),
    ) {
        let engine = engine();
        let lines: Vec<String> = evs.iter().enumerate().map(|(i, (s, p))| line(i, *s, *p)).collect();
        // A deterministic shuffle of the delivery order.
        let mut order: Vec<usize> = (0..lines.len()).collect();
        let mut x = perm_seed | 1;
        for i in (1..order.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut st = LeadState::new();
        for &i in &order {
            let ev = decode_json(lines[i].as_bytes()).unwrap();
            prop_assert!(matches!(engine.apply(&mut st, &ev), Outcome::Scored(_)));
        }
        let t_max = evs.iter().map(|e| e.0).max().unwrap();
        let mut expected = 0.0;
        let mut magnitude = 0.0;
        for (s, p) in &evs {
            for (pts, h) in matched(*p) {
                let c = match h { Some(h) => pts * (-((t_max - s) as f64) / h).exp2(), None => pts };
                expected += c;
                magnitude += c.abs();
            }
        }
        let got = st.score();
        prop_assert!((got - expected).abs() <= 1e-9 * magnitude.max(1e-300),
            "got {got}, expected {expected}");
        prop_assert_eq!(st.clock(), Some((T0 + t_max) * 1_000_000));
    }

    /// Applying in prefetched batches is applying one by one: the same outcome for every
    /// event (alerts field for field) and the same final state for every lead, however the
    /// leads of a stream interleave within and across batches.
    #[test]
    fn batched_application_equals_one_by_one(
        evs in prop::collection::vec((0i64..20 * 86400, 0usize..4, 0usize..5), 1..120),
    ) {
        let engine = engine();
        let lines: Vec<String> = evs
            .iter()
            .enumerate()
            .map(|(i, (s, p, lead))| line(i, *s, *p).replace("\"L\"", &format!("\"L{lead}\"")))
            .collect();
        let events: Vec<_> = lines.iter().map(|l| decode_json(l.as_bytes()).unwrap()).collect();
        let mut one = leadscore::leads::LeadTable::new();
        let want: Vec<String> = events
            .iter()
            .map(|ev| format!("{:?}", engine.apply_to(&mut one, ev)))
            .collect();
        let mut batched = leadscore::leads::LeadTable::new();
        let mut got = Vec::new();
        engine.apply_batch(&mut batched, &events, |i, outcome| got.push((i, format!("{outcome:?}"))));
        prop_assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), (0..events.len()).collect::<Vec<_>>());
        prop_assert_eq!(got.into_iter().map(|g| g.1).collect::<Vec<_>>(), want);
        prop_assert_eq!(batched.len(), one.len());
        for lead in one.iter() {
            prop_assert_eq!(batched.get(&lead.id), Some(&lead.state));
        }
    }

    /// State survives encode → decode unchanged, and re-encodes to the same bytes.
    #[test]
    fn state_round_trips(evs in events(), title in "[A-Za-z ]{0,20}") {
        let engine = engine();
        let mut st = LeadState::new();
        for (i, (s, p)) in evs.iter().enumerate() {
            let l = line(i, *s, *p);
            engine.apply(&mut st, &decode_json(l.as_bytes()).unwrap());
        }
        let form = json!({"event_id": "f", "type": "form_conversion", "lead_id": "L",
            "ts": "2026-01-01T00:00:00Z", "form_id": "x", "fields": {"job_title": title}}).to_string();
        engine.apply(&mut st, &decode_json(form.as_bytes()).unwrap());
        let bytes = st.to_bytes(engine.rules());
        let back = LeadState::decode(engine.rules(), &bytes).unwrap();
        prop_assert_eq!(&back, &st);
        prop_assert_eq!(back.to_bytes(engine.rules()), bytes);
    }
}

#[test]
fn decode_rejects_corrupt_state() {
    let engine = engine();
    let mut st = LeadState::new();
    engine.apply(&mut st, &decode_json(line(0, 0, 0).as_bytes()).unwrap());
    let bytes = st.to_bytes(engine.rules());
    for cut in 0..bytes.len() {
        assert!(
            LeadState::decode(engine.rules(), &bytes[..cut]).is_err(),
            "cut {cut}"
        );
    }
    let mut future = bytes.clone();
    future[0] = 99;
    let err = LeadState::decode(engine.rules(), &future)
        .unwrap_err()
        .to_string();
    assert!(err.contains("version 99"), "{err}");
}

#[test]
fn state_is_compact() {
    // A lead with 5 active rules and a full dedup window.
    let text = (0..5).fold(String::from("[threshold]\nsales_ready = 1e9\n"), |acc, i| {
        acc + &format!("[[engagement]]\nname = \"r{i}\"\non = \"page_view\"\nurl_contains = \"/p{i}\"\npoints = 1.0\n")
    });
    let engine = Engine::new(Arc::new(
        Rules::parse(Path::new("c"), text.as_bytes()).unwrap(),
    ));
    let mut st = LeadState::new();
    for i in 0..40 {
        let l = json!({"event_id": format!("event-{i}"), "type": "page_view", "lead_id": "L",
            "ts": "2026-11-01T00:00:00Z", "url": format!("https://x.io/p{}", i % 5)})
        .to_string();
        engine.apply(&mut st, &decode_json(l.as_bytes()).unwrap());
    }
    assert_eq!(st.accumulators().len(), 5);
    let encoded = st.to_bytes(engine.rules()).len();
    eprintln!(
        "state: {encoded} bytes encoded, {} bytes in memory",
        st.memory_bytes()
    );
    assert!(encoded <= 200, "encoded state is {encoded} bytes");
    assert!(
        st.memory_bytes() <= 400,
        "{} bytes in memory",
        st.memory_bytes()
    );
}
