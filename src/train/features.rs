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
use crate::rules::{url_path, BotFilter, Rules};
use crate::state::LeadState;

use super::data::Outcomes;
use super::logistic::Row;

/// What a candidate rule matches.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// An engagement rule.
    Engagement {
        /// Event type.
        on: EventType,
        /// `url_path_prefix`.
        prefix: Option<String>,
        /// `url_regex`.
        regex: Option<String>,
        /// `campaign_id`.
        campaign: Option<String>,
        /// `form_id`.
        form: Option<String>,
        /// `offer_stage`.
        stage: Option<OfferStage>,
        /// `min_duration_s`.
        min_duration: Option<f64>,
    },
    /// A fit rule `equals`.
    Equals {
        /// Profile field.
        field: String,
        /// Value (lower case).
        value: String,
    },
    /// A fit rule `range = [at_least, inf]`.
    AtLeast {
        /// Profile field.
        field: String,
        /// Lower bound.
        value: f64,
    },
    /// A fit rule `exists = true`.
    Exists {
        /// Profile field.
        field: String,
    },
}

/// A candidate rule and how many leads it touches.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Readable, unique name (the rule name in the output).
    pub name: String,
    /// What it matches.
    pub kind: Kind,
    /// Leads (with outcomes) it touches.
    pub support: usize,
}

