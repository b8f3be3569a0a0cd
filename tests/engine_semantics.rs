//! SPEC §4, point by point, with hand-computed expectations, through `replay` (the same engine the
//! service runs).

use std::path::Path;
use std::sync::Arc;

use leadscore::engine::Engine;
use leadscore::leads::LeadTable;
use leadscore::replay::{replay, ReplayStats};
use leadscore::rules::Rules;
use serde_json::{json, Value};

const BASE: &str = r#"
name = "t"
[threshold]
sales_ready = 100.0
rearm_below = 50.0
[decay]
half_life = "1d"
[bot_filter]
min_seconds_after_send = 2
user_agent_contains = ["Mimecast", "GoogleImageProxy"]
"#;

fn engine(extra: &str) -> Engine {
    let text = format!("{BASE}\n{extra}");
    let rules =
        Rules::parse(Path::new("test.toml"), text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    Engine::new(Arc::new(rules))
}

struct Run {
    emitted: Vec<Value>,
    leads: LeadTable,
    stats: ReplayStats,
    diag: String,
    engine: Engine,
}

impl Run {
    fn score(&self, lead: &str) -> f64 {
        self.engine
            .lead_score(lead, self.leads.get(lead).unwrap())
            .score
    }
    fn scores(&self, lead: &str) -> Value {
        serde_json::to_value(self.engine.lead_score(lead, self.leads.get(lead).unwrap())).unwrap()
    }
    fn ids(&self) -> Vec<String> {
        self.emitted
            .iter()
            .map(|v| v["event_id"].as_str().unwrap().to_string())
            .collect()
    }
}

fn run(extra: &str, events: &[Value]) -> Run {
    let engine = engine(extra);
    let input: String = events.iter().map(|e| format!("{e}\n")).collect();
    run_lines(engine, &input)
}

fn run_lines(engine: Engine, input: &str) -> Run {
    let mut out = Vec::new();
    let mut diag = Vec::new();
    let (leads, stats) = replay(&engine, input.as_bytes(), &mut out, &mut diag, false).unwrap();
    let emitted = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    Run {
        emitted,
        leads,
        stats,
        diag: String::from_utf8(diag).unwrap(),
        engine,
    }
}

fn pv(id: &str, lead: &str, ts: &str, path: &str) -> Value {
    json!({"event_id": id, "type": "page_view", "lead_id": lead, "ts": ts,
           "url": format!("https://x.io{path}")})
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1e-12)
}

macro_rules! assert_close {
    ($a:expr, $b:expr) => {{
        let (a, b) = ($a, $b);
        assert!(close(a, b), "{a} != {b}");
    }};
}

const PRICING: &str = r#"
[[engagement]]
name = "pricing"
on = "page_view"
url_path_prefix = "/pricing"
points = 40.0
"#;

#[test]
fn engagement_decays_with_the_rule_half_life() {
    let r = run(
        PRICING,
        &[
            pv("a", "L", "2026-11-01T00:00:00Z", "/pricing"),
            pv("b", "L", "2026-11-02T00:00:00Z", "/blog"),
        ],
    );
    // 40 · 2^(−1d/1d) = 20; the non-matching page view still moved the clock.
    assert_close!(r.score("L"), 20.0);
    assert_eq!(r.scores("L")["as_of"], "2026-11-02T00:00:00Z");
}

#[test]
fn per_rule_half_lives_and_never() {
    let rules = r#"
[[engagement]]
name = "fast"
on = "page_view"
url_path_prefix = "/pricing"
points = 40.0
half_life = "12h"
[[engagement]]
name = "forever"
on = "page_view"
url_contains = "pricing"
points = 8.0
half_life = "never"
"#;
    let r = run(
        rules,
        &[
            pv("a", "L", "2026-11-01T00:00:00Z", "/pricing"),
            pv("b", "L", "2026-11-02T00:00:00Z", "/home"),
        ],
    );
    // One event matched two rules: 40 · 2^(−24h/12h) + 8 = 10 + 8.
    assert_close!(r.score("L"), 18.0);
}

