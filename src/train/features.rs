//! Candidate rules found in the data, and the feature of each candidate per lead.
//!
//! A feature is exactly what the engine would hold for that rule with `points = 1`: the decayed,
//! capped count of an engagement rule at the lead clock, or 1 when a fit rule holds. Computing
//! features by running the engine over the history (cut just before `converted_at`) makes the
//! trained points score in `replay` and the service exactly as they were fitted.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{anyhow, Result};

use crate::engine::Engine;
use crate::event::{Event, EventType, OfferStage};
use regex::Regex;

use crate::rules::{url_path, BotFilter, Criteria, Rules, Shape};
use crate::state::LeadState;

use super::data::Outcomes;
use super::logistic::Row;

/// What a candidate rule matches.
// A few hundred candidates at most: the size of the engagement variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Kind {
    /// An engagement rule: event type, criteria and shape (the engine's own [`Criteria`] and
    /// [`Shape`]).
    Engagement(EventType, Criteria, Shape),
    /// A fit rule `equals`.
    Equals {
        /// Profile field.
        field: String,
        /// Value (lower case).
        value: String,
    },
    /// A fit rule `bin = [low, high]` (low ≤ x < high).
    Bin {
        /// Profile field.
        field: String,
        /// Lower bound (inclusive).
        low: f64,
        /// Upper bound (exclusive).
        high: f64,
    },
    /// A fit rule `missing = true`.
    Missing {
        /// Profile field.
        field: String,
    },
}

/// A candidate rule.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Readable, unique name (the rule name in the output).
    pub name: String,
    /// What it matches.
    pub kind: Kind,
}

impl Candidate {
    /// The daily cap the candidate rule gets: none for shaped rules (count and dwell bands,
    /// visit pages already bound what they count; a cap would cut the shape).
    pub fn daily_cap(&self, cap: Option<u32>) -> Option<u32> {
        match &self.kind {
            Kind::Engagement(_, _, s) if s.counts() || s.visit_page.is_some() || s.per_second => {
                None
            }
            _ => cap,
        }
    }

    /// Is this an engagement candidate (decays; gets a half-life)?
    pub fn is_engagement(&self) -> bool {
        matches!(self.kind, Kind::Engagement(..))
    }
}

