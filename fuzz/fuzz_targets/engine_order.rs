//! `Engine::apply` on arbitrary event sequences of one lead.
//! - Any mix of the four event types, in the given order: no panic, and the state survives
//!   encode → decode.
//! - Page views only, in the given order and reversed: the final score is the direct formula
//!   Σ p·2^(−(T−t)/h) and the clock is the newest event (the order-free property that
//!   tests/properties.rs states with proptest).
#![no_main]
use std::sync::{Arc, OnceLock};

use leadscore::engine::Engine;
use leadscore::event::decode_json;
use leadscore::rules::Rules;
use leadscore::state::LeadState;
use libfuzzer_sys::fuzz_target;

const RULES: &str = r#"
name = "fuzz"
[threshold]
sales_ready = 60
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
name = "opens"
on = "email_open"
points = 2.0
half_life = "7d"
[[engagement]]
name = "clicks"
on = "click"
points = 5.0
half_life = "7d"
[[engagement]]
name = "forms"
on = "form_conversion"
points = 20.0
half_life = "30d"
[[fit]]
name = "senior"
field = "job_title"
matches = "(?i)vp"
points = 20.0
"#;

/// (points, half-life seconds) of the page-view rules each path matches.
const MATCHED: [&[(f64, Option<f64>)]; 4] = [
    &[(7.5, Some(3600.0))],
    &[(12.0, Some(259_200.0))],
    &[(-4.0, None)],
    &[],
];
const PATHS: [&str; 4] = ["/a", "/b", "/c", "/z"];
const KINDS: [&str; 4] = ["page_view", "email_open", "click", "form_conversion"];
const T0: i64 = 1_790_000_000;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let rules = Rules::parse(std::path::Path::new("fuzz.toml"), RULES.as_bytes()).unwrap();
        Engine::new(Arc::new(rules))
    })
}

/// One event from 4 bytes: kind, path, and a time within 30 days.
fn event(i: usize, b: &[u8], kind: &str) -> (String, i64, usize) {
    let secs = (u16::from_le_bytes([b[2], b[3]]) as i64) * 40;
    let ts = leadscore::time::format_rfc3339((T0 + secs) * 1_000_000);
    let path = (b[1] % 4) as usize;
    let json = format!(
        r#"{{"event_id":"e{i}","type":"{kind}","lead_id":"L","ts":"{ts}","url":"https://x.io{}","duration_s":{},"campaign_id":"c","user_agent":"Mozilla/5.0","form_id":"f","fields":{{"job_title":"{}"}}}}"#,
        PATHS[path],
        b[1] / 4,
        if b[0] & 4 == 0 { "VP Sales" } else { "intern" },
    );
    (json, secs, path)
}

fn apply_all(lines: &[String], order: impl Iterator<Item = usize>) -> LeadState {
    let mut st = LeadState::new();
    for i in order {
        let ev = decode_json(lines[i].as_bytes()).expect("built events are valid");
        engine().apply(&mut st, &ev);
    }
    st
}

fuzz_target!(|data: &[u8]| {
    let chunks: Vec<&[u8]> = data.chunks_exact(4).take(64).collect();
    if chunks.is_empty() {
        return;
    }
    // Any mix, in order: no panic; the state round-trips.
    let mixed: Vec<String> = chunks
        .iter()
        .enumerate()
        .map(|(i, b)| event(i, b, KINDS[(b[0] % 4) as usize]).0)
        .collect();
    let st = apply_all(&mixed, 0..mixed.len());
    let rules = engine().rules();
    assert_eq!(LeadState::decode(rules, &st.to_bytes(rules)).unwrap(), st);
    // Page views: the direct formula, in both orders.
    let views: Vec<(String, i64, usize)> =
        chunks.iter().enumerate().map(|(i, b)| event(i, b, "page_view")).collect();
    let lines: Vec<String> = views.iter().map(|v| v.0.clone()).collect();
    let t_max = views.iter().map(|v| v.1).max().unwrap();
    let (mut expected, mut magnitude) = (0.0, 0.0);
    for (_, s, path) in &views {
        for (p, h) in MATCHED[*path] {
            let c = h.map_or(*p, |h| p * (-((t_max - s) as f64) / h).exp2());
            expected += c;
            magnitude += c.abs();
        }
    }
    for st in [apply_all(&lines, 0..lines.len()), apply_all(&lines, (0..lines.len()).rev())] {
        let got = st.score();
        assert!((got - expected).abs() <= 1e-9 * f64::max(magnitude, 1e-300), "{got} vs {expected}");
        assert_eq!(st.clock(), Some((T0 + t_max) * 1_000_000));
    }
});
