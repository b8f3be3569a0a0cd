//! The properties the fuzz targets (fuzz/fuzz_targets, run by scripts/fuzz.sh) assert on
//! arbitrary input, one function per target, so that every crash input kept under
//! fuzz/regressions/<target>/ is re-checked by `cargo test` (tests/fuzz_regressions.rs).
//! Each function panics when its property fails.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use prost::Message;

use crate::config::Config;
use crate::engine::Engine;
use crate::event::{decode, decode_json, decode_protobuf, Limits, PayloadFormat};
use crate::rules::Rules;
use crate::state::LeadState;

/// A property over arbitrary bytes; panics when it fails.
pub type Check = fn(&[u8]);

/// Every target by name, for the regression test.
pub const TARGETS: [(&str, Check); 6] = [
    ("event_json", event_json),
    ("event_protobuf", event_protobuf),
    ("rules", rules),
    ("state", state),
    ("config", config),
    ("engine_order", engine_order),
];

/// JSON event decoding never panics; a valid event re-encodes to JSON that decodes to an equal
/// event.
pub fn event_json(data: &[u8]) {
    let limits = Limits::default();
    if let Ok(ev) = decode(data, None, PayloadFormat::Json, &limits) {
        let again = ev.to_json();
        let back = decode_json(again.as_bytes()).expect("a re-encoded event decodes");
        assert_eq!(back, ev);
    }
    let _ = decode(data, Some(b"lead"), PayloadFormat::Auto, &limits);
    // The same bytes as a sales verdict (the outcomes topic, a replayed history line).
    if let Ok(v) = crate::verdict::decode(data, None, &limits) {
        let back = crate::verdict::decode_json(v.to_json().as_bytes(), &limits)
            .expect("a re-encoded verdict decodes");
        assert_eq!(back, v);
    }
    let _ = crate::replay::decode_line(data);
}

/// Protobuf event decoding never panics; a valid event re-encodes to a payload that decodes to
/// an equal event.
pub fn event_protobuf(data: &[u8]) {
    if let Ok(ev) = decode(data, None, PayloadFormat::Protobuf, &Limits::default()) {
        let again = ev.to_proto().encode_to_vec();
        let back = decode_protobuf(&again).expect("a re-encoded event decodes");
        assert_eq!(back, ev);
    }
    if let Ok(v) = crate::verdict::decode_protobuf(data, &Limits::default()) {
        let again = v.to_proto().encode_to_vec();
        let back = crate::verdict::decode_protobuf(&again, &Limits::default())
            .expect("a re-encoded verdict decodes");
        assert_eq!(back, v);
    }
}

/// The rules loader gives rules or an error for any bytes.
pub fn rules(data: &[u8]) {
    let _ = Rules::parse(Path::new("fuzz.toml"), data);
}

fn example_rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        let text = include_bytes!("../examples/rules.toml");
        Rules::parse(Path::new("examples/rules.toml"), text).expect("the example rules load")
    })
}

/// The versioned binary state decoder (what a changelog restore reads) never panics; a state
/// it accepts re-encodes to bytes that decode to an equal state.
pub fn state(data: &[u8]) {
    let rules = example_rules();
    if let Ok(st) = LeadState::decode(rules, data) {
        let back =
            LeadState::decode(rules, &st.to_bytes(rules)).expect("a re-encoded state decodes");
        assert_eq!(back, st);
    }
}

/// The configuration loader gives a configuration or an error naming a field for any TOML
/// text.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Config::from_toml("fuzz.toml", text) {
        assert!(!e.field.is_empty(), "{e}");
    }
}

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
    let ts = crate::time::format_rfc3339((T0 + secs) * 1_000_000);
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

/// `Engine::apply` on an arbitrary event sequence of one lead (4 bytes per event):
/// - any mix of the four event types, in the given order: no panic, and the state survives
///   encode → decode;
/// - page views only, in the given order and reversed: the final score is the direct formula
///   Σ p·2^(−(T−t)/h) and the clock is the newest event (the order-free property that
///   tests/properties.rs states with proptest).
pub fn engine_order(data: &[u8]) {
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
    let views: Vec<(String, i64, usize)> = chunks
        .iter()
        .enumerate()
        .map(|(i, b)| event(i, b, "page_view"))
        .collect();
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
    for st in [
        apply_all(&lines, 0..lines.len()),
        apply_all(&lines, (0..lines.len()).rev()),
    ] {
        let got = st.score();
        assert!(
            (got - expected).abs() <= 1e-9 * f64::max(magnitude, 1e-300),
            "{got} vs {expected}"
        );
        assert_eq!(st.clock(), Some((T0 + t_max) * 1_000_000));
    }
}