#[test]
fn late_event_adds_its_decayed_contribution_and_keeps_the_clock() {
    let r = run(
        PRICING,
        &[
            pv("a", "L", "2026-11-03T00:00:00Z", "/home"),
            pv("b", "L", "2026-11-01T00:00:00Z", "/pricing"),
        ],
    );
    // 40 · 2^(−2d/1d) = 10 at the clock, which stays at the later event.
    assert_close!(r.score("L"), 10.0);
    assert_eq!(r.scores("L")["as_of"], "2026-11-03T00:00:00Z");
}

#[test]
fn caps_count_applications_per_utc_day_of_the_event() {
    let rules = r#"
[[engagement]]
name = "pricing"
on = "page_view"
url_path_prefix = "/pricing"
points = 10.0
half_life = "never"
max_per_day = 2
"#;
    let r = run(
        rules,
        &[
            pv("a", "L", "2026-11-01T08:00:00Z", "/pricing"),
            pv("b", "L", "2026-11-01T09:00:00Z", "/pricing"),
            pv("c", "L", "2026-11-01T10:00:00Z", "/pricing"), // third today: nothing
            // 23:30 at −02:00 is 01:30 UTC on Nov 2: a new UTC day.
            pv("d", "L", "2026-11-01T23:30:00-02:00", "/pricing"),
            // Late event for Nov 1: that day is full.
            pv("e", "L", "2026-11-01T11:00:00Z", "/pricing"),
        ],
    );
    assert_close!(r.score("L"), 30.0);
    assert_eq!(r.stats.scored, 5);
}

fn form(id: &str, lead: &str, ts: &str, fields: Value) -> Value {
    json!({"event_id": id, "type": "form_conversion", "lead_id": lead, "ts": ts,
           "form_id": "f", "fields": fields})
}

const FIT: &str = r#"
[[fit]]
name = "senior"
field = "job_title"
matches = "(?i)\\b(vp|ceo)\\b"
points = 20.0
[[fit]]
name = "industry"
field = "industry"
in = ["Software", "saas"]
points = 15.0
[[fit]]
name = "size"
field = "company_size"
range = [50, 5000]
points = 10.0
[[fit]]
name = "country"
field = "country"
equals = "de"
points = 5.0
[[fit]]
name = "has-phone"
field = "phone"
exists = true
points = 1.0
"#;

#[test]
fn fit_conditions_and_value_forms() {
    let r = run(
        FIT,
        &[form(
            "a",
            "L",
            "2026-11-01T00:00:00Z",
            json!({"job_title": "VP Sales", "industry": "SOFTWARE", "company_size": "250",
                   "country": "DE", "phone": ""}),
        )],
    );
    // senior 20 + industry 15 (case-insensitive) + size 10 (numeric string) + country 5;
    // empty phone does not exist.
    assert_close!(r.scores("L")["fit_score"].as_f64().unwrap(), 50.0);
    let r = run(
        FIT,
        &[form(
            "a",
            "L",
            "2026-11-01T00:00:00Z",
            json!({"company_size": "about 200", "phone": 5551234}),
        )],
    );
    // non-numeric value under range does not hold; a number exists.
    assert_close!(r.scores("L")["fit_score"].as_f64().unwrap(), 1.0);
    let r = run(
        FIT,
        &[form(
            "a",
            "L",
            "2026-11-01T00:00:00Z",
            json!({"company_size": 5000}),
        )],
    );
    assert_close!(r.score("L"), 10.0);
}

#[test]
fn profile_keeps_the_value_with_the_latest_ts() {
    let r = run(
        FIT,
        &[
            form(
                "a",
                "L",
                "2026-11-02T00:00:00Z",
                json!({"job_title": "CEO"}),
            ),
            // Older form arriving later: does not overwrite the title.
            form(
                "b",
                "L",
                "2026-11-01T00:00:00Z",
                json!({"job_title": "Student", "industry": "saas"}),
            ),
        ],
    );
    assert_close!(r.scores("L")["fit_score"].as_f64().unwrap(), 35.0);
    let r = run(
        FIT,
        &[
            form(
                "a",
                "L",
                "2026-11-02T00:00:00Z",
                json!({"job_title": "CEO"}),
            ),
            // Equal ts: the later processed wins.
            form(
                "b",
                "L",
                "2026-11-02T00:00:00Z",
                json!({"job_title": "Student"}),
            ),
        ],
    );
    assert_close!(r.scores("L")["fit_score"].as_f64().unwrap(), 0.0);
}

