//! The `leadscore` command line.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use leadscore::engine::Engine;
use leadscore::gen::{self, GenConfig};
use leadscore::replay;
use leadscore::rules::Rules;
use leadscore::time::parse_rfc3339;

/// Real-time, explainable lead scoring on a Kafka event stream.
#[derive(Parser)]
#[command(name = "leadscore", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score an NDJSON event file offline with the exact streaming semantics.
    Replay(ReplayArgs),
    /// Generate a realistic synthetic event stream (NDJSON) and its outcomes.
    Gen(GenArgs),
}

#[derive(Args)]
struct ReplayArgs {
    /// Rules file (TOML, SPEC §3).
    #[arg(long)]
    rules: PathBuf,
    /// NDJSON events, in the order to apply them; `-` for stdin.
    #[arg(long, default_value = "-")]
    input: String,
    /// Also write one line per lead with its final score.
    #[arg(long)]
    scores: Option<PathBuf>,
    /// Print no summary or progress.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
struct GenArgs {
    /// RNG seed; the same seed gives the same stream.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Number of leads.
    #[arg(long, default_value_t = 1000)]
    leads: usize,
    /// Start of the activity window (RFC 3339).
    #[arg(long, default_value = "2026-11-01T00:00:00Z")]
    start: String,
    /// Length of the activity window in days.
    #[arg(long, default_value_t = 28)]
    days: u32,
    /// Share of events delivered late (up to 15 minutes).
    #[arg(long, default_value_t = 0.02)]
    late_fraction: f64,
    /// Share of events delivered twice.
    #[arg(long, default_value_t = 0.005)]
    duplicate_fraction: f64,
    /// Share of lines replaced by malformed events.
    #[arg(long, default_value_t = 0.0)]
    invalid_fraction: f64,
    /// Where to write the NDJSON events; `-` for stdout.
    #[arg(long, short, default_value = "-")]
    output: String,
    /// Also write the outcomes CSV (`lead_id,converted,converted_at`).
    #[arg(long)]
    outcomes: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(a) => cmd_replay(a),
        Command::Gen(a) => cmd_gen(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("leadscore: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn open_input(path: &str) -> Result<Box<dyn io::BufRead>> {
    if path == "-" {
        Ok(Box::new(BufReader::with_capacity(1 << 20, io::stdin())))
    } else {
        let f = File::open(path).with_context(|| format!("cannot open input file {path}"))?;
        Ok(Box::new(BufReader::with_capacity(1 << 20, f)))
    }
}

fn create(path: &std::path::Path) -> Result<BufWriter<File>> {
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(BufWriter::with_capacity(1 << 20, f))
}

fn cmd_replay(a: ReplayArgs) -> Result<ExitCode> {
    let rules = Rules::load(&a.rules)?;
    let engine = Engine::new(Arc::new(rules));
    let input = open_input(&a.input)?;
    let started = Instant::now();
    let stdout = BufWriter::with_capacity(1 << 20, io::stdout().lock());
    let progress = !a.quiet && io::stderr().is_terminal();
    let (leads, stats) = replay::replay(&engine, input, stdout, io::stderr().lock(), progress)
        .context("replay failed")?;
    if let Some(path) = &a.scores {
        replay::write_scores(&engine, &leads, create(path)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if !a.quiet {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "replay: {stats} ({:.2}s, {:.0} events/s, rules {})",
            secs,
            stats.read as f64 / secs.max(1e-9),
            engine.rules().version
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_gen(a: GenArgs) -> Result<ExitCode> {
    let start = parse_rfc3339(&a.start).with_context(|| {
        format!(
            "--start {}: not an RFC 3339 timestamp (e.g. 2026-11-01T00:00:00Z)",
            a.start
        )
    })?;
    for (name, v) in [
        ("--late-fraction", a.late_fraction),
        ("--duplicate-fraction", a.duplicate_fraction),
        ("--invalid-fraction", a.invalid_fraction),
    ] {
        anyhow::ensure!(
            (0.0..=1.0).contains(&v),
            "{name} must be within 0..1, got {v}"
        );
    }
    let cfg = GenConfig {
        seed: a.seed,
        leads: a.leads,
        start,
        days: a.days,
        late_fraction: a.late_fraction,
        duplicate_fraction: a.duplicate_fraction,
        invalid_fraction: a.invalid_fraction,
    };
    let started = Instant::now();
    let g = gen::generate(&cfg);
    if a.output == "-" {
        gen::write_ndjson(
            &g.records,
            BufWriter::with_capacity(1 << 20, io::stdout().lock()),
        )?;
    } else {
        let p = PathBuf::from(&a.output);
        gen::write_ndjson(&g.records, create(&p)?)?;
    }
    if let Some(p) = &a.outcomes {
        gen::write_outcomes(&g.outcomes, create(p)?)?;
    }
    let converted = g.outcomes.iter().filter(|o| o.converted).count();
    eprintln!(
        "gen: {} events for {} leads ({} converted) in {:.2}s",
        g.records.len(),
        g.outcomes.len(),
        converted,
        started.elapsed().as_secs_f64()
    );
    io::stderr().flush().ok();
    Ok(ExitCode::SUCCESS)
}
