//! The phases of [`super::train`], one function each, in the order `train` calls them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::data::{self, ColumnMapping, Outcomes};
use super::features::{self, compile, feature_rows, rule_toml, run_engine, toml_number, Candidate};
use super::logistic::{self, column_scales, cv_log_loss, stratified_folds, Row};
use super::{
    cutoff_for_share, cv_1d, evaluate, kept_tables, progress, Evaluation, HalfLifeChoice,
    LearnedRule, Report, Scored, Source, Target, TrainOptions, Trained,
};
use crate::event::Event;
use crate::rules::{BotFilter, Rules};
use crate::state::LeadState;

/// The training data, whichever its source.
pub(super) struct Input<'h> {
    events: Vec<Event<'h>>,
    outcomes: Outcomes,
    source: String,
    invalid: usize,
    columns: Vec<ColumnMapping>,
}

impl Input<'_> {
    /// Leads with an outcome.
    pub(super) fn outcomes(&self) -> &Outcomes {
        &self.outcomes
    }
}

/// What the base rules contribute: themselves, their `[decay]` and `[bot_filter]` tables, and
/// the bot filter compiled.
pub(super) struct Base {
    rules: Option<Rules>,
    pub(super) kept: String,
    bot: BotFilter,
}

/// The candidate rules as one rules file, and where each candidate's feature columns are.
pub(super) struct Layout {
    rules: Rules,
    /// Engagement candidate → its columns, one per half-life of the grid.
    eng_cols: Vec<(usize, Vec<usize>)>,
    /// Fit candidates, whose columns follow the engagement ones.
    fit_cands: Vec<usize>,
    /// Number of engagement columns.
    eng_width: usize,
}

impl Layout {
    /// Number of feature columns.
    pub(super) fn width(&self) -> usize {
        self.eng_width + self.fit_cands.len()
    }

    /// The progress line.
    pub(super) fn summary(&self, candidates: usize, grid: usize) -> String {
        format!(
            "{candidates} candidate rules ({} engagement × {grid} half-lives, {} fit); computing features",
            self.eng_cols.len(),
            self.fit_cands.len()
        )
    }
}

/// The stratified split and the cross-validation folds of the training part.
pub(super) struct Split {
    holdout: Vec<bool>,
    pub(super) train: Vec<usize>,
    test: Vec<usize>,
    y_train: Vec<bool>,
    folds: Vec<usize>,
    pub(super) k: usize,
}

/// A chosen feature column: (candidate, column, half-life or empty for fit).
pub(super) type Chosen = (usize, usize, String);

/// The penalty chosen by cross-validation and the model fitted with it.
pub(super) struct Fit {
    lambda: f64,
    reg: Vec<(f64, f64)>,
    pub(super) fitted: logistic::Fit,
}

/// Points per unit of log-odds, and the base threshold and rearm level when they are kept.
pub(super) struct Scale {
    scale: f64,
    kept_threshold: Option<(f64, f64)>,
}

/// The learned rules: points per candidate, the rules file, and every lead's score with it.
pub(super) struct Learned {
    learned: Vec<(usize, f64, String)>,
    rules_text: String,
    final_rules: Rules,
    scores: Vec<f64>,
    probs: Vec<f64>,
    intercept: f64,
    scale: f64,
    target: String,
}

/// The holdout evaluations.
pub(super) struct Evals {
    model: Evaluation,
    base: Option<Evaluation>,
    train_flagged_rate: f64,
}

/// Reads the event history file, when the source is one (the events borrow from it).
pub(super) fn read_history(opt: &TrainOptions, t0: Instant) -> Result<Option<data::History>> {
    match &opt.source {
        Source::History { events, .. } => {
            progress(t0, format!("reading {}", events.display()));
            Ok(Some(data::History::read(events)?))
        }
        Source::Table(_) => Ok(None),
    }
}

