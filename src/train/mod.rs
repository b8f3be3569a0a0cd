//! `leadscore train`: learns the points of a rules file from who became a customer.
//!
//! 1. Inputs: an NDJSON history + outcomes CSV, or a flat lead table (rows → profile fields).
//! 2. Candidates: rules found in the data ([`features::discover`]); each engagement candidate
//!    in every half-life of the grid.
//! 3. Features: the engine itself runs the candidate rules (points 1) over the history, cut just
//!    before each converter's `converted_at`.
//! 4. Split: stratified holdout; half-life per engagement candidate and the L2 penalty chosen by
//!    k-fold cross-validation on the training part only.
//! 5. Model: logistic regression ([`logistic`]); points = coefficient × scale, so that
//!    `intercept + score / scale` is the log-odds of converting.
//! 6. The written rules are loaded back and run through the engine for every number reported,
//!    so the report describes exactly what `replay` and the service will compute.

pub mod data;
pub mod features;
pub mod logistic;
pub mod metrics;
pub mod plot;
mod steps;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use crate::numeric::sigmoid;
use data::{ColumnMapping, TableSpec};

/// Where the threshold goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Qualify at this conversion probability.
    Probability(f64),
    /// Qualify this share of (training) leads.
    Rate(f64),
}

/// Training data source.
#[derive(Debug, Clone)]
pub enum Source {
    /// NDJSON events + outcomes CSV.
    History {
        /// Events file.
        events: PathBuf,
        /// Outcomes CSV.
        outcomes: PathBuf,
    },
    /// A flat lead table.
    Table(TableSpec),
}

/// Everything `leadscore train` needs.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The data.
    pub source: Source,
    /// Base rules: threshold comparison, bot filter and decay default.
    pub base: Option<PathBuf>,
    /// Where the threshold goes.
    pub target: Target,
    /// Share of leads held out for the report.
    pub holdout: f64,
    /// Cross-validation folds.
    pub folds: usize,
    /// Seed of the split and the bootstrap.
    pub seed: u64,
    /// Half-life grid (humantime or `never`).
    pub half_lives: Vec<String>,
    /// Penalty grid.
    pub lambdas: Vec<f64>,
    /// Candidate selection.
    pub candidates: features::CandidateOptions,
    /// Cap per engagement rule per lead per UTC day.
    pub max_per_day: Option<u32>,
    /// Most rules in the learned file (0: no limit).
    pub max_rules: usize,
    /// Points that double the odds of converting (sets the scale).
    pub points_to_double: f64,
    /// `name` of the output rules.
    pub name: String,
    /// Bootstrap resamples for the AUC interval.
    pub bootstrap: usize,
}

/// How one scorer did on the holdout.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Which scorer.
    pub scorer: String,
    /// Holdout leads.
    pub leads: usize,
    /// ROC AUC.
    pub roc_auc: f64,
    /// 95% bootstrap interval of the AUC.
    pub roc_auc_ci95: [f64; 2],
    /// Mean log-loss (only with probabilities).
    pub log_loss: Option<f64>,
    /// The sales_ready threshold (points).
    pub threshold: f64,
    /// Holdout leads at or above the threshold.
    pub flagged: usize,
    /// Converters among the flagged.
    pub precision: f64,
    /// Flagged among the converters.
    pub recall: f64,
    /// Conversion rate of the top 10% over the overall rate.
    pub lift_top_decile: f64,
    /// Calibration (only with probabilities).
    pub calibration: Option<Vec<metrics::CalibrationBin>>,
    /// ROC curve (false positive rate, true positive rate).
    pub roc_curve: Vec<(f64, f64)>,
}

/// One learned rule.
#[derive(Debug, Clone, Serialize)]
pub struct LearnedRule {
    /// Rule name.
    pub rule: String,
    /// Points.
    pub points: f64,
    /// Half-life (engagement rules).
    pub half_life: Option<String>,
    /// Leads it touches (all data).
    pub support: usize,
}

/// One feature's shape function: the rules of one family (count bands, dwell bands, numeric
/// bins, visits), bin by bin.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureShape {
    /// The family, e.g. `page /pricing` or `dwell seconds`.
    pub feature: String,
    /// (bin, points), in bin order.
    pub bins: Vec<(String, f64)>,
}