fn email(kind: &str, id: &str, ts: &str, sent: &str, ua: &str) -> Value {
    json!({"event_id": id, "type": kind, "lead_id": "L", "ts": ts, "sent_at": sent,
           "user_agent": ua, "campaign_id": "c1", "url": "https://x.io/offer"})
}

const EMAIL: &str = r#"
[[engagement]]
name = "open"
on = "email_open"
points = 10.0
half_life = "never"
[[engagement]]
name = "click"
on = "click"
points = 20.0
half_life = "never"
"#;

#[test]
fn bot_activity_is_not_scored_and_does_not_move_the_clock() {
    let r = run(
        EMAIL,
        &[
            email(
                "email_open",
                "a",
                "2026-11-01T10:00:00Z",
                "2026-11-01T10:00:00Z",
                "Mail",
            ),
            // 1 s after the send: bot.
            email(
                "click",
                "b",
                "2026-11-01T10:00:01Z",
                "2026-11-01T10:00:00Z",
                "Mail",
            ),
            // listed pattern, case-insensitive: bot, even much later.
            email(
                "click",
                "c",
                "2026-11-03T10:00:00Z",
                "2026-11-01T10:00:00Z",
                "x-MIMECAST-y",
            ),
            // exactly 2 s: not a bot.
            email(
                "email_open",
                "d",
                "2026-11-01T10:00:02Z",
                "2026-11-01T10:00:00Z",
                "Mail",
            ),
        ],
    );
    // Event a: 0 s after send is a bot too (0 < 2). Only d scores.
    assert_close!(r.score("L"), 10.0);
    assert_eq!(r.stats.bot, 3);
    assert_eq!(r.scores("L")["as_of"], "2026-11-01T10:00:02Z");
}

#[test]
fn duplicates_among_the_last_16_scored_ids_are_ignored() {
    let mut evs = vec![pv("dup", "L", "2026-11-01T00:00:00Z", "/pricing")];
    evs.push(pv("dup", "L", "2026-11-01T00:00:01Z", "/pricing"));
    let r = run(PRICING, &evs);
    // Ignored entirely: no points, and the clock does not move.
    assert_close!(r.score("L"), 40.0);
    assert_eq!(r.scores("L")["as_of"], "2026-11-01T00:00:00Z");
    assert_eq!(r.stats.duplicate, 1);
    assert_eq!(r.stats.scored, 1);

    // After 16 other scored events, "dup" has left the window and scores again.
    let mut evs = vec![pv("dup", "L", "2026-11-01T00:00:00Z", "/pricing")];
    for i in 0..16 {
        evs.push(pv(&format!("x{i}"), "L", "2026-11-01T00:00:00Z", "/home"));
    }
    evs.push(pv("dup", "L", "2026-11-01T00:00:00Z", "/pricing"));
    let r = run(PRICING, &evs);
    assert_close!(r.score("L"), 80.0);
    // With 15 others it is still remembered.
    let mut evs = vec![pv("dup", "L", "2026-11-01T00:00:00Z", "/pricing")];
    for i in 0..15 {
        evs.push(pv(&format!("x{i}"), "L", "2026-11-01T00:00:00Z", "/home"));
    }
    evs.push(pv("dup", "L", "2026-11-01T00:00:00Z", "/pricing"));
    let r = run(PRICING, &evs);
    assert_close!(r.score("L"), 40.0);
}

#[test]
fn bot_events_do_not_enter_the_dedup_window() {
    let r = run(
        EMAIL,
        &[
            email(
                "email_open",
                "a",
                "2026-11-01T10:00:00Z",
                "2026-11-01T10:00:00Z",
                "Mail",
            ),
            email(
                "email_open",
                "a",
                "2026-11-01T11:00:00Z",
                "2026-11-01T10:00:00Z",
                "Mail",
            ),
        ],
    );
    assert_eq!((r.stats.bot, r.stats.duplicate, r.stats.scored), (1, 0, 1));
    assert_close!(r.score("L"), 10.0);
}