/// How candidates are chosen.
#[derive(Debug, Clone)]
pub struct CandidateOptions {
    /// Minimum leads a candidate must touch.
    pub min_support: usize,
    /// Most values per profile field / URL sections / campaigns / forms.
    pub max_values: usize,
    /// Quantile thresholds per numeric field.
    pub bins: usize,
    /// Look for engagement candidates (off for a flat table: its one event per lead is synthetic).
    pub engagement: bool,
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Number text for TOML (always with a decimal point or exponent, `inf` for infinity).
pub fn toml_number(x: f64) -> String {
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let s = format!("{x:?}");
    if s.contains(['.', 'e', 'E']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// The TOML of one rule (`[[engagement]]` or `[[fit]]`).
pub fn rule_toml(
    name: &str,
    kind: &Kind,
    points: f64,
    half_life: Option<&str>,
    max_per_day: Option<u32>,
) -> String {
    let (field, condition) = match kind {
        Kind::Engagement(on, c, shape) => {
            return engagement_toml(name, *on, c, shape, points, half_life, max_per_day)
        }
        Kind::Equals { field, value } => (field, format!("equals = {}", quote(value))),
        Kind::Bin { field, low, high } => (
            field,
            format!("bin = [{}, {}]", toml_number(*low), toml_number(*high)),
        ),
        Kind::Missing { field } => (field, "missing = true".to_string()),
    };
    format!(
        "[[fit]]\nname = {}\nfield = {}\n{condition}\npoints = {}\n",
        quote(name),
        quote(field),
        toml_number(points)
    )
}

/// The TOML of one `[[engagement]]` rule.
fn engagement_toml(
    name: &str,
    on: EventType,
    c: &Criteria,
    shape: &Shape,
    points: f64,
    half_life: Option<&str>,
    max_per_day: Option<u32>,
) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "[[engagement]]\nname = {}", quote(name));
    let _ = writeln!(t, "on = \"{}\"", on.as_str());
    for (key, value) in [
        ("url_path_prefix", c.url_path_prefix.as_deref()),
        ("url_contains", c.url_contains.as_deref()),
        ("url_regex", c.url_regex.as_ref().map(|r| r.as_str())),
        ("campaign_id", c.campaign_id.as_deref()),
        ("form_id", c.form_id.as_deref()),
        ("offer_stage", c.offer_stage.map(|s| s.as_str())),
    ] {
        if let Some(v) = value {
            let _ = writeln!(t, "{key} = {}", quote(v));
        }
    }
    for (key, value) in [
        ("min_duration_s", c.min_duration_s),
        ("max_duration_s", c.max_duration_s),
    ] {
        if let Some(d) = value {
            let _ = writeln!(t, "{key} = {}", toml_number(d));
        }
    }
    shape_toml(&mut t, shape, points);
    if let Some(h) = half_life {
        let _ = writeln!(t, "half_life = {}", quote(h));
    }
    if let Some(m) = max_per_day {
        let _ = writeln!(t, "max_per_day = {m}");
    }
    t
}

/// The points and shape keys of an engagement rule.
fn shape_toml(t: &mut String, shape: &Shape, points: f64) {
    if shape.per_second {
        let _ = writeln!(t, "points_per_second = {}", toml_number(points));
        if let Some(m) = shape.max_seconds {
            let _ = writeln!(t, "max_seconds = {}", toml_number(m));
        }
    } else {
        let _ = writeln!(t, "points = {}", toml_number(points));
    }
    if let Some((k, m)) = shape.band {
        let hi = if m == u32::MAX {
            "inf".to_string()
        } else {
            m.to_string()
        };
        let _ = writeln!(t, "nth = [{k}, {hi}]");
    }
    if let Some((low, high)) = shape.dwell_band {
        let _ = writeln!(
            t,
            "dwell_band = [{}, {}]",
            toml_number(low),
            toml_number(high)
        );
    }
    if let Some(n) = shape.visit_page {
        let _ = writeln!(t, "visit_page = {n}");
    }
}

/// The event's lead (index into `outcomes`), if it has an outcome; and whether the event is
/// strictly before the lead's conversion (usable for features).
fn lead_of(outcomes: &Outcomes, ev: &Event<'_>) -> Option<(usize, bool)> {
    let i = *outcomes.index.get(ev.lead_id.as_ref())?;
    let before = outcomes.outcomes[i]
        .converted_at
        .is_none_or(|at| ev.ts < at);
    Some((i, before))
}

/// Distinct-lead support of keys.
#[derive(Default)]
struct Support {
    leads: HashMap<String, HashSet<u32>>,
}

impl Support {
    fn note(&mut self, key: String, lead: usize) {
        self.leads.entry(key).or_default().insert(lead as u32);
    }
    fn count(&self, key: &str) -> usize {
        self.leads.get(key).map_or(0, HashSet::len)
    }
    /// Keys under `prefix` with enough support, most supported first (ties by key), at most `max`.
    fn top(&self, prefix: &str, min: usize, max: usize) -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = self
            .leads
            .iter()
            .filter_map(|(k, s)| {
                k.strip_prefix(prefix)
                    .filter(|_| s.len() >= min)
                    .map(|rest| (rest.to_string(), s.len()))
            })
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(max);
        v
    }
}

/// First path segment of a URL (`/blog/x` → `blog`, `/` → ``).
fn segment(url: &str) -> &str {
    let path = url_path(url);
    let p = path.trim_start_matches('/');
    p.split('/').next().unwrap_or("")
}

/// What the history shows, per lead with an outcome (bot activity and events at or after a
/// lead's conversion excluded): support of each kind of activity, dwell times per section, and
/// the latest value of each profile field.
#[derive(Default)]
struct Observed {
    sup: Support,
    durations: HashMap<String, Vec<f64>>,
    /// Total dwell per lead (page views).
    dwell_by_lead: HashMap<u32, f64>,
    /// Latest profile value per (lead, field): (ts, value).
    profile: HashMap<(u32, String), (i64, String)>,
}