/// The family and bin of a learned rule's name, when it is one bin of a shape.
fn family_of(name: &str) -> Option<(String, String)> {
    if let Some(rest) = name.strip_prefix("dwell seconds ") {
        return Some((
            "dwell seconds (per second of total dwell)".into(),
            rest.into(),
        ));
    }
    if let Some((field, bin)) = name.split_once(" in [") {
        return Some((field.into(), format!("[{bin}")));
    }
    if let Some((head, bin)) = name.rsplit_once(" dwell ") {
        return Some((format!("{head} (by dwell per view)"), bin.into()));
    }
    let (head, last) = name.rsplit_once(' ')?;
    last.starts_with('#')
        .then(|| (format!("{head} (by count)"), last.to_string()))
}

/// The first number of a bin label (`#2-3` → 2, `[-∞, 5)` → −∞, `300-700` → 300).
fn bin_start(bin: &str) -> f64 {
    let b = bin.trim_start_matches(['#', '[']);
    if b.starts_with("-∞") {
        return f64::NEG_INFINITY;
    }
    let n: String = b
        .char_indices()
        .take_while(|&(i, c)| c.is_ascii_digit() || c == '.' || (i == 0 && c == '-'))
        .map(|(_, c)| c)
        .collect();
    n.parse().unwrap_or(f64::MAX)
}

/// Groups the learned rules into shapes (families with at least two bins), bins ordered by
/// their first number.
pub fn shapes_of(rules: &[LearnedRule]) -> Vec<FeatureShape> {
    let mut families: Vec<FeatureShape> = Vec::new();
    for r in rules {
        let Some((feature, bin)) = family_of(&r.rule) else {
            continue;
        };
        match families.iter_mut().find(|f| f.feature == feature) {
            Some(f) => f.bins.push((bin, r.points)),
            None => families.push(FeatureShape {
                feature,
                bins: vec![(bin, r.points)],
            }),
        }
    }
    for f in &mut families {
        f.bins
            .sort_by(|a, b| bin_start(&a.0).total_cmp(&bin_start(&b.0)));
    }
    families.retain(|f| f.bins.len() >= 2);
    families.sort_by(|a, b| a.feature.cmp(&b.feature));
    families
}

/// Half-life choice of one engagement candidate.
#[derive(Debug, Clone, Serialize)]
pub struct HalfLifeChoice {
    /// Candidate.
    pub rule: String,
    /// Chosen half-life.
    pub chosen: String,
    /// Cross-validated log-loss per grid entry.
    pub cv_log_loss: Vec<(String, f64)>,
}

/// The training report (printed, and written as JSON with `--report`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Data source description.
    pub source: String,
    /// Leads with an outcome.
    pub leads: usize,
    /// Converted leads.
    pub converted: usize,
    /// Valid events read.
    pub events: usize,
    /// Lines that were not valid events.
    pub invalid_lines: usize,
    /// Events of leads without an outcome (left out).
    pub events_without_outcome: usize,
    /// Table columns → profile fields (table input).
    pub columns: Vec<ColumnMapping>,
    /// Training leads.
    pub train_leads: usize,
    /// Holdout leads.
    pub holdout_leads: usize,
    /// Converted holdout leads.
    pub holdout_converted: usize,
    /// Candidate rules found.
    pub candidates: usize,
    /// Rules in the output.
    pub rules_learned: usize,
    /// Half-life choices.
    pub half_lives: Vec<HalfLifeChoice>,
    /// Penalty grid with cross-validated log-loss.
    pub regularization: Vec<(f64, f64)>,
    /// Chosen penalty.
    pub lambda: f64,
    /// Model intercept.
    pub intercept: f64,
    /// Model scale (points per unit of log-odds).
    pub scale: f64,
    /// Threshold and how it was set.
    pub threshold: f64,
    /// `probability 0.5` or `rate 0.05`.
    pub target: String,
    /// Share of training leads at or above the threshold.
    pub train_flagged_rate: f64,
    /// The learned model on the holdout.
    pub model: Evaluation,
    /// The base rules on the holdout.
    pub base: Option<Evaluation>,
    /// The rules, largest |points| first.
    pub rules: Vec<LearnedRule>,
    /// The shape of each banded feature: its bins in order with their points.
    pub shapes: Vec<FeatureShape>,
    /// Things the user should know.
    pub warnings: Vec<String>,
    /// Wall time.
    pub seconds: f64,
}