#[test]
fn qualification_once_per_rise_and_re_mql_after_decay() {
    let r = run(
        PRICING,
        &[
            pv("a", "L", "2026-11-01T00:00:00Z", "/pricing"),
            pv("b", "L", "2026-11-01T00:00:00Z", "/pricing"),
            pv("c", "L", "2026-11-01T00:00:00Z", "/pricing"), // 120 ≥ 100: emit #1
            pv("d", "L", "2026-11-01T00:00:00Z", "/pricing"), // 160: still disarmed
            // 2 days later: s_pre = 160/4 = 40 < 50 → arm; s_post = 80 < 100.
            pv("e", "L", "2026-11-03T00:00:00Z", "/pricing"),
            pv("f", "L", "2026-11-03T00:00:00Z", "/pricing"), // 120: emit #2
        ],
    );
    assert_eq!(r.ids(), vec!["sr:L:1", "sr:L:2"]);
    let first = &r.emitted[0];
    assert_eq!(first["trigger_event_id"], "c");
    assert_eq!(first["sequence"], 1);
    assert_eq!(first["type"], "sales_ready");
    assert_eq!(first["qualified_at"], "2026-11-01T00:00:00Z");
    assert_close!(first["score"].as_f64().unwrap(), 120.0);
    assert_close!(first["threshold"].as_f64().unwrap(), 100.0);
    assert_eq!(r.emitted[1]["trigger_event_id"], "f");
    assert_close!(r.emitted[1]["score"].as_f64().unwrap(), 120.0);
}

#[test]
fn decay_alone_above_rearm_below_does_not_re_arm() {
    let r = run(
        PRICING,
        &[
            pv("a", "L", "2026-11-01T00:00:00Z", "/pricing"),
            pv("b", "L", "2026-11-01T00:00:00Z", "/pricing"),
            pv("c", "L", "2026-11-01T00:00:00Z", "/pricing"), // 120: emit
            // 1 day later: s_pre = 60 ≥ 50 stays disarmed; s_post = 100.
            pv("d", "L", "2026-11-02T00:00:00Z", "/pricing"),
        ],
    );
    assert_eq!(r.ids(), vec!["sr:L:1"]);
}

#[test]
fn negative_points_re_arm_through_s_post() {
    let rules = r#"
[[engagement]]
name = "pricing"
on = "page_view"
url_path_prefix = "/pricing"
points = 40.0
half_life = "never"
[[engagement]]
name = "careers"
on = "page_view"
url_path_prefix = "/careers"
points = -80.0
half_life = "never"
"#;
    let r = run(
        rules,
        &[
            pv("a", "L", "2026-11-01T00:00:00Z", "/pricing"),
            pv("b", "L", "2026-11-01T00:00:01Z", "/pricing"),
            pv("c", "L", "2026-11-01T00:00:02Z", "/pricing"), // 120: emit
            pv("d", "L", "2026-11-01T00:00:03Z", "/careers"), // s_pre 120, s_post 40 < 50: arm
            pv("e", "L", "2026-11-01T00:00:04Z", "/pricing"), // 80
            pv("f", "L", "2026-11-01T00:00:05Z", "/pricing"), // 120: emit #2
        ],
    );
    assert_eq!(r.ids(), vec!["sr:L:1", "sr:L:2"]);
    assert_eq!(r.emitted[1]["trigger_event_id"], "f");
}

#[test]
fn min_fit_holds_back_until_fit_arrives() {
    let rules = format!(
        "{PRICING}{FIT}",
        PRICING = PRICING.replace("points = 40.0", "points = 60.0")
    );
    let engine = {
        let text = format!(
            "{}\n{}",
            BASE.replace("rearm_below = 50.0", "rearm_below = 50.0\nmin_fit = 20.0"),
            rules
        );
        Engine::new(Arc::new(
            Rules::parse(Path::new("t.toml"), text.as_bytes()).unwrap(),
        ))
    };
    let evs = [
        pv("a", "L", "2026-11-01T00:00:00Z", "/pricing"),
        pv("b", "L", "2026-11-01T00:00:00Z", "/pricing"), // 120 but fit 0 < 20
        form(
            "c",
            "L",
            "2026-11-01T00:00:00Z",
            json!({"job_title": "CEO"}),
        ), // fit 20: emit
    ];
    let input: String = evs.iter().map(|e| format!("{e}\n")).collect();
    let r = run_lines(engine, &input);
    assert_eq!(r.ids(), vec!["sr:L:1"]);
    assert_eq!(r.emitted[0]["trigger_event_id"], "c");
    assert_close!(r.emitted[0]["fit_score"].as_f64().unwrap(), 20.0);
    assert_close!(r.emitted[0]["engagement_score"].as_f64().unwrap(), 120.0);
}

