//! What a variant's alerts were worth (docs/TUNING.md defines each figure): volume, precision,
//! recall, lead time and re-MQLs inside the evaluation window.

use serde::Serialize;

use super::{Pass, Variant};
use crate::time::Micros;
use crate::train::data::Outcomes;

const DAY: Micros = 86_400_000_000;
const WEEK: Micros = 7 * DAY;

/// The evaluation window `[from, to)`: alerts outside it are not counted, nor conversions
/// outside `[from, to)` (without `to`: every conversion from `from` on, so the lead time of a
/// late alert is seen); events before `from` still warm the state up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// Start (default: the earliest event).
    pub from: Option<Micros>,
    /// End, exclusive (default: just after the latest event).
    pub to: Option<Micros>,
}

impl Window {
    /// The window with defaults filled from the history's span.
    fn resolve(&self, span: Option<(Micros, Micros)>) -> (Micros, Micros) {
        let (first, last) = span.unwrap_or((0, 0));
        (self.from.unwrap_or(first), self.to.unwrap_or(last + 1))
    }
}

/// Operating targets that mark a threshold of a sweep.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Targets {
    /// Mark the lowest threshold with at most this many alerts per week.
    pub alerts_per_week: Option<f64>,
    /// Mark the lowest threshold with at least this precision.
    pub precision: Option<f64>,
}

/// The figures of one variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantResult {
    /// `label` or `label@threshold`.
    pub name: String,
    /// The rules file's label.
    pub rules: String,
    /// Its `sales_ready` threshold.
    pub threshold: f64,
    /// Its `rearm_below`.
    pub rearm_below: f64,
    /// Alerts in the window.
    pub alerts: u64,
    /// Alerts per 7 days of the window.
    pub alerts_per_week: f64,
    /// Alerts in each 7-day bucket from the window's start (the last may be partial).
    pub weekly: Vec<u64>,
    /// Distinct leads alerted in the window.
    pub alerted_leads: u64,
    /// Alerted leads that converted, not before their first alert in the window.
    pub converted_alerted: u64,
    /// `converted_alerted / alerted_leads`.
    pub precision: Option<f64>,
    /// Converters in the window (conversion time inside it, or unknown).
    pub converters: u64,
    /// Converters alerted in the window at or before their conversion.
    pub converters_alerted: u64,
    /// `converters_alerted / converters`.
    pub recall: Option<f64>,
    /// Median days from the first alert to the conversion (converters alerted in time, with a
    /// known conversion time).
    pub lead_time_median_days: Option<f64>,
    /// 90th percentile of the same.
    pub lead_time_p90_days: Option<f64>,
    /// Alerts with sequence ≥ 2: the lead had qualified before (in the window or the warm-up).
    pub re_mqls: u64,
    /// `alerts_per_week / reps`, when `--reps` is given.
    pub alerts_per_rep_per_week: Option<f64>,
    /// Which targets this variant is the pick for (`alerts_per_week`, `precision`).
    pub meets: Vec<&'static str>,
}

/// The figures of every variant of a pass.
pub fn evaluate(
    pass: &Pass,
    variants: &[Variant],
    labels: &[String],
    outcomes: &Outcomes,
    window: Window,
    reps: Option<u32>,
) -> Vec<VariantResult> {
    let (from, to) = window.resolve(pass.span);
    let conversions = from..window.to.unwrap_or(Micros::MAX);
    // Per lead ordinal: its outcome, when the outcomes name it.
    let outcome_of: Vec<Option<(bool, Option<Micros>)>> = pass
        .lead_ids
        .iter()
        .map(|id| {
            let i = *outcomes.index.get(&**id)?;
            let o = outcomes.outcomes[i];
            Some((o.converted, o.converted_at))
        })
        .collect();
    let converters = outcomes
        .outcomes
        .iter()
        .filter(|o| o.converted && o.converted_at.is_none_or(|t| conversions.contains(&t)))
        .count() as u64;
    variants
        .iter()
        .zip(&pass.alerts)
        .map(|(v, alerts)| {
            let mut r = one(alerts, &outcome_of, (from, to), &conversions, converters);
            r.name = v.name.clone();
            r.rules = labels[v.file].clone();
            r.threshold = v.gate.sales_ready;
            r.rearm_below = v.gate.rearm_below;
            r.alerts_per_rep_per_week = reps.map(|n| r.alerts_per_week / n.max(1) as f64);
            r
        })
        .collect()
}