/// Events and outcomes, from a history and an outcomes CSV or from a flat lead table.
pub(super) fn read_input<'h>(
    opt: &TrainOptions,
    history: Option<&'h data::History>,
    t0: Instant,
    warnings: &mut Vec<String>,
) -> Result<Input<'h>> {
    match (&opt.source, history) {
        (Source::History { events, outcomes }, Some(history)) => {
            progress(t0, format!("reading {}", outcomes.display()));
            let o = data::read_outcomes(outcomes)?;
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
            Ok(Input {
                events: parsed.events,
                outcomes: o,
                source: format!("{} + {}", events.display(), outcomes.display()),
                invalid: parsed.invalid,
                columns: Vec::new(),
            })
        }
        (Source::Table(spec), _) => {
            progress(t0, format!("reading {}", spec.path.display()));
            let table = data::read_table(spec)?;
            if table.skipped_rows > 0 {
                warnings.push(format!(
                    "{} rows without a readable label or id were left out",
                    table.skipped_rows
                ));
            }
            Ok(Input {
                events: table.events,
                outcomes: table.outcomes,
                source: format!("{} (label {})", spec.path.display(), spec.label),
                invalid: 0,
                columns: table.columns,
            })
        }
        (Source::History { .. }, None) => unreachable!("read_history reads it"),
    }
}