#[test]
fn top_signals_lists_up_to_five_by_contribution() {
    let mut rules = String::new();
    for (i, p) in [5.0, 30.0, 10.0, 25.0, 20.0, 15.0].iter().enumerate() {
        rules += &format!(
            "[[engagement]]\nname = \"r{i}\"\non = \"page_view\"\nurl_contains = \"x\"\npoints = {p}\n"
        );
    }
    let r = run(&rules, &[pv("a", "L", "2026-11-01T00:00:00Z", "/x")]);
    let sig: Vec<(String, f64)> = r.emitted[0]["top_signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["rule"].as_str().unwrap().to_string(),
                s["points"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sig,
        vec![
            ("r1".into(), 30.0),
            ("r3".into(), 25.0),
            ("r4".into(), 20.0),
            ("r5".into(), 15.0),
            ("r2".into(), 10.0)
        ]
    );
}

#[test]
fn scored_event_without_rules_can_qualify_via_fit() {
    let text = format!("{BASE}\n{FIT}");
    let text = text
        .replace("sales_ready = 100.0", "sales_ready = 30.0")
        .replace("rearm_below = 50.0", "rearm_below = 10.0");
    let engine = Engine::new(Arc::new(
        Rules::parse(Path::new("t"), text.as_bytes()).unwrap(),
    ));
    let e = form(
        "a",
        "L",
        "2026-11-01T00:00:00Z",
        json!({"job_title": "CEO", "industry": "saas"}),
    );
    let r = run_lines(engine, &format!("{e}\n"));
    assert_eq!(r.ids(), vec!["sr:L:1"]);
}

#[test]
fn invalid_lines_are_reported_with_line_numbers_and_do_not_stop_the_run() {
    let engine = engine(PRICING);
    let input = format!(
        "{}\nnot json\n\n{{\"event_id\":\"b\",\"type\":\"page_veiw\",\"lead_id\":\"L\",\"ts\":\"2026-11-01T00:00:00Z\"}}\n{}\n",
        pv("a", "L", "2026-11-01T00:00:00Z", "/pricing"),
        pv("c", "L", "2026-11-01T00:00:00Z", "/pricing"),
    );
    let r = run_lines(engine, &input);
    assert_eq!(r.stats.invalid, 2);
    assert_eq!(r.stats.read, 4, "blank line is not counted");
    assert_eq!(r.stats.scored, 2);
    assert!(r.diag.contains("line 2: invalid JSON"), "{}", r.diag);
    assert!(
        r.diag.contains("line 4: unknown event type `page_veiw`"),
        "{}",
        r.diag
    );
    assert_close!(r.score("L"), 80.0);
}

#[test]
fn model_adds_conversion_probability() {
    let r = run(
        &format!("{PRICING}\n[model]\nintercept = -2.0\nscale = 20.0\n"),
        &[
            pv("a", "L", "2026-11-01T00:00:00Z", "/pricing"),
            pv("b", "L", "2026-11-01T00:00:00Z", "/pricing"),
            pv("c", "L", "2026-11-01T00:00:00Z", "/pricing"),
        ],
    );
    // log-odds = −2 + 120/20 = 4.
    let p = r.emitted[0]["conversion_probability"].as_f64().unwrap();
    assert_close!(p, 1.0 / (1.0 + (-4.0f64).exp()));
}

#[test]
fn leads_are_independent() {
    let r = run(
        PRICING,
        &[
            pv("a", "A", "2026-11-05T00:00:00Z", "/pricing"),
            pv("a", "B", "2026-11-01T00:00:00Z", "/pricing"),
        ],
    );
    assert_close!(r.score("A"), 40.0);
    assert_close!(r.score("B"), 40.0);
    assert_eq!(r.stats.leads, 2);
}