/// The figures of one variant's alerts (name and gate filled in by the caller).
fn one(
    alerts: &[super::Alert],
    outcome_of: &[Option<(bool, Option<Micros>)>],
    (from, to): (Micros, Micros),
    conversions: &std::ops::Range<Micros>,
    converters: u64,
) -> VariantResult {
    let weeks = ((to - from) as f64 / WEEK as f64).max(1.0 / 7.0);
    let mut weekly = vec![0u64; ((to - from).max(1) as u64).div_ceil(WEEK as u64) as usize];
    let mut first: std::collections::HashMap<u32, Micros> = Default::default();
    let (mut n, mut re_mqls) = (0u64, 0u64);
    for a in alerts.iter().filter(|a| (from..to).contains(&a.at)) {
        n += 1;
        weekly[((a.at - from) / WEEK) as usize] += 1;
        re_mqls += (a.sequence >= 2) as u64;
        let f = first.entry(a.lead).or_insert(a.at);
        *f = (*f).min(a.at);
    }
    let (mut hits, mut in_time) = (0u64, 0u64);
    let mut lead_days = Vec::new();
    for (&lead, &alerted_at) in &first {
        let Some((true, converted_at)) = outcome_of[lead as usize] else {
            continue;
        };
        if converted_at.is_none_or(|t| t >= alerted_at) {
            hits += 1;
        }
        let converter_here = converted_at.is_none_or(|t| conversions.contains(&t));
        if converter_here && converted_at.is_none_or(|t| t >= alerted_at) {
            in_time += 1;
            if let Some(t) = converted_at {
                lead_days.push((t - alerted_at) as f64 / DAY as f64);
            }
        }
    }
    lead_days.sort_by(f64::total_cmp);
    let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
    VariantResult {
        name: String::new(),
        rules: String::new(),
        threshold: 0.0,
        rearm_below: 0.0,
        alerts: n,
        alerts_per_week: n as f64 / weeks,
        weekly,
        alerted_leads: first.len() as u64,
        converted_alerted: hits,
        precision: ratio(hits, first.len() as u64),
        converters,
        converters_alerted: in_time,
        recall: ratio(in_time, converters),
        lead_time_median_days: quantile(&lead_days, 0.5),
        lead_time_p90_days: quantile(&lead_days, 0.9),
        re_mqls,
        alerts_per_rep_per_week: None,
        meets: Vec::new(),
    }
}

/// The `q` quantile of sorted values (linear interpolation), `None` when empty.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let pos = q * last as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

/// Marks, per rules file, the lowest threshold that meets each target.
pub fn mark_targets(results: &mut [VariantResult], targets: Targets) {
    let files: Vec<String> = {
        let mut f: Vec<String> = results.iter().map(|r| r.rules.clone()).collect();
        f.dedup();
        f
    };
    for file in files {
        let mut pick = |name: &'static str, ok: &dyn Fn(&VariantResult) -> bool| {
            let best = (results.iter_mut())
                .filter(|r| r.rules == file && ok(r))
                .min_by(|a, b| a.threshold.total_cmp(&b.threshold));
            if let Some(r) = best {
                r.meets.push(name);
            }
        };
        if let Some(max) = targets.alerts_per_week {
            pick("alerts_per_week", &|r| r.alerts_per_week <= max);
        }
        if let Some(min) = targets.precision {
            pick("precision", &|r| r.precision.is_some_and(|p| p >= min));
        }
    }
}