impl Observed {
    fn of(events: &[Event<'_>], bot: &BotFilter, outcomes: &Outcomes, engagement: bool) -> Self {
        let mut obs = Observed::default();
        for ev in events {
            let Some((lead, true)) = lead_of(outcomes, ev) else {
                continue;
            };
            if bot.is_bot(ev) {
                continue;
            }
            obs.note_profile(lead, ev);
            if engagement {
                obs.note_activity(lead, ev);
            }
        }
        obs
    }

    /// Form fields, as the engine takes them (`email_domain` derived from `email`).
    fn note_profile(&mut self, lead: usize, ev: &Event<'_>) {
        if ev.kind != EventType::FormConversion {
            return;
        }
        for (k, v) in &ev.fields {
            let text = v.as_text().trim().to_string();
            if text.is_empty() {
                continue;
            }
            let mut put = |field: String, value: String| {
                let e = self
                    .profile
                    .entry((lead as u32, field))
                    .or_insert((i64::MIN, String::new()));
                if ev.ts >= e.0 {
                    *e = (ev.ts, value);
                }
            };
            if k == "email" {
                if let Some((_, d)) = text.rsplit_once('@') {
                    put("email_domain".into(), d.to_lowercase());
                }
            }
            put(k.to_string(), text);
        }
    }

    /// Which leads did what: pages by first path segment, opens and clicks by campaign, forms
    /// by id and offer stage.
    fn note_activity(&mut self, lead: usize, ev: &Event<'_>) {
        let sup = &mut self.sup;
        match ev.kind {
            EventType::PageView => {
                let seg = ev.url.as_deref().map(segment).unwrap_or("");
                sup.note("pv:*".into(), lead);
                sup.note(format!("pv:{seg}"), lead);
                if let Some(d) = ev.duration_s {
                    self.durations.entry(seg.to_string()).or_default().push(d);
                    self.durations.entry("*".into()).or_default().push(d);
                    *self.dwell_by_lead.entry(lead as u32).or_default() += d;
                }
            }
            EventType::EmailOpen => {
                sup.note("open:*".into(), lead);
                if let Some(c) = &ev.campaign_id {
                    sup.note(format!("open:{c}"), lead);
                }
            }
            EventType::Click => {
                sup.note("click:*".into(), lead);
                if let Some(c) = &ev.campaign_id {
                    sup.note(format!("click:{c}"), lead);
                }
            }
            EventType::FormConversion => {
                sup.note("form:*".into(), lead);
                if let Some(f) = &ev.form_id {
                    sup.note(format!("formid:{f}"), lead);
                }
                if let Some(st) = ev.offer_stage {
                    sup.note(format!("stage:{}", st.as_str()), lead);
                }
            }
        }
    }
}

/// Finds candidate rules in the history (bot activity and events at or after a lead's
/// conversion excluded, so the candidates themselves carry no leakage).
pub fn discover(
    events: &[Event<'_>],
    bot: &BotFilter,
    outcomes: &Outcomes,
    opt: &CandidateOptions,
) -> Vec<Candidate> {
    let mut obs = Observed::of(events, bot, outcomes, opt.engagement);
    let min = opt.min_support.max(1);
    let mut out = Vec::new();
    page_view_candidates(&mut obs, min, opt, &mut out);
    email_and_form_candidates(&obs.sup, min, opt, &mut out);
    profile_candidates(obs.profile, outcomes.ids.len(), min, opt, &mut out);
    out
}

/// A pattern that matches one URL path section exactly: the home page (empty segment), or a
/// segment that is a prefix of another one.
fn section_pattern(seg: &str, segs: &[(String, usize)]) -> Option<String> {
    let clash = segs
        .iter()
        .any(|(o, _)| o != seg && o != "*" && o.starts_with(seg));
    if seg.is_empty() {
        Some(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*)?/?(?:[?#].*)?$".to_string())
    } else if clash {
        Some(format!(
            r"^(?:[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*)?/{}(?:[/?#].*)?$",
            regex::escape(seg)
        ))
    } else {
        None
    }
}

/// Count bands of an engagement family: the first match, the 2nd–3rd, the 4th on — so "the
/// first view is worth a lot, later ones little" is learnable as points per band.
const COUNT_BANDS: [((u32, u32), &str); 3] =
    [((1, 1), "#1"), ((2, 3), "#2-3"), ((4, u32::MAX), "#4+")];

fn banded(name: &str, on: EventType, c: &Criteria, base: &Shape, out: &mut Vec<Candidate>) {
    for (band, label) in COUNT_BANDS {
        out.push(Candidate {
            name: format!("{name} {label}"),
            kind: Kind::Engagement(
                on,
                c.clone(),
                Shape {
                    band: Some(band),
                    ..base.clone()
                },
            ),
        });
    }
}

/// Quantile cut points (`parts` − 1 of them, distinct, positive) of a sample.
fn cut_points(values: &mut [f64], parts: usize) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    let mut cuts: Vec<f64> = (1..parts)
        .map(|i| values[(values.len() * i / parts).min(values.len() - 1)].round())
        .filter(|q| *q > 0.0)
        .collect();
    cuts.dedup();
    cuts
}

/// Page views: per section (any page, each first path segment) count bands and dwell bands at
/// the section's tertiles; for any page also points per second of the lead's total dwell in
/// bands at the quintiles of the leads' totals (a piecewise-linear shape of time on site) and
/// visits (count bands of visit starts; visits reaching 3 and 6 pages).
fn page_view_candidates(
    obs: &mut Observed,
    min: usize,
    opt: &CandidateOptions,
    out: &mut Vec<Candidate>,
) {
    let segs = obs.sup.top("pv:", min, opt.max_values + 1);
    for (seg, _) in &segs {
        let (name, section) = section_of(seg, &segs);
        banded(&name, EventType::PageView, &section, &Shape::default(), out);
        let cuts = obs
            .durations
            .get_mut(seg)
            .map(|v| cut_points(v, 3))
            .unwrap_or_default();
        dwell_per_view(&name, &section, &cuts, out);
    }
    if segs.is_empty() {
        return;
    }
    total_dwell(obs, min, out);
    visits(out);
}

/// The name and criteria of a page section (`*` = any page).
fn section_of(seg: &str, segs: &[(String, usize)]) -> (String, Criteria) {
    let any = Criteria::default;
    if seg == "*" {
        return ("page view".to_string(), any());
    }
    let c = match section_pattern(seg, segs) {
        Some(p) => Criteria {
            url_regex: Some(Regex::new(&p).expect("a valid pattern of ours")),
            ..any()
        },
        None => Criteria {
            url_path_prefix: Some(format!("/{seg}")),
            ..any()
        },
    };
    (format!("page /{seg}"), c)
}

/// Dwell bands of single page views: `[0, c1)`, `[c1, c2)`, …, `[ck, ∞)`.
fn dwell_per_view(name: &str, section: &Criteria, cuts: &[f64], out: &mut Vec<Candidate>) {
    let mut low = 0.0;
    for high in cuts.iter().copied().chain([f64::INFINITY]) {
        let c = Criteria {
            min_duration_s: Some(low),
            max_duration_s: high.is_finite().then_some(high),
            ..section.clone()
        };
        let bin = if high.is_finite() {
            format!("{low}-{high}s")
        } else {
            format!("{low}s+")
        };
        out.push(Candidate {
            name: format!("{name} dwell {bin}"),
            kind: Kind::Engagement(EventType::PageView, c, Shape::default()),
        });
        low = high;
    }
}

/// Points per second of the lead's total dwell, in bands at the quintiles of the totals.
fn total_dwell(obs: &Observed, min: usize, out: &mut Vec<Candidate>) {
    let mut totals: Vec<f64> = (obs.dwell_by_lead.values().copied())
        .filter(|t| *t > 0.0)
        .collect();
    if totals.len() < min {
        return;
    }
    let mut low = 0.0;
    for high in cut_points(&mut totals, 5)
        .into_iter()
        .chain([f64::INFINITY])
    {
        let shape = Shape {
            per_second: true,
            dwell_band: Some((low, high)),
            ..Shape::default()
        };
        let bin = if high.is_finite() {
            format!("{low}-{high}")
        } else {
            format!("{low}+")
        };
        out.push(Candidate {
            name: format!("dwell seconds {bin}"),
            kind: Kind::Engagement(EventType::PageView, Criteria::default(), shape),
        });
        low = high;
    }
}

/// Count bands of visit starts, and visits reaching 3 and 6 pages.
fn visits(out: &mut Vec<Candidate>) {
    let start = Shape {
        visit_page: Some(1),
        ..Shape::default()
    };
    banded(
        "visit",
        EventType::PageView,
        &Criteria::default(),
        &start,
        out,
    );
    for pages in [3, 6] {
        let shape = Shape {
            visit_page: Some(pages),
            ..Shape::default()
        };
        out.push(Candidate {
            name: format!("visit reaching {pages} pages"),
            kind: Kind::Engagement(EventType::PageView, Criteria::default(), shape),
        });
    }
}

/// Opens and clicks (any, per campaign), then forms (any, per form id, per offer stage).
fn email_and_form_candidates(
    sup: &Support,
    min: usize,
    opt: &CandidateOptions,
    out: &mut Vec<Candidate>,
) {
    let any = Criteria::default;
    let none = Shape::default;
    for (key, name, on) in [
        ("open:", "email open", EventType::EmailOpen),
        ("click:", "email click", EventType::Click),
    ] {
        for (c, _) in sup.top(key, min, opt.max_values + 1) {
            if c == "*" {
                banded(name, on, &any(), &none(), out);
            } else {
                let crit = Criteria {
                    campaign_id: Some(c.clone()),
                    ..any()
                };
                out.push(Candidate {
                    name: format!("{name} campaign={c}"),
                    kind: Kind::Engagement(on, crit, none()),
                });
            }
        }
    }
    let mut push = |name: String, kind: Kind| out.push(Candidate { name, kind });
    let form = |c: Criteria| Kind::Engagement(EventType::FormConversion, c, none());
    if sup.count("form:*") >= min {
        push("form".into(), form(any()));
    }
    for (f, _) in sup.top("formid:", min, opt.max_values) {
        let c = Criteria {
            form_id: Some(f.clone()),
            ..any()
        };
        push(format!("form {f}"), form(c));
    }
    for (st, _) in sup.top("stage:", min, 3) {
        let c = Criteria {
            offer_stage: OfferStage::parse(&st),
            ..any()
        };
        push(format!("form stage={st}"), form(c));
    }
}

/// Profile fields, by field name: "given" (when not every lead has it), then quantile
/// thresholds for numeric fields or the most frequent values for others.
fn profile_candidates(
    profile: HashMap<(u32, String), (i64, String)>,
    leads: usize,
    min: usize,
    opt: &CandidateOptions,
    out: &mut Vec<Candidate>,
) {
    let mut by_field: HashMap<String, Vec<String>> = HashMap::new();
    for ((_, field), (_, value)) in profile {
        by_field.entry(field).or_default().push(value);
    }
    let mut fields: Vec<(String, Vec<String>)> = by_field.into_iter().collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    for (field, values) in fields {
        let present = values.len();
        if present < min {
            continue;
        }
        if present < leads {
            out.push(Candidate {
                name: format!("{field} missing"),
                kind: Kind::Missing {
                    field: field.clone(),
                },
            });
        }
        let nums: Vec<f64> = values
            .iter()
            .filter_map(|v| v.parse::<f64>().ok().filter(|x| x.is_finite()))
            .collect();
        if nums.len() == present {
            numeric_bins(&field, nums, min, opt, out);
        } else {
            frequent_values(&field, &values, min, opt, out);
        }
    }
}

/// Half-open bins `[q_i, q_i+1)` between the quantiles of a numeric field (the lowest from
/// −∞, the highest to +∞), each with enough leads: one point value per bin, a shape function.
fn numeric_bins(
    field: &str,
    mut sorted: Vec<f64>,
    min: usize,
    opt: &CandidateOptions,
    out: &mut Vec<Candidate>,
) {
    sorted.sort_by(f64::total_cmp);
    let parts = opt.bins.max(2);
    let mut cuts: Vec<f64> = Vec::new();
    for b in 1..parts {
        let q = sorted[(sorted.len() * b / parts).min(sorted.len() - 1)];
        let below = sorted.partition_point(|&x| x < q);
        let since_last = cuts
            .last()
            .map_or(below, |&c| below - sorted.partition_point(|&x| x < c));
        if since_last >= min && sorted.len() - below >= min && cuts.last() != Some(&q) {
            cuts.push(q);
        }
    }
    let mut low = f64::NEG_INFINITY;
    for high in cuts.iter().copied().chain([f64::INFINITY]) {
        let text = |x: f64| {
            if x.is_finite() {
                crate::event::number_text(x)
            } else {
                "∞".into()
            }
        };
        out.push(Candidate {
            name: format!(
                "{field} in [{}, {})",
                text(low).replace('∞', "-∞"),
                text(high)
            ),
            kind: Kind::Bin {
                field: field.to_string(),
                low,
                high,
            },
        });
        low = high;
    }
}

/// "field = value" for the most frequent values of a text field; none for an identifier
/// (mostly distinct values, e.g. email), which says nothing about a new lead.
fn frequent_values(
    field: &str,
    values: &[String],
    min: usize,
    opt: &CandidateOptions,
    out: &mut Vec<Candidate>,
) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for v in values {
        *counts.entry(v.to_lowercase()).or_default() += 1;
    }
    if counts.len() > opt.max_values && counts.len() * 2 > values.len() {
        return;
    }
    let mut top: Vec<(String, usize)> = counts.into_iter().filter(|(_, n)| *n >= min).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(opt.max_values);
    for (value, _) in top {
        out.push(Candidate {
            name: format!("{field} = {value}"),
            kind: Kind::Equals {
                field: field.to_string(),
                value,
            },
        });
    }
}

/// Runs the engine over the history; state per lead with outcome (events at or after a lead's
/// `converted_at`, and events of leads without outcome, are left out). Returns the states and
/// the number of events left out because their lead has no outcome.
pub fn run_engine(
    rules: &Rules,
    events: &[Event<'_>],
    outcomes: &Outcomes,
) -> (Vec<LeadState>, usize) {
    let engine = Engine::new(std::sync::Arc::new(rules.clone()));
    let mut states = vec![LeadState::new(); outcomes.ids.len()];
    let mut orphans = 0;
    for ev in events {
        match lead_of(outcomes, ev) {
            None => orphans += 1,
            Some((i, true)) => {
                engine.apply(&mut states[i], ev);
            }
            Some((_, false)) => {}
        }
    }
    (states, orphans)
}

/// Feature rows: engagement rule `i` → column `i`, fit rule `j` → column `E + j`.
pub fn feature_rows(rules: &Rules, states: &[LeadState]) -> Vec<Row> {
    let e = rules.engagement.len();
    states
        .iter()
        .map(|st| {
            let mut row: Row = st
                .accumulators()
                .iter()
                .filter(|a| a.value != 0.0)
                .map(|a| (a.rule as u32, a.value))
                .collect();
            // A lead without a scored event has no score at all (fit included), as in replay.
            let fit_rules = if st.clock().is_some() {
                &rules.fit[..]
            } else {
                &[]
            };
            for (j, r) in fit_rules.iter().enumerate() {
                if r.condition.holds_on(st.profile_value(&r.field)) {
                    row.push(((e + j) as u32, 1.0));
                }
            }
            row.sort_by_key(|&(j, _)| j);
            row
        })
        .collect()
}

/// Parses generated rules text (a bug here is ours, not the user's: say so).
pub fn compile(text: &str, what: &str) -> Result<Rules> {
    Rules::parse(Path::new(what), text.as_bytes())
        .map_err(|e| anyhow!("internal error: generated rules do not load: {e}\n{text}"))
}
