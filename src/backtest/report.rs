//! The backtest's table (stdout) and JSON report.

use std::io::Write;

use serde::Serialize;

use super::VariantResult;

fn pct(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
}

fn days(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.1}d"))
}

/// Writes one row per variant; `*` marks a target's pick (named in the last column).
pub fn write_table(results: &[VariantResult], mut out: impl Write) -> std::io::Result<()> {
    let reps = results.iter().any(|r| r.alerts_per_rep_per_week.is_some());
    write!(
        out,
        "{:<28} {:>9} {:>8} {:>9} {:>8} {:>9} {:>8} {:>8} {:>8} {:>7}",
        "variant",
        "threshold",
        "alerts",
        "per week",
        "leads",
        "precision",
        "recall",
        "lead p50",
        "lead p90",
        "re-MQL"
    )?;
    if reps {
        write!(out, " {:>9}", "rep/week")?;
    }
    writeln!(out, "  target")?;
    for r in results {
        write!(
            out,
            "{:<28} {:>9} {:>8} {:>9.1} {:>8} {:>9} {:>8} {:>8} {:>8} {:>7}",
            r.name,
            r.threshold,
            r.alerts,
            r.alerts_per_week,
            r.alerted_leads,
            pct(r.precision),
            pct(r.recall),
            days(r.lead_time_median_days),
            days(r.lead_time_p90_days),
            r.re_mqls
        )?;
        if reps {
            write!(out, " {:>9.1}", r.alerts_per_rep_per_week.unwrap_or(0.0))?;
        }
        if r.meets.is_empty() {
            writeln!(out)?;
        } else {
            writeln!(out, "  * {}", r.meets.join(", "))?;
        }
    }
    out.flush()
}

/// The JSON report: the window, the inputs and one object per variant.
#[derive(Debug, Serialize)]
pub struct ReportJson<'a> {
    /// Evaluation window start (RFC 3339).
    pub from: String,
    /// Evaluation window end, exclusive (RFC 3339).
    pub to: String,
    /// History lines read.
    pub lines: u64,
    /// Lines that were neither event nor verdict.
    pub invalid: u64,
    /// Leads seen.
    pub leads: usize,
    /// Seconds the pass took.
    pub pass_seconds: f64,
    /// Per variant.
    pub variants: &'a [VariantResult],
}

/// Writes the report as pretty JSON.
pub fn write_json(report: &ReportJson<'_>, out: impl Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(out, report).map_err(std::io::Error::other)
}
