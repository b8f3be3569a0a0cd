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

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::event::Event;
use crate::rules::Rules;
use crate::state::LeadState;

use crate::numeric::sigmoid;
use data::{ColumnMapping, Outcomes, TableSpec};
use features::{compile, feature_rows, rule_toml, run_engine, toml_number};
use logistic::{column_scales, cv_log_loss, stratified_folds, Row};

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

/// Trains; progress on stderr.
pub fn train(opt: &TrainOptions) -> Result<Trained> {
    let t0 = Instant::now();
    let mut warnings = Vec::new();

    // 1. Inputs.
    let history;
    let (events, outcomes, source, invalid, columns): (
        Vec<Event<'_>>,
        Outcomes,
        String,
        usize,
        Vec<ColumnMapping>,
    ) = match &opt.source {
        Source::History { events, outcomes } => {
            progress(t0, format!("reading {}", outcomes.display()));
            let o = data::read_outcomes(outcomes)?;
            progress(t0, format!("reading {}", events.display()));
            history = data::History::read(events)?;
            let parsed = history.parse();
            for (line, why) in parsed.invalid_examples.iter().take(5) {
                eprintln!("  {}:{line}: invalid event: {why}", events.display());
            }
            if parsed.invalid > 0 {
                warnings.push(format!(
                    "{} lines of {} are not valid events and were left out",
                    parsed.invalid,
                    events.display()
                ));
            }
            (
                parsed.events,
                o,
                format!("{} + {}", events.display(), outcomes.display()),
                parsed.invalid,
                Vec::new(),
            )
        }
        Source::Table(spec) => {
            progress(t0, format!("reading {}", spec.path.display()));
            let table = data::read_table(spec)?;
            if table.skipped_rows > 0 {
                warnings.push(format!(
                    "{} rows without a readable label or id were left out",
                    table.skipped_rows
                ));
            }
            (
                table.events,
                table.outcomes,
                format!("{} (label {})", spec.path.display(), spec.label),
                0,
                table.columns,
            )
        }
    };
    let n = outcomes.ids.len();
    let positives = outcomes.positives();
    progress(
        t0,
        format!(
            "{} events, {n} leads with outcome, {positives} converted",
            events.len()
        ),
    );
    if positives == 0 || positives == n {
        bail!(
            "cannot learn: {} of {n} leads converted — both converters and non-converters are needed\n  fix: check the `converted` column (1 = became a customer)",
            positives
        );
    }
    if positives < 500 {
        let w = format!(
            "only {positives} conversions: below ~500 (the vendors' rule of thumb) the points are noisy; treat the model as a draft and re-train as outcomes accumulate"
        );
        eprintln!("WARNING: {w}");
        warnings.push(w);
    }

    let base_text = match &opt.base {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read base rules {}", p.display()))?,
        ),
        None => None,
    };
    let base_rules = match (&opt.base, &base_text) {
        (Some(p), Some(t)) => Some(Rules::parse(p, t.as_bytes())?),
        _ => None,
    };
    let kept = kept_tables(base_text.as_deref())?;
    let bot = compile(
        &format!("[threshold]\nsales_ready = 1.0\n{kept}"),
        "<bot filter>",
    )?
    .bot_filter;

    // 2. Candidates.
    let cand_opt = features::CandidateOptions {
        engagement: matches!(opt.source, Source::History { .. }),
        ..opt.candidates.clone()
    };
    let cands = features::discover(&events, &bot, &outcomes, &cand_opt);
    if cands.is_empty() {
        bail!("no candidate rules: no event type, URL section, campaign, form or profile value reaches --min-support {} leads", opt.candidates.min_support);
    }
    let grid = &opt.half_lives;
    for h in grid {
        crate::rules::parse_half_life(h)
            .map_err(|e| anyhow::anyhow!("--half-lives: {e}\n  fix: e.g. 1d,7d,30d,never"))?;
    }
    // Column layout of the candidate rules: engagement (candidate × grid), then fit.
    let mut text = format!("name = \"candidates\"\n[threshold]\nsales_ready = 1e18\n{kept}\n");
    let mut eng_cols: Vec<(usize, Vec<usize>)> = Vec::new(); // candidate → columns per grid entry
    let mut fit_cands: Vec<usize> = Vec::new();
    let mut col = 0;
    for (ci, c) in cands.iter().enumerate() {
        if c.is_engagement() {
            let mut cols = Vec::new();
            for h in grid {
                text.push_str(&rule_toml(
                    &format!("{} @{h}", c.name),
                    &c.kind,
                    1.0,
                    Some(h),
                    opt.max_per_day,
                ));
                cols.push(col);
                col += 1;
            }
            eng_cols.push((ci, cols));
        }
    }
    for (ci, c) in cands.iter().enumerate() {
        if !c.is_engagement() {
            text.push_str(&rule_toml(&c.name, &c.kind, 1.0, None, None));
            fit_cands.push(ci);
        }
    }
    let cand_rules = compile(&text, "<candidate rules>")?;
    progress(
        t0,
        format!(
            "{} candidate rules ({} engagement × {} half-lives, {} fit); computing features",
            cands.len(),
            eng_cols.len(),
            grid.len(),
            fit_cands.len()
        ),
    );

    // 3. Features.
    let (states, orphans) = run_engine(&cand_rules, &events, &outcomes);
    if orphans > 0 {
        warnings.push(format!(
            "{orphans} events belong to leads without an outcome and were left out"
        ));
    }
    let rows = feature_rows(&cand_rules, &states);
    drop(states);
    let y: Vec<bool> = outcomes.outcomes.iter().map(|o| o.converted).collect();

    // 4. Stratified split.
    let mut rng = ChaCha8Rng::seed_from_u64(opt.seed);
    let mut holdout = vec![false; n];
    for class in [true, false] {
        let mut idx: Vec<usize> = (0..n).filter(|&i| y[i] == class).collect();
        idx.shuffle(&mut rng);
        let k = (idx.len() as f64 * opt.holdout).round() as usize;
        for &i in &idx[..k.min(idx.len())] {
            holdout[i] = true;
        }
    }
    let train_idx: Vec<usize> = (0..n).filter(|&i| !holdout[i]).collect();
    let test_idx: Vec<usize> = (0..n).filter(|&i| holdout[i]).collect();
    let y_train: Vec<bool> = train_idx.iter().map(|&i| y[i]).collect();
    if !y_train.iter().any(|&v| v) || y_train.iter().all(|&v| v) {
        bail!("the training part has only one class; use more data or a smaller --holdout");
    }
    let k = opt.folds.max(2);
    let folds = stratified_folds(&y_train, k);

    // Half-life per engagement candidate: 1-D cross-validation on the training part.
    let mut dense = vec![0.0; train_idx.len()];
    let mut chosen_cols: Vec<(usize, usize, String)> = Vec::new(); // (candidate, column, half-life)
    let mut hl_report = Vec::new();
    for (ci, cols) in &eng_cols {
        let mut best = (f64::INFINITY, 0usize);
        let mut losses = Vec::new();
        for (g, &c) in cols.iter().enumerate() {
            for (d, &i) in dense.iter_mut().zip(&train_idx) {
                *d = rows[i]
                    .binary_search_by_key(&(c as u32), |&(j, _)| j)
                    .map_or(0.0, |p| rows[i][p].1);
            }
            let l = cv_1d(&dense, &y_train, &folds, k);
            losses.push((grid[g].clone(), l));
            if l < best.0 - 1e-12 {
                best = (l, g);
            }
        }
        chosen_cols.push((*ci, cols[best.1], grid[best.1].clone()));
        hl_report.push(HalfLifeChoice {
            rule: cands[*ci].name.clone(),
            chosen: grid[best.1].clone(),
            cv_log_loss: losses,
        });
    }
    let e_total = cand_rules.engagement.len();
    for (j, &ci) in fit_cands.iter().enumerate() {
        chosen_cols.push((ci, e_total + j, String::new()));
    }
    // Keep columns seen in at least 5 training leads and not constant across them.
    let mut nnz = vec![0usize; col + fit_cands.len()];
    let mut distinct_val = vec![None::<f64>; nnz.len()];
    let mut varies = vec![false; nnz.len()];
    for &i in &train_idx {
        for &(j, x) in &rows[i] {
            let j = j as usize;
            nnz[j] += 1;
            match distinct_val[j] {
                None => distinct_val[j] = Some(x),
                Some(v) if v != x => varies[j] = true,
                _ => {}
            }
        }
    }
    chosen_cols.retain(|&(_, c, _)| nnz[c] >= 5 && (nnz[c] < train_idx.len() || varies[c]));
    let d = chosen_cols.len();
    let mut remap = vec![u32::MAX; nnz.len()];
    for (new, &(_, c, _)) in chosen_cols.iter().enumerate() {
        remap[c] = new as u32;
    }
    let design: Vec<Row> = rows
        .iter()
        .map(|r| {
            r.iter()
                .filter(|&&(j, _)| remap[j as usize] != u32::MAX)
                .map(|&(j, x)| (remap[j as usize], x))
                .collect()
        })
        .collect();
    drop(rows);
    progress(
        t0,
        format!(
            "half-lives chosen; {d} features; cross-validating the penalty ({k} folds × {} values)",
            opt.lambdas.len()
        ),
    );

    // 5. Penalty by k-fold CV, then the fit on the whole training part.
    let train_rows: Vec<&Row> = train_idx.iter().map(|&i| &design[i]).collect();
    let mut reg = Vec::new();
    let mut best = (f64::INFINITY, opt.lambdas[0]);
    for &lambda in &opt.lambdas {
        let l = cv_log_loss(&train_rows, &y_train, d, lambda, &folds, k);
        reg.push((lambda, l));
        if l < best.0 {
            best = (l, lambda);
        }
    }
    let lambda = best.1;
    let scales = column_scales(&train_rows, d);
    let fitted = logistic::fit(&train_rows, &y_train, d, lambda, &scales, None);
    progress(
        t0,
        format!(
            "λ = {lambda} (CV log-loss {:.4}); fitted in {} Newton steps",
            best.0, fitted.iterations
        ),
    );

    // 6. Points and the rules file. With base rules, the scale is chosen so that the base's
    // sales_ready keeps its meaning: crossing it means reaching the target.
    let default_scale = opt.points_to_double / std::f64::consts::LN_2;
    let (scale, kept_threshold) = match &base_rules {
        None => (default_scale, None),
        Some(b) => {
            let t_base = b.sales_ready;
            let needed = match opt.target {
                Target::Probability(p) => t_base / ((p / (1.0 - p)).ln() - fitted.intercept),
                Target::Rate(r) => {
                    let margins = train_idx
                        .iter()
                        .map(|&i| fitted.margin(&design[i]) - fitted.intercept)
                        .collect();
                    t_base / cutoff_for_share(margins, r)
                }
            };
            if needed.is_finite() && needed > 0.0 {
                (needed, Some((t_base, b.rearm_below)))
            } else {
                let w = format!(
                    "the base threshold {t_base} cannot be kept for the target (the scale would be {needed:.3}); points use the default scale, the threshold is set from the target"
                );
                eprintln!("WARNING: {w}");
                warnings.push(w);
                (default_scale, None)
            }
        }
    };
    let points_to_double = scale * std::f64::consts::LN_2;
    let intercept = (fitted.intercept * 1e6).round() / 1e6;
    let mut learned: Vec<(usize, f64, String)> = chosen_cols
        .iter()
        .zip(&fitted.coef)
        .map(|(&(ci, _, ref h), &w)| (ci, (w * scale * 1000.0).round() / 1000.0, h.clone()))
        .filter(|(_, p, _)| *p != 0.0)
        .collect();
    let min_fit = learned
        .iter()
        .filter(|(ci, p, _)| !cands[*ci].is_engagement() && *p < 0.0)
        .map(|(_, p, _)| p)
        .sum::<f64>()
        .floor()
        - 1.0;
    let body = |rules: &[(usize, f64, String)]| -> String {
        let mut s = String::new();
        for (ci, p, h) in rules.iter().filter(|(ci, _, _)| cands[*ci].is_engagement()) {
            s.push('\n');
            s.push_str(&rule_toml(
                &cands[*ci].name,
                &cands[*ci].kind,
                *p,
                Some(h),
                opt.max_per_day,
            ));
        }
        for (ci, p, _) in rules
            .iter()
            .filter(|(ci, _, _)| !cands[*ci].is_engagement())
        {
            s.push('\n');
            s.push_str(&rule_toml(
                &cands[*ci].name,
                &cands[*ci].kind,
                *p,
                None,
                None,
            ));
        }
        s
    };
    let model_table = format!(
        "[model]\nintercept = {}\nscale = {}\n",
        toml_number(intercept),
        toml_number(scale)
    );
    let draft = format!(
        "name = {}\n[threshold]\nsales_ready = 1e18\nmin_fit = {}\n{kept}\n{model_table}{}",
        toml::Value::String(opt.name.clone()),
        toml_number(min_fit),
        body(&learned)
    );
    let draft_rules = compile(&draft, "<learned rules>")?;
    let (states, _) = run_engine(&draft_rules, &events, &outcomes);
    let model = draft_rules.model.expect("model table written");
    let scores: Vec<f64> = states.iter().map(LeadState::score).collect();
    let probs: Vec<f64> = scores.iter().map(|&s| model.probability(s)).collect();

    let (threshold, target) = match (kept_threshold, opt.target) {
        (Some((t, _)), Target::Probability(p)) => {
            (t, format!("probability {p}; base threshold kept"))
        }
        (Some((t, _)), Target::Rate(r)) => (t, format!("rate {r}; base threshold kept")),
        (None, _) => match opt.target {
            Target::Probability(p) => {
                let t = scale * ((p / (1.0 - p)).ln() - intercept);
                ((t * 1000.0).round() / 1000.0, format!("probability {p}"))
            }
            Target::Rate(r) => {
                let cut = cutoff_for_share(train_idx.iter().map(|&i| scores[i]).collect(), r);
                ((cut * 1000.0).floor() / 1000.0, format!("rate {r}"))
            }
        },
    };
    let (rearm, rearm_note) = match kept_threshold {
        Some((_, rearm)) => (rearm, "base rules' value"),
        None => (threshold - points_to_double, "odds halved"),
    };
    let mut header = String::new();
    let _ = writeln!(
        header,
        "# Learned by `leadscore train` from {n} leads ({positives} converted)."
    );
    let _ = writeln!(
        header,
        "# Conversion probability p = 1 / (1 + exp(-(intercept + score / scale)));"
    );
    let _ = writeln!(
        header,
        "# {} points double the odds of converting. Threshold: {target}.",
        (points_to_double * 1000.0).round() / 1000.0
    );
    let rules_text = format!(
        "{header}name = {}\n\n[threshold]\nsales_ready = {}\nrearm_below = {}   # {rearm_note}\nmin_fit = {}   # no fit gate: the model weighs fit\n\n{kept}\n{model_table}{}",
        toml::Value::String(opt.name.clone()),
        toml_number(threshold),
        toml_number(rearm),
        toml_number(min_fit),
        body(&learned)
    );
    let final_rules = compile(&rules_text, "<learned rules>")?;

    // 7. Evaluation on the holdout.
    let y_test: Vec<bool> = test_idx.iter().map(|&i| y[i]).collect();
    let pick = |v: &[f64]| -> Vec<f64> { test_idx.iter().map(|&i| v[i]).collect() };
    let all_gate = vec![true; test_idx.len()];
    let model_eval = evaluate(
        "learned",
        &Scored {
            scores: pick(&scores),
            gate: all_gate,
            probs: Some(pick(&probs)),
        },
        &y_test,
        final_rules.sales_ready,
        opt,
    );
    let base_eval = base_rules.as_ref().map(|b| {
        let (st, _) = run_engine(b, &events, &outcomes);
        let s: Vec<f64> = st.iter().map(LeadState::score).collect();
        let gate: Vec<bool> = test_idx.iter().map(|&i| st[i].fit() >= b.min_fit).collect();
        let p: Option<Vec<f64>> = b
            .model
            .map(|m| test_idx.iter().map(|&i| m.probability(s[i])).collect());
        evaluate(
            &format!("base {}", b.version),
            &Scored {
                scores: pick(&s),
                gate,
                probs: p,
            },
            &y_test,
            b.sales_ready,
            opt,
        )
    });
    let train_flagged_rate = train_idx
        .iter()
        .filter(|&&i| scores[i] >= final_rules.sales_ready)
        .count() as f64
        / train_idx.len() as f64;

    // Support over all leads, for the report.
    let mut support = vec![0usize; d];
    for r in &design {
        for &(j, _) in r {
            support[j as usize] += 1;
        }
    }
    let support_of: std::collections::HashMap<usize, usize> = chosen_cols
        .iter()
        .enumerate()
        .map(|(new, &(ci, _, _))| (ci, support[new]))
        .collect();
    learned.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
    let rules_report = learned
        .iter()
        .map(|(ci, p, h)| LearnedRule {
            rule: cands[*ci].name.clone(),
            points: *p,
            half_life: (!h.is_empty()).then(|| h.clone()),
            support: support_of.get(ci).copied().unwrap_or(0),
        })
        .collect();
    let predictions = (0..n)
        .map(|i| {
            (
                outcomes.ids[i].clone(),
                holdout[i],
                y[i],
                scores[i],
                probs[i],
            )
        })
        .collect();
    progress(t0, "done");
    let report = Report {
        source,
        leads: n,
        converted: positives,
        events: events.len(),
        invalid_lines: invalid,
        events_without_outcome: orphans,
        columns,
        train_leads: train_idx.len(),
        holdout_leads: test_idx.len(),
        holdout_converted: y_test.iter().filter(|&&v| v).count(),
        candidates: cands.len(),
        rules_learned: learned.len(),
        half_lives: hl_report,
        regularization: reg,
        lambda,
        intercept,
        scale,
        threshold: final_rules.sales_ready,
        target,
        train_flagged_rate,
        model: model_eval,
        base: base_eval,
        rules: rules_report,
        warnings,
        seconds: t0.elapsed().as_secs_f64(),
    };
    Ok(Trained {
        rules_text,
        report,
        predictions,
    })
}

fn fmt_opt(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "n/a".into()
    }
}

impl Report {
    /// The human-readable report.
    pub fn text(&self) -> String {
        let mut s = String::new();
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
        line(&mut s, "ROC AUC [95% CI]", &|e| {
            format!(
                "{:.3} [{:.3}, {:.3}]",
                e.roc_auc, e.roc_auc_ci95[0], e.roc_auc_ci95[1]
            )
        });
        line(&mut s, "log-loss", &|e| {
            e.log_loss.map_or("n/a".into(), |l| format!("{l:.4}"))
        });
        line(&mut s, "threshold", &|e| format!("{:.3}", e.threshold));
        line(&mut s, "flagged", &|e| format!("{}", e.flagged));
        line(&mut s, "precision", &|e| fmt_opt(e.precision));
        line(&mut s, "recall", &|e| fmt_opt(e.recall));
        line(&mut s, "top-decile lift", &|e| {
            format!("{:.2}", e.lift_top_decile)
        });
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
        for w in &self.warnings {
            let _ = writeln!(s, "\nWARNING: {w}");
        }
        s
    }
}
