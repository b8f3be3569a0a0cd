//! `leadscore backtest`: reads the history, the outcomes and the rules, runs one pass
//! (`leadscore::backtest`), prints the table and writes the report, the chart and the alerts.

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use leadscore::backtest::{self as bt, Pass, RulesFile, Targets, Variant, Window};
use leadscore::time::{format_rfc3339, parse_rfc3339, Micros};
use leadscore::train::data::read_outcomes;

/// Arguments of `leadscore backtest`.
#[derive(Args)]
pub struct BacktestArgs {
    /// Event history (NDJSON in application order; verdict lines allowed, SPEC §2b).
    #[arg(long, visible_alias = "history")]
    events: PathBuf,
    /// Outcomes CSV as `train` reads it: `lead_id,converted[,converted_at]`.
    #[arg(long)]
    outcomes: PathBuf,
    /// A rules file; repeat to compare several.
    #[arg(long, required = true)]
    rules: Vec<PathBuf>,
    /// Threshold sweep FROM:TO:STEP, e.g. 40:160:10 (each rules file at each threshold).
    #[arg(long)]
    thresholds: Option<String>,
    /// Never re-arm: each lead alerts at most once (alerts are then non-increasing in the
    /// threshold).
    #[arg(long)]
    no_rearm: bool,
    /// Evaluation window start (YYYY-MM-DD or RFC 3339); earlier history warms the state up.
    #[arg(long)]
    from: Option<String>,
    /// Evaluation window end, exclusive (YYYY-MM-DD or RFC 3339).
    #[arg(long)]
    to: Option<String>,
    /// Sales reps sharing the alerts (adds alerts per rep per week).
    #[arg(long)]
    reps: Option<u32>,
    /// Mark the lowest threshold with at most this many alerts per week.
    #[arg(long)]
    target_alerts_per_week: Option<f64>,
    /// Mark the lowest threshold with at least this precision (0–1).
    #[arg(long)]
    target_precision: Option<f64>,
    /// Also write the report as JSON.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Also draw the sweep (alerts per week, precision, recall by threshold) as PNG.
    #[arg(long, visible_alias = "png", requires = "thresholds")]
    plot: Option<PathBuf>,
    /// Also write each variant's alerts as `<DIR>/<variant>.ndjson` (lead_id, sequence,
    /// qualified_at, score, trigger_event_id), in emission order.
    #[arg(long)]
    alerts: Option<PathBuf>,
    /// Print no progress.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `leadscore backtest`.
pub fn run(a: BacktestArgs) -> Result<ExitCode> {
    let files = load_rules(&a.rules)?;
    let sweep = match &a.thresholds {
        Some(s) => Some(bt::parse_thresholds(s).map_err(|e| anyhow::anyhow!("--thresholds {e}"))?),
        None => None,
    };
    let window = Window {
        from: a
            .from
            .as_deref()
            .map(|s| parse_date("--from", s))
            .transpose()?,
        to: a.to.as_deref().map(|s| parse_date("--to", s)).transpose()?,
    };
    if let (Some(f), Some(t)) = (window.from, window.to) {
        if f >= t {
            bail!("--from must be before --to");
        }
    }
    let outcomes = read_outcomes(&a.outcomes)?;
    let variants = bt::variants(&files, sweep.as_deref(), a.no_rearm);
    let started = Instant::now();
    let pass = one_pass(&a, &files, &variants)?;
    let secs = started.elapsed().as_secs_f64();
    let labels: Vec<String> = files.iter().map(|f| f.label.clone()).collect();
    let mut results = bt::evaluate(&pass, &variants, &labels, &outcomes, window, a.reps);
    let targets = Targets {
        alerts_per_week: a.target_alerts_per_week,
        precision: a.target_precision,
    };
    bt::mark_targets(&mut results, targets);
    bt::write_table(&results, io::stdout().lock())?;
    eprintln!(
        "backtest: {} lines ({} invalid), {} leads, {} variants in one pass, {:.2}s ({:.0} lines/s)",
        pass.lines,
        pass.invalid,
        pass.lead_ids.len(),
        variants.len(),
        secs,
        pass.lines as f64 / secs.max(1e-9)
    );
    write_outputs(&a, &pass, &variants, &results, window, secs)?;
    Ok(ExitCode::SUCCESS)
}

fn one_pass(a: &BacktestArgs, files: &[RulesFile], variants: &[Variant]) -> Result<Pass> {
    let f = std::fs::File::open(&a.events)
        .with_context(|| format!("cannot open --events {}", a.events.display()))?;
    let input: Box<dyn BufRead> = Box::new(BufReader::with_capacity(1 << 20, f));
    let quiet = a.quiet;
    let started = Instant::now();
    bt::run(files, variants, input, |lines| {
        if !quiet {
            let s = started.elapsed().as_secs_f64();
            eprintln!("backtest: {lines} lines, {:.0} lines/s", lines as f64 / s);
        }
    })
    .with_context(|| format!("cannot read {}", a.events.display()))
}

/// Loads each rules file under a unique label (its file stem, `-2`… on a clash).
fn load_rules(paths: &[PathBuf]) -> Result<Vec<RulesFile>> {
    let mut seen = HashSet::new();
    paths
        .iter()
        .map(|p| {
            let rules = leadscore::rules_file::load(p)?;
            let stem = p
                .file_stem()
                .map_or("rules".into(), |s| s.to_string_lossy().to_string());
            let mut label = stem.clone();
            let mut n = 1;
            while !seen.insert(label.clone()) {
                n += 1;
                label = format!("{stem}-{n}");
            }
            Ok(RulesFile {
                label,
                rules: Arc::new(rules),
            })
        })
        .collect()
}

/// `YYYY-MM-DD` (midnight UTC) or RFC 3339.
fn parse_date(flag: &str, s: &str) -> Result<Micros> {
    let t = if s.len() == 10 {
        parse_rfc3339(&format!("{s}T00:00:00Z"))
    } else {
        parse_rfc3339(s)
    };
    t.with_context(|| format!("{flag} `{s}` is not YYYY-MM-DD or an RFC 3339 time"))
}

fn write_outputs(
    a: &BacktestArgs,
    pass: &Pass,
    variants: &[Variant],
    results: &[bt::VariantResult],
    window: Window,
    secs: f64,
) -> Result<()> {
    if let Some(path) = &a.report {
        let (first, last) = pass.span.unwrap_or((0, 0));
        let report = bt::ReportJson {
            from: format_rfc3339(window.from.unwrap_or(first)),
            to: format_rfc3339(window.to.unwrap_or(last + 1)),
            lines: pass.lines,
            invalid: pass.invalid,
            leads: pass.lead_ids.len(),
            pass_seconds: secs,
            variants: results,
        };
        bt::write_json(&report, create(path)?)?;
        eprintln!("backtest: report in {}", path.display());
    }
    if let Some(path) = &a.plot {
        bt::write_png(results, path)?;
        eprintln!("backtest: chart in {}", path.display());
    }
    if let Some(dir) = &a.alerts {
        write_alerts(dir, pass, variants)?;
    }
    Ok(())
}

/// One NDJSON file per variant with its alerts, in emission order.
fn write_alerts(dir: &Path, pass: &Pass, variants: &[Variant]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (v, alerts) in variants.iter().zip(&pass.alerts) {
        let mut out = create(&dir.join(format!("{}.ndjson", v.name)))?;
        for al in alerts {
            let line = serde_json::json!({
                "lead_id": &*pass.lead_ids[al.lead as usize],
                "sequence": al.sequence,
                "qualified_at": format_rfc3339(al.at),
                "score": al.score,
                "trigger_event_id": &*al.trigger,
            });
            writeln!(out, "{line}")?;
        }
        out.flush()?;
    }
    eprintln!("backtest: alerts in {}", dir.display());
    Ok(())
}

fn create(path: &Path) -> Result<BufWriter<std::fs::File>> {
    let f =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(BufWriter::with_capacity(1 << 20, f))
}