/// The output of training.
pub struct Trained {
    /// The rules file text.
    pub rules_text: String,
    /// The report.
    pub report: Report,
    /// Per lead: (lead_id, in holdout, converted, score, probability).
    pub predictions: Vec<(String, bool, bool, f64, f64)>,
}

const DEFAULT_BOT_FILTER: &str = "[bot_filter]\nmin_seconds_after_send = 2\nuser_agent_contains = [\"GoogleImageProxy\", \"Mimecast\", \"Barracuda\", \"Proofpoint\"]\n";

fn progress(t0: Instant, msg: impl AsRef<str>) {
    eprintln!("[{:>6.1}s] {}", t0.elapsed().as_secs_f64(), msg.as_ref());
}

/// `[decay]` and `[bot_filter]` of the base rules, verbatim (defaults without base rules).
fn kept_tables(base_text: Option<&str>) -> Result<String> {
    let mut out = String::new();
    let table = match base_text {
        Some(t) => Some(t.parse::<toml::Table>()?),
        None => None,
    };
    for key in ["decay", "bot_filter"] {
        match table.as_ref().and_then(|t| t.get(key)) {
            Some(v) => {
                let mut wrap = toml::Table::new();
                wrap.insert(key.to_string(), v.clone());
                out.push_str(&toml::to_string(&wrap)?);
                out.push('\n');
            }
            None if key == "bot_filter" => out.push_str(DEFAULT_BOT_FILTER),
            None => out.push_str("[decay]\nhalf_life = \"30d\"\n"),
        }
    }
    Ok(out)
}

/// The value that the top `share` of `values` reach (the k-th largest, k = share × n rounded,
/// at least 1).
fn cutoff_for_share(mut values: Vec<f64>, share: f64) -> f64 {
    values.sort_by(|a, b| b.total_cmp(a));
    let k = ((share * values.len() as f64).round() as usize).clamp(1, values.len());
    values[k - 1]
}

/// Cross-validated log-loss of a one-feature logistic model `(b, w)` on a dense column (small
/// ridge for stability). Not [`logistic::fit`]: the half-life screening runs it for every
/// candidate × half-life × fold, and a closed-form 2×2 Newton step on a dense column avoids
/// building sparse rows for each.
fn cv_1d(x: &[f64], y: &[bool], folds: &[usize], k: usize) -> f64 {
    let mut total = 0.0;
    for f in 0..k {
        let pos = y.iter().zip(folds).filter(|(&v, &fo)| v && fo != f).count() as f64;
        let n = folds.iter().filter(|&&fo| fo != f).count() as f64;
        let rate = ((pos + 0.5) / (n + 1.0)).clamp(1e-9, 1.0 - 1e-9);
        // Start at b = 0, or at the base log-odds when converters are the majority.
        let (mut b, mut w) = ((rate / (1.0 - rate)).ln().max(0.0), 0.0f64);
        for _ in 0..25 {
            let (mut gb, mut gw, mut hbb, mut hbw, mut hww) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for ((&xi, &yi), &fo) in x.iter().zip(y).zip(folds) {
                if fo == f {
                    continue;
                }
                let p = sigmoid(b + w * xi);
                let r = p - yi as u8 as f64;
                let v = (p * (1.0 - p)).max(1e-12);
                gb += r;
                gw += r * xi;
                hbb += v;
                hbw += v * xi;
                hww += v * xi * xi;
            }
            gw += 1e-3 * w;
            hww += 1e-3;
            let det = hbb * hww - hbw * hbw;
            if det.abs() < 1e-300 {
                break;
            }
            let db = (hww * gb - hbw * gw) / det;
            let dw = (hbb * gw - hbw * gb) / det;
            b -= db;
            w -= dw;
            if db.abs().max(dw.abs()) < 1e-9 {
                break;
            }
        }
        for ((&xi, &yi), &fo) in x.iter().zip(y).zip(folds) {
            if fo != f {
                continue;
            }
            let p = sigmoid(b + w * xi).clamp(1e-15, 1.0 - 1e-15);
            total -= if yi { p.ln() } else { (1.0 - p).ln() };
        }
    }
    total / y.len().max(1) as f64
}