impl Candidate {
    /// Is this an engagement candidate (decays; gets a half-life)?
    pub fn is_engagement(&self) -> bool {
        matches!(self.kind, Kind::Engagement { .. })
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
    let mut t = String::new();
    match kind {
        Kind::Engagement {
            on,
            prefix,
            regex,
            campaign,
            form,
            stage,
            min_duration,
        } => {
            let _ = writeln!(t, "[[engagement]]\nname = {}", quote(name));
            let _ = writeln!(t, "on = \"{}\"", on.as_str());
            if let Some(p) = prefix {
                let _ = writeln!(t, "url_path_prefix = {}", quote(p));
            }
            if let Some(r) = regex {
                let _ = writeln!(t, "url_regex = {}", quote(r));
            }
            if let Some(c) = campaign {
                let _ = writeln!(t, "campaign_id = {}", quote(c));
            }
            if let Some(f) = form {
                let _ = writeln!(t, "form_id = {}", quote(f));
            }
            if let Some(s) = stage {
                let _ = writeln!(t, "offer_stage = \"{}\"", s.as_str());
            }
            if let Some(d) = min_duration {
                let _ = writeln!(t, "min_duration_s = {}", toml_number(*d));
            }
            let _ = writeln!(t, "points = {}", toml_number(points));
            if let Some(h) = half_life {
                let _ = writeln!(t, "half_life = {}", quote(h));
            }
            if let Some(m) = max_per_day {
                let _ = writeln!(t, "max_per_day = {m}");
            }
        }
        Kind::Equals { field, value } => {
            let _ = writeln!(
                t,
                "[[fit]]\nname = {}\nfield = {}\nequals = {}\npoints = {}",
                quote(name),
                quote(field),
                quote(value),
                toml_number(points)
            );
        }
        Kind::AtLeast { field, value } => {
            let _ = writeln!(
                t,
                "[[fit]]\nname = {}\nfield = {}\nrange = [{}, inf]\npoints = {}",
                quote(name),
                quote(field),
                toml_number(*value),
                toml_number(points)
            );
        }
        Kind::Exists { field } => {
            let _ = writeln!(
                t,
                "[[fit]]\nname = {}\nfield = {}\nexists = true\npoints = {}",
                quote(name),
                quote(field),
                toml_number(points)
            );
        }
    }
    t
}

/// Is `ev` usable for lead `idx`: a known lead, and strictly before its conversion?
fn cutoff_ok(outcomes: &Outcomes, ev: &Event<'_>) -> Option<usize> {
    let i = *outcomes.index.get(ev.lead_id.as_ref())?;
    match outcomes.outcomes[i].converted_at {
        Some(at) if ev.ts >= at => None,
        _ => Some(i),
    }
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

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// First path segment of a URL (`/blog/x` → `blog`, `/` → ``).
fn segment(url: &str) -> &str {
    let path = url_path(url);
    let p = path.trim_start_matches('/');
    p.split('/').next().unwrap_or("")
}

/// Finds candidate rules in the history (bot activity and events at or after a lead's
/// conversion excluded, so the candidates themselves carry no leakage).
pub fn discover(
    events: &[Event<'_>],
    bot: &BotFilter,
    outcomes: &Outcomes,
    opt: &CandidateOptions,
) -> Vec<Candidate> {
    let mut sup = Support::default();
    let mut durations: HashMap<String, Vec<f64>> = HashMap::new();
    // Latest profile value per (lead, field): (ts, value).
    let mut profile: HashMap<(u32, String), (i64, String)> = HashMap::new();
    for ev in events {
        let Some(lead) = cutoff_ok(outcomes, ev) else {
            continue;
        };
        if bot.is_bot(ev) {
            continue;
        }
        if !opt.engagement {
            for (k, v) in &ev.fields {
                let text = v.as_text().trim().to_string();
                if !text.is_empty() {
                    let e = profile
                        .entry((lead as u32, k.to_string()))
                        .or_insert((i64::MIN, String::new()));
                    if ev.ts >= e.0 {
                        *e = (ev.ts, text);
                    }
                }
            }
            continue;
        }
        match ev.kind {
            EventType::PageView => {
                let seg = ev.url.as_deref().map(segment).unwrap_or("");
                sup.note("pv:*".into(), lead);
                sup.note(format!("pv:{seg}"), lead);
                if let Some(d) = ev.duration_s {
                    durations.entry(seg.to_string()).or_default().push(d);
                    durations.entry("*".into()).or_default().push(d);
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
                if let Some(s) = ev.offer_stage {
                    sup.note(format!("stage:{}", s.as_str()), lead);
                }
                for (k, v) in &ev.fields {
                    let text = v.as_text().trim().to_string();
                    if text.is_empty() {
                        continue;
                    }
                    let mut put = |field: String, value: String| {
                        let e = profile
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
        }
    }
    let min = opt.min_support.max(1);
    let mut out = Vec::new();
    let eng = |on: EventType| Kind::Engagement {
        on,
        prefix: None,
        regex: None,
        campaign: None,
        form: None,
        stage: None,
        min_duration: None,
    };

    // Page views: any page, each first path segment, and "read" (dwell ≥ the median).
    let segs = sup.top("pv:", min, opt.max_values + 1);
    for (seg, n) in &segs {
        if seg == "*" {
            out.push(Candidate {
                name: "page view".into(),
                kind: eng(EventType::PageView),
                support: *n,
            });
            continue;
        }
        let clash = segs
            .iter()
            .any(|(o, _)| o != seg && o != "*" && o.starts_with(seg.as_str()));
        let (prefix, regex) = if seg.is_empty() {
            (
                None,
                Some(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*)?/?(?:[?#].*)?$".to_string()),
            )
        } else if clash {
            (
                None,
                Some(format!(
                    r"^(?:[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*)?/{}(?:[/?#].*)?$",
                    regex::escape(seg)
                )),
            )
        } else {
            (Some(format!("/{seg}")), None)
        };
        let name = format!("page /{seg}");
        out.push(Candidate {
            name: name.clone(),
            kind: Kind::Engagement {
                on: EventType::PageView,
                prefix: prefix.clone(),
                regex: regex.clone(),
                campaign: None,
                form: None,
                stage: None,
                min_duration: None,
            },
            support: *n,
        });
    }
    for (seg, _) in &segs {
        let Some(d) = durations.get_mut(seg).and_then(|v| median(v)) else {
            continue;
        };
        let d = d.round();
        if d <= 0.0 {
            continue;
        }
        let base = if seg == "*" {
            "page view".to_string()
        } else {
            format!("page /{seg}")
        };
        let Some(parent) = out.iter().find(|c| c.name == base).cloned() else {
            continue;
        };
        let Kind::Engagement { prefix, regex, .. } = parent.kind else {
            continue;
        };
        out.push(Candidate {
            name: format!("{base} ≥{d}s"),
            kind: Kind::Engagement {
                on: EventType::PageView,
                prefix,
                regex,
                campaign: None,
                form: None,
                stage: None,
                min_duration: Some(d),
            },
            support: parent.support / 2,
        });
    }
    for (key, name, on) in [
        ("open:", "email open", EventType::EmailOpen),
        ("click:", "email click", EventType::Click),
    ] {
        for (c, n) in sup.top(key, min, opt.max_values + 1) {
            let (name, campaign) = if c == "*" {
                (name.to_string(), None)
            } else {
                (format!("{name} campaign={c}"), Some(c))
            };
            out.push(Candidate {
                name,
                kind: Kind::Engagement {
                    on,
                    prefix: None,
                    regex: None,
                    campaign,
                    form: None,
                    stage: None,
                    min_duration: None,
                },
                support: n,
            });
        }
    }
    if sup.count("form:*") >= min {
        out.push(Candidate {
            name: "form".into(),
            kind: eng(EventType::FormConversion),
            support: sup.count("form:*"),
        });
    }
    for (f, n) in sup.top("formid:", min, opt.max_values) {
        out.push(Candidate {
            name: format!("form {f}"),
            kind: Kind::Engagement {
                on: EventType::FormConversion,
                prefix: None,
                regex: None,
                campaign: None,
                form: Some(f),
                stage: None,
                min_duration: None,
            },
            support: n,
        });
    }
    for (s, n) in sup.top("stage:", min, 3) {
        out.push(Candidate {
            name: format!("form stage={s}"),
            kind: Kind::Engagement {
                on: EventType::FormConversion,
                prefix: None,
                regex: None,
                campaign: None,
                form: None,
                stage: OfferStage::parse(&s),
                min_duration: None,
            },
            support: n,
        });
    }

    // Profile fields.
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
        if present < outcomes.ids.len() {
            out.push(Candidate {
                name: format!("{field} given"),
                kind: Kind::Exists {
                    field: field.clone(),
                },
                support: present,
            });
        }
        let nums: Vec<f64> = values
            .iter()
            .filter_map(|v| v.parse::<f64>().ok().filter(|x| x.is_finite()))
            .collect();
        if nums.len() == present {
            let mut sorted = nums;
            sorted.sort_by(f64::total_cmp);
            let mut last = sorted[0];
            for b in 1..opt.bins.max(2) {
                let q = sorted[(sorted.len() * b / opt.bins.max(2)).min(sorted.len() - 1)];
                if q <= last {
                    continue;
                }
                let n = sorted.len() - sorted.partition_point(|&x| x < q);
                if n < min || sorted.len() - n < min {
                    continue;
                }
                last = q;
                out.push(Candidate {
                    name: format!("{field} ≥ {}", crate::event::number_text(q)),
                    kind: Kind::AtLeast {
                        field: field.clone(),
                        value: q,
                    },
                    support: n,
                });
            }
            continue;
        }
        let mut counts: HashMap<String, usize> = HashMap::new();
        for v in &values {
            *counts.entry(v.to_lowercase()).or_default() += 1;
        }
        // An identifier (mostly distinct values, e.g. email) says nothing about a new lead.
        if counts.len() > opt.max_values && counts.len() * 2 > present {
            continue;
        }
        let mut top: Vec<(String, usize)> = counts.into_iter().filter(|(_, n)| *n >= min).collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        top.truncate(opt.max_values);
        for (value, n) in top {
            out.push(Candidate {
                name: format!("{field} = {value}"),
                kind: Kind::Equals {
                    field: field.clone(),
                    value,
                },
                support: n,
            });
        }
    }
    out
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
        match outcomes.index.get(ev.lead_id.as_ref()) {
            None => orphans += 1,
            Some(_) => {
                if let Some(i) = cutoff_ok(outcomes, ev) {
                    engine.apply(&mut states[i], ev);
                }
            }
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
            for (j, r) in rules.fit.iter().enumerate() {
                if st
                    .profile_value(&r.field)
                    .is_some_and(|v| r.condition.holds(v))
                {
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
    Rules::from_bytes(Path::new(what), text.as_bytes())
        .map_err(|e| anyhow!("internal error: generated rules do not load: {e}\n{text}"))
}