/// Refuses data with one class only; warns below 500 conversions.
pub(super) fn check_classes(
    input: &Input<'_>,
    t0: Instant,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let n = input.outcomes.ids.len();
    let positives = input.outcomes.positives();
    progress(
        t0,
        format!(
            "{} events, {n} leads with outcome, {positives} converted",
            input.events.len()
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
    Ok(())
}

/// The base rules, if given, with the tables the learned file keeps from them.
pub(super) fn read_base(opt: &TrainOptions) -> Result<Base> {
    let base_text = match &opt.base {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read base rules {}", p.display()))?,
        ),
        None => None,
    };
    let rules = match (&opt.base, &base_text) {
        (Some(p), Some(t)) => Some(Rules::parse(p, t.as_bytes())?),
        _ => None,
    };
    let kept = kept_tables(base_text.as_deref())?;
    let bot = compile(
        &format!("[threshold]\nsales_ready = 1.0\n{kept}"),
        "<bot filter>",
    )?
    .bot_filter;
    Ok(Base { rules, kept, bot })
}

/// Candidate rules from the data (engagement ones only from an event history).
pub(super) fn discover_candidates(
    opt: &TrainOptions,
    input: &Input<'_>,
    base: &Base,
) -> Result<Vec<Candidate>> {
    let cand_opt = features::CandidateOptions {
        engagement: matches!(opt.source, Source::History { .. }),
        ..opt.candidates.clone()
    };
    let cands = features::discover(&input.events, &base.bot, &input.outcomes, &cand_opt);
    if cands.is_empty() {
        bail!("no candidate rules: no event type, URL section, campaign, form or profile value reaches --min-support {} leads", opt.candidates.min_support);
    }
    for h in &opt.half_lives {
        crate::rules::parse_half_life(h)
            .map_err(|e| anyhow::anyhow!("--half-lives: {e}\n  fix: e.g. 1d,7d,30d,never"))?;
    }
    Ok(cands)
}

/// The candidate rules with points 1: engagement (candidate × half-life grid), then fit.
pub(super) fn candidate_columns(
    opt: &TrainOptions,
    cands: &[Candidate],
    kept: &str,
) -> Result<Layout> {
    let grid = &opt.half_lives;
    let mut text = format!("name = \"candidates\"\n[threshold]\nsales_ready = 1e18\n{kept}\n");
    let mut eng_cols: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut fit_cands: Vec<usize> = Vec::new();
    let mut col = 0;
    for (ci, c) in cands.iter().enumerate().filter(|(_, c)| c.is_engagement()) {
        let mut cols = Vec::new();
        for h in grid {
            text.push_str(&rule_toml(
                &format!("{} @{h}", c.name),
                &c.kind,
                1.0,
                Some(h),
                c.daily_cap(opt.max_per_day),
            ));
            cols.push(col);
            col += 1;
        }
        eng_cols.push((ci, cols));
    }
    for (ci, c) in cands.iter().enumerate().filter(|(_, c)| !c.is_engagement()) {
        text.push_str(&rule_toml(&c.name, &c.kind, 1.0, None, None));
        fit_cands.push(ci);
    }
    Ok(Layout {
        rules: compile(&text, "<candidate rules>")?,
        eng_cols,
        fit_cands,
        eng_width: col,
    })
}

/// Feature rows (sparse, per lead with an outcome) and the number of events of leads without
/// one.
pub(super) fn features(
    layout: &Layout,
    input: &Input<'_>,
    warnings: &mut Vec<String>,
) -> (Vec<Row>, usize) {
    let (states, orphans) = run_engine(&layout.rules, &input.events, &input.outcomes);
    if orphans > 0 {
        warnings.push(format!(
            "{orphans} events belong to leads without an outcome and were left out"
        ));
    }
    (feature_rows(&layout.rules, &states), orphans)
}

/// Stratified holdout and the folds of the training part.
pub(super) fn split(y: &[bool], opt: &TrainOptions) -> Result<Split> {
    let n = y.len();
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
    let train: Vec<usize> = (0..n).filter(|&i| !holdout[i]).collect();
    let test: Vec<usize> = (0..n).filter(|&i| holdout[i]).collect();
    let y_train: Vec<bool> = train.iter().map(|&i| y[i]).collect();
    if !y_train.iter().any(|&v| v) || y_train.iter().all(|&v| v) {
        bail!("the training part has only one class; use more data or a smaller --holdout");
    }
    let k = opt.folds.max(2);
    let folds = stratified_folds(&y_train, k);
    Ok(Split {
        holdout,
        train,
        test,
        y_train,
        folds,
        k,
    })
}

/// The half-life of each engagement candidate, by 1-D cross-validation on the training part;
/// fit candidates keep their one column.
pub(super) fn choose_half_lives(
    opt: &TrainOptions,
    cands: &[Candidate],
    layout: &Layout,
    rows: &[Row],
    split: &Split,
) -> (Vec<Chosen>, Vec<HalfLifeChoice>) {
    let grid = &opt.half_lives;
    let mut dense = vec![0.0; split.train.len()];
    let mut chosen: Vec<Chosen> = Vec::new();
    let mut report = Vec::new();
    for (ci, cols) in &layout.eng_cols {
        let mut best = (f64::INFINITY, 0usize);
        let mut losses = Vec::new();
        for (g, &c) in cols.iter().enumerate() {
            for (d, &i) in dense.iter_mut().zip(&split.train) {
                *d = rows[i]
                    .binary_search_by_key(&(c as u32), |&(j, _)| j)
                    .map_or(0.0, |p| rows[i][p].1);
            }
            let l = cv_1d(&dense, &split.y_train, &split.folds, split.k);
            losses.push((grid[g].clone(), l));
            if l < best.0 - 1e-12 {
                best = (l, g);
            }
        }
        chosen.push((*ci, cols[best.1], grid[best.1].clone()));
        report.push(HalfLifeChoice {
            rule: cands[*ci].name.clone(),
            chosen: grid[best.1].clone(),
            cv_log_loss: losses,
        });
    }
    let e_total = layout.rules.engagement.len();
    for (j, &ci) in layout.fit_cands.iter().enumerate() {
        chosen.push((ci, e_total + j, String::new()));
    }
    (chosen, report)
}

/// Keeps the columns seen in at least 5 training leads and not constant across them.
pub(super) fn keep_informative(
    mut chosen: Vec<Chosen>,
    rows: &[Row],
    train: &[usize],
    width: usize,
) -> Vec<Chosen> {
    let mut nnz = vec![0usize; width];
    let mut distinct_val = vec![None::<f64>; width];
    let mut varies = vec![false; width];
    for &i in train {
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
    chosen.retain(|&(_, c, _)| nnz[c] >= 5 && (nnz[c] < train.len() || varies[c]));
    chosen
}

/// The rows restricted to the chosen columns, renumbered in their order.
pub(super) fn design_matrix(rows: Vec<Row>, chosen: &[Chosen], width: usize) -> Vec<Row> {
    let mut remap = vec![u32::MAX; width];
    for (new, &(_, c, _)) in chosen.iter().enumerate() {
        remap[c] = new as u32;
    }
    rows.iter()
        .map(|r| {
            r.iter()
                .filter(|&&(j, _)| remap[j as usize] != u32::MAX)
                .map(|&(j, x)| (remap[j as usize], x))
                .collect()
        })
        .collect()
}

/// The penalty by k-fold cross-validation, then the fit on the whole training part.
pub(super) fn fit_model(
    opt: &TrainOptions,
    design: &[Row],
    split: &Split,
    d: usize,
    t0: Instant,
) -> Fit {
    let train_rows: Vec<&Row> = split.train.iter().map(|&i| &design[i]).collect();
    let mut reg = Vec::new();
    let mut best = (f64::INFINITY, opt.lambdas[0]);
    for &lambda in &opt.lambdas {
        let l = cv_log_loss(
            &train_rows,
            &split.y_train,
            d,
            lambda,
            &split.folds,
            split.k,
        );
        reg.push((lambda, l));
        if l < best.0 {
            best = (l, lambda);
        }
    }
    let lambda = best.1;
    let scales = column_scales(&train_rows, d);
    let fitted = logistic::fit(&train_rows, &split.y_train, d, lambda, &scales, None);
    progress(
        t0,
        format!(
            "λ = {lambda} (CV log-loss {:.4}); fitted in {} Newton steps",
            best.0, fitted.iterations
        ),
    );
    Fit {
        lambda,
        reg,
        fitted,
    }
}

/// At most `opt.max_rules` rules (0: no limit): when the fit uses more columns, the most
/// important ones (|coefficient| × column scale) are kept and refitted with the same penalty.
pub(super) fn prune(
    opt: &TrainOptions,
    chosen: Vec<Chosen>,
    design: Vec<Row>,
    split: &Split,
    fit: Fit,
    t0: Instant,
) -> (Vec<Chosen>, Vec<Row>, Fit) {
    let d = chosen.len();
    if opt.max_rules == 0 || d <= opt.max_rules {
        return (chosen, design, fit);
    }
    let train_rows: Vec<&Row> = split.train.iter().map(|&i| &design[i]).collect();
    let scales = column_scales(&train_rows, d);
    let mut order: Vec<usize> = (0..d).collect();
    let weight = |j: usize| fit.fitted.coef[j].abs() * scales[j];
    order.sort_by(|&a, &b| weight(b).total_cmp(&weight(a)).then(a.cmp(&b)));
    let mut keep = order[..opt.max_rules].to_vec();
    keep.sort_unstable();
    let mut remap = vec![u32::MAX; d];
    for (new, &old) in keep.iter().enumerate() {
        remap[old] = new as u32;
    }
    let design: Vec<Row> = (design.iter())
        .map(|r| {
            (r.iter())
                .filter(|&&(j, _)| remap[j as usize] != u32::MAX)
                .map(|&(j, x)| (remap[j as usize], x))
                .collect()
        })
        .collect();
    let chosen: Vec<Chosen> = keep.iter().map(|&j| chosen[j].clone()).collect();
    let train_rows: Vec<&Row> = split.train.iter().map(|&i| &design[i]).collect();
    let k = chosen.len();
    let scales = column_scales(&train_rows, k);
    let fitted = logistic::fit(&train_rows, &split.y_train, k, fit.lambda, &scales, None);
    progress(
        t0,
        format!("kept the {k} most important of {d} rules (--max-rules), refitted"),
    );
    (chosen, design, Fit { fitted, ..fit })
}

/// Points per unit of log-odds. With base rules, chosen so that the base's sales_ready keeps
/// its meaning: crossing it means reaching the target.
pub(super) fn choose_scale(
    opt: &TrainOptions,
    base: &Base,
    fitted: &logistic::Fit,
    design: &[Row],
    split: &Split,
    warnings: &mut Vec<String>,
) -> Scale {
    let default_scale = opt.points_to_double / std::f64::consts::LN_2;
    let Some(b) = &base.rules else {
        return Scale {
            scale: default_scale,
            kept_threshold: None,
        };
    };
    let t_base = b.sales_ready;
    let needed = match opt.target {
        Target::Probability(p) => t_base / ((p / (1.0 - p)).ln() - fitted.intercept),
        Target::Rate(r) => {
            let margins = split
                .train
                .iter()
                .map(|&i| fitted.margin(&design[i]) - fitted.intercept)
                .collect();
            t_base / cutoff_for_share(margins, r)
        }
    };
    if needed.is_finite() && needed > 0.0 {
        return Scale {
            scale: needed,
            kept_threshold: Some((t_base, b.rearm_below)),
        };
    }
    let w = format!(
        "the base threshold {t_base} cannot be kept for the target (the scale would be {needed:.3}); points use the default scale, the threshold is set from the target"
    );
    eprintln!("WARNING: {w}");
    warnings.push(w);
    Scale {
        scale: default_scale,
        kept_threshold: None,
    }
}

/// The `[[engagement]]` and `[[fit]]` entries of learned points.
fn rules_body(opt: &TrainOptions, cands: &[Candidate], rules: &[(usize, f64, String)]) -> String {
    let mut s = String::new();
    for (ci, p, h) in rules.iter().filter(|(ci, _, _)| cands[*ci].is_engagement()) {
        s.push('\n');
        s.push_str(&rule_toml(
            &cands[*ci].name,
            &cands[*ci].kind,
            *p,
            Some(h),
            cands[*ci].daily_cap(opt.max_per_day),
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
}

/// Points from the coefficients, every lead scored by a draft of the rules, the threshold, and
/// the final rules file.
#[allow(clippy::too_many_arguments)] // the phase's inputs, named; bundling them would only hide them
pub(super) fn learned_rules(
    opt: &TrainOptions,
    cands: &[Candidate],
    chosen: &[Chosen],
    fitted: &logistic::Fit,
    scale: &Scale,
    base: &Base,
    input: &Input<'_>,
    split: &Split,
) -> Result<Learned> {
    let intercept = (fitted.intercept * 1e6).round() / 1e6;
    let learned: Vec<(usize, f64, String)> = chosen
        .iter()
        .zip(&fitted.coef)
        .map(|(&(ci, _, ref h), &w)| (ci, (w * scale.scale * 1000.0).round() / 1000.0, h.clone()))
        .filter(|(_, p, _)| *p != 0.0)
        .collect();
    let min_fit = learned
        .iter()
        .filter(|(ci, p, _)| !cands[*ci].is_engagement() && *p < 0.0)
        .map(|(_, p, _)| p)
        .sum::<f64>()
        .floor()
        - 1.0;
    let model_table = format!(
        "[model]\nintercept = {}\nscale = {}\n",
        toml_number(intercept),
        toml_number(scale.scale)
    );
    let body = rules_body(opt, cands, &learned);
    let draft = format!(
        "name = {}\n[threshold]\nsales_ready = 1e18\nmin_fit = {}\n{}\n{model_table}{body}",
        toml::Value::String(opt.name.clone()),
        toml_number(min_fit),
        base.kept
    );
    let draft_rules = compile(&draft, "<learned rules>")?;
    let (states, _) = run_engine(&draft_rules, &input.events, &input.outcomes);
    let model = draft_rules.model.expect("model table written");
    let scores: Vec<f64> = states.iter().map(LeadState::score).collect();
    let probs: Vec<f64> = scores.iter().map(|&s| model.probability(s)).collect();
    let (threshold, target) = threshold_for(opt, scale, intercept, &scores, split);
    let rules_text = rules_file_text(
        opt,
        input,
        scale,
        threshold,
        &target,
        min_fit,
        &base.kept,
        &model_table,
        &body,
    );
    let final_rules = compile(&rules_text, "<learned rules>")?;
    Ok(Learned {
        learned,
        rules_text,
        final_rules,
        scores,
        probs,
        intercept,
        scale: scale.scale,
        target,
    })
}

/// The sales_ready threshold and how it was set.
fn threshold_for(
    opt: &TrainOptions,
    scale: &Scale,
    intercept: f64,
    scores: &[f64],
    split: &Split,
) -> (f64, String) {
    match (scale.kept_threshold, opt.target) {
        (Some((t, _)), Target::Probability(p)) => {
            (t, format!("probability {p}; base threshold kept"))
        }
        (Some((t, _)), Target::Rate(r)) => (t, format!("rate {r}; base threshold kept")),
        (None, Target::Probability(p)) => {
            let t = scale.scale * ((p / (1.0 - p)).ln() - intercept);
            ((t * 1000.0).round() / 1000.0, format!("probability {p}"))
        }
        (None, Target::Rate(r)) => {
            let cut = cutoff_for_share(split.train.iter().map(|&i| scores[i]).collect(), r);
            ((cut * 1000.0).floor() / 1000.0, format!("rate {r}"))
        }
    }
}

/// The learned rules file: a header explaining the model, the threshold, the kept tables, the
/// model table and the rules.
#[allow(clippy::too_many_arguments)] // the pieces of one file, named
fn rules_file_text(
    opt: &TrainOptions,
    input: &Input<'_>,
    scale: &Scale,
    threshold: f64,
    target: &str,
    min_fit: f64,
    kept: &str,
    model_table: &str,
    body: &str,
) -> String {
    let points_to_double = scale.scale * std::f64::consts::LN_2;
    let (rearm, rearm_note) = match scale.kept_threshold {
        Some((_, rearm)) => (rearm, "base rules' value"),
        None => (threshold - points_to_double, "odds halved"),
    };
    let (n, positives) = (input.outcomes.ids.len(), input.outcomes.positives());
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
    format!(
        "{header}name = {}\n\n[threshold]\nsales_ready = {}\nrearm_below = {}   # {rearm_note}\nmin_fit = {}   # no fit gate: the model weighs fit\n\n{kept}\n{model_table}{body}",
        toml::Value::String(opt.name.clone()),
        toml_number(threshold),
        toml_number(rearm),
        toml_number(min_fit),
    )
}

/// The learned rules and the base rules on the holdout.
pub(super) fn evaluate_holdout(
    opt: &TrainOptions,
    base: &Base,
    l: &Learned,
    input: &Input<'_>,
    split: &Split,
    y: &[bool],
) -> Evals {
    let y_test: Vec<bool> = split.test.iter().map(|&i| y[i]).collect();
    let pick = |v: &[f64]| -> Vec<f64> { split.test.iter().map(|&i| v[i]).collect() };
    let model = evaluate(
        "learned",
        &Scored {
            scores: pick(&l.scores),
            gate: vec![true; split.test.len()],
            probs: Some(pick(&l.probs)),
        },
        &y_test,
        l.final_rules.sales_ready,
        opt,
    );
    let base_eval = base.rules.as_ref().map(|b| {
        let (st, _) = run_engine(b, &input.events, &input.outcomes);
        let s: Vec<f64> = st.iter().map(LeadState::score).collect();
        let gate: Vec<bool> = split
            .test
            .iter()
            .map(|&i| st[i].fit() >= b.min_fit)
            .collect();
        let p: Option<Vec<f64>> = b
            .model
            .map(|m| split.test.iter().map(|&i| m.probability(s[i])).collect());
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
    let train_flagged_rate = split
        .train
        .iter()
        .filter(|&&i| l.scores[i] >= l.final_rules.sales_ready)
        .count() as f64
        / split.train.len() as f64;
    Evals {
        model,
        base: base_eval,
        train_flagged_rate,
    }
}

/// The learned rules by |points|, each with its support over all leads.
fn learned_report(
    learned: &mut [(usize, f64, String)],
    cands: &[Candidate],
    chosen: &[Chosen],
    design: &[Row],
) -> Vec<LearnedRule> {
    let mut support = vec![0usize; chosen.len()];
    for r in design {
        for &(j, _) in r {
            support[j as usize] += 1;
        }
    }
    let support_of: HashMap<usize, usize> = chosen
        .iter()
        .enumerate()
        .map(|(new, &(ci, _, _))| (ci, support[new]))
        .collect();
    learned.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
    learned
        .iter()
        .map(|(ci, p, h)| LearnedRule {
            rule: cands[*ci].name.clone(),
            points: *p,
            half_life: (!h.is_empty()).then(|| h.clone()),
            support: support_of.get(ci).copied().unwrap_or(0),
        })
        .collect()
}

/// The rules file, the report and the per-lead predictions.
#[allow(clippy::too_many_arguments)] // everything the report shows, named
pub(super) fn assemble(
    cands: &[Candidate],
    input: Input<'_>,
    orphans: usize,
    chosen: &[Chosen],
    design: &[Row],
    split: &Split,
    y: &[bool],
    fit: Fit,
    half_lives: Vec<HalfLifeChoice>,
    mut l: Learned,
    evals: Evals,
    warnings: Vec<String>,
    t0: Instant,
) -> Trained {
    let rules = learned_report(&mut l.learned, cands, chosen, design);
    let n = input.outcomes.ids.len();
    let predictions = (0..n)
        .map(|i| {
            (
                input.outcomes.ids[i].clone(),
                split.holdout[i],
                y[i],
                l.scores[i],
                l.probs[i],
            )
        })
        .collect();
    let report = Report {
        source: input.source,
        leads: n,
        converted: input.outcomes.positives(),
        events: input.events.len(),
        invalid_lines: input.invalid,
        events_without_outcome: orphans,
        columns: input.columns,
        train_leads: split.train.len(),
        holdout_leads: split.test.len(),
        holdout_converted: split.test.iter().filter(|&&i| y[i]).count(),
        candidates: cands.len(),
        rules_learned: l.learned.len(),
        half_lives,
        regularization: fit.reg,
        lambda: fit.lambda,
        intercept: l.intercept,
        scale: l.scale,
        threshold: l.final_rules.sales_ready,
        target: l.target,
        train_flagged_rate: evals.train_flagged_rate,
        model: evals.model,
        base: evals.base,
        shapes: super::shapes_of(&rules),
        rules,
        warnings,
        seconds: t0.elapsed().as_secs_f64(),
    };
    Trained {
        rules_text: l.rules_text,
        report,
        predictions,
    }
}