/// One scorer's view of the holdout.
struct Scored {
    scores: Vec<f64>,
    /// Passes the scorer's `min_fit` gate.
    gate: Vec<bool>,
    probs: Option<Vec<f64>>,
}

fn evaluate(
    scorer: &str,
    sc: &Scored,
    y: &[bool],
    threshold: f64,
    opt: &TrainOptions,
) -> Evaluation {
    let (scores, gate, probs) = (&sc.scores, &sc.gate, sc.probs.as_deref());
    let (bootstrap, seed) = (opt.bootstrap, opt.seed);
    let auc = metrics::roc_auc(scores, y);
    let (lo, hi) = metrics::auc_interval(scores, y, bootstrap, seed);
    let flag_scores: Vec<f64> = scores
        .iter()
        .zip(gate)
        .map(|(&s, &ok)| if ok { s } else { f64::NEG_INFINITY })
        .collect();
    let (precision, recall, flagged) = metrics::precision_recall(&flag_scores, y, threshold);
    Evaluation {
        scorer: scorer.to_string(),
        leads: y.len(),
        roc_auc: auc,
        roc_auc_ci95: [lo, hi],
        log_loss: probs.map(|p| metrics::log_loss(p, y)),
        threshold,
        flagged,
        precision,
        recall,
        lift_top_decile: metrics::top_decile_lift(scores, y),
        calibration: probs.map(|p| metrics::calibration(p, y)),
        roc_curve: metrics::roc_curve(scores, y),
    }
}

/// Trains; progress on stderr. Each phase is a function of [`steps`].
pub fn train(opt: &TrainOptions) -> Result<Trained> {
    let t0 = Instant::now();
    let mut warnings = Vec::new();
    // 1. Inputs.
    let history = steps::read_history(opt, t0)?;
    let input = steps::read_input(opt, history.as_ref(), t0, &mut warnings)?;
    steps::check_classes(&input, t0, &mut warnings)?;
    let base = steps::read_base(opt)?;
    // 2. Candidates, and the candidate rules laid out as feature columns.
    let cands = steps::discover_candidates(opt, &input, &base)?;
    let layout = steps::candidate_columns(opt, &cands, &base.kept)?;
    progress(t0, layout.summary(cands.len(), opt.half_lives.len()));
    // 3. Features: the engine run with the candidate rules.
    let (rows, orphans) = steps::features(&layout, &input, &mut warnings);
    let y: Vec<bool> = input
        .outcomes()
        .outcomes
        .iter()
        .map(|o| o.converted)
        .collect();
    // 4. Stratified split; half-life per engagement candidate; informative columns only.
    let split = steps::split(&y, opt)?;
    let (chosen, hl_report) = steps::choose_half_lives(opt, &cands, &layout, &rows, &split);
    let chosen = steps::keep_informative(chosen, &rows, &split.train, layout.width());
    let design = steps::design_matrix(rows, &chosen, layout.width());
    progress(
        t0,
        format!(
            "half-lives chosen; {} features; cross-validating the penalty ({} folds × {} values)",
            chosen.len(),
            split.k,
            opt.lambdas.len()
        ),
    );
    // 5. Penalty by k-fold CV, then the fit on the whole training part.
    let fit = steps::fit_model(opt, &design, &split, chosen.len(), t0);
    let (chosen, design, fit) = steps::prune(opt, chosen, design, &split, fit, t0);
    // 6. Points and the rules file.
    let scale = steps::choose_scale(opt, &base, &fit.fitted, &design, &split, &mut warnings);
    let learned = steps::learned_rules(
        opt,
        &cands,
        &chosen,
        &fit.fitted,
        &scale,
        &base,
        &input,
        &split,
    )?;
    // 7. Evaluation on the holdout, and the report.
    let evals = steps::evaluate_holdout(opt, &base, &learned, &input, &split, &y);
    progress(t0, "done");
    Ok(steps::assemble(
        &cands, input, orphans, &chosen, &design, &split, &y, fit, hl_report, learned, evals,
        warnings, t0,
    ))
}

fn fmt_opt(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "n/a".into()
    }
}

impl Report {
    /// The human-readable report: summary, holdout table, calibration, strongest rules,
    /// warnings.
    pub fn text(&self) -> String {
        let mut s = String::new();
        self.summary_text(&mut s);
        self.holdout_table(&mut s);
        self.details_text(&mut s);
        s
    }

    fn summary_text(&self, s: &mut String) {
        let _ = writeln!(s, "leadscore train — {}", self.source);
        let _ = writeln!(
            s,
            "  leads {} ({} converted, {:.1}%), events {}, train {} / holdout {} ({} converted)",
            self.leads,
            self.converted,
            100.0 * self.converted as f64 / self.leads.max(1) as f64,
            self.events,
            self.train_leads,
            self.holdout_leads,
            self.holdout_converted
        );
        let _ = writeln!(
            s,
            "  {} candidate rules → {} learned; λ = {} by cross-validation; intercept {:.4}, scale {:.4}",
            self.candidates, self.rules_learned, self.lambda, self.intercept, self.scale
        );
        let _ = writeln!(
            s,
            "  threshold sales_ready = {} ({}); {:.2}% of training leads at or above it",
            self.threshold,
            self.target,
            100.0 * self.train_flagged_rate
        );
    }

    /// The learned scorer beside the base rules on the holdout.
    fn holdout_table(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\nholdout            {:>24}{}",
            "learned",
            match &self.base {
                Some(_) => format!("{:>24}", "base rules"),
                None => String::new(),
            }
        );
        let evals: Vec<&Evaluation> = std::iter::once(&self.model)
            .chain(self.base.as_ref())
            .collect();
        let line = |s: &mut String, name: &str, f: &dyn Fn(&Evaluation) -> String| {
            let _ = write!(s, "  {name:<17}");
            for e in &evals {
                let _ = write!(s, "{:>24}", f(e));
            }
            s.push('\n');
        };
        line(s, "ROC AUC [95% CI]", &|e| {
            format!(
                "{:.3} [{:.3}, {:.3}]",
                e.roc_auc, e.roc_auc_ci95[0], e.roc_auc_ci95[1]
            )
        });
        line(s, "log-loss", &|e| {
            e.log_loss.map_or("n/a".into(), |l| format!("{l:.4}"))
        });
        line(s, "threshold", &|e| format!("{:.3}", e.threshold));
        line(s, "flagged", &|e| format!("{}", e.flagged));
        line(s, "precision", &|e| fmt_opt(e.precision));
        line(s, "recall", &|e| fmt_opt(e.recall));
        line(s, "top-decile lift", &|e| {
            format!("{:.2}", e.lift_top_decile)
        });
    }

    fn details_text(&self, s: &mut String) {
        if let Some(cal) = &self.model.calibration {
            let _ = writeln!(
                s,
                "\ncalibration (learned, holdout)\n  predicted   leads   mean p   observed"
            );
            for b in cal {
                let _ = writeln!(
                    s,
                    "  {:.1}–{:.1} {:>8} {:>8.3} {:>10.3}",
                    b.from, b.to, b.leads, b.predicted, b.observed
                );
            }
        }
        let _ = writeln!(s, "\nstrongest rules (points, half-life, leads)");
        for r in self.rules.iter().take(15) {
            let _ = writeln!(
                s,
                "  {:>9.3}  {:<6} {:>7}  {}",
                r.points,
                r.half_life.as_deref().unwrap_or("fit"),
                r.support,
                r.rule
            );
        }
        if !self.shapes.is_empty() {
            let _ = writeln!(s, "\nshapes (points per bin)");
            for f in &self.shapes {
                let bins: Vec<String> =
                    f.bins.iter().map(|(b, p)| format!("{b} {p:+.1}")).collect();
                let _ = writeln!(s, "  {}: {}", f.feature, bins.join(", "));
            }
        }
        for w in &self.warnings {
            let _ = writeln!(s, "\nWARNING: {w}");
        }
    }
}
