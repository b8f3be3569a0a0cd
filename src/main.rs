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
use leadscore::time::parse_rfc3339;

mod cli;

/// Real-time, explainable lead scoring on a Kafka event stream.
#[derive(Parser)]
#[command(name = "leadscore", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Kafka service (settings: --config FILE and LEADSCORE_* variables; docs/CONFIG.md).
    Run(RunArgs),
    /// Score an NDJSON event file offline with the exact streaming semantics.
    Replay(ReplayArgs),
    /// Generate a realistic synthetic event stream (NDJSON or to Kafka) and its outcomes.
    Gen(GenArgs),
    /// Manage Kafka topics.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Print sales_ready alerts from the output topic as they arrive.
    Watch(WatchArgs),
    /// Learn the points of a rules file from who became a customer (predictive scoring).
    Train(Box<TrainArgs>),
    /// What-if on history: alerts, precision, recall and lead time of rules files and
    /// thresholds, with the exact streaming semantics, in one pass (docs/TUNING.md).
    Backtest(Box<cli::backtest::BacktestArgs>),
    /// Sales verdicts topic tools.
    #[command(subcommand)]
    Outcomes(cli::outcomes::OutcomesCommand),
    /// Erase one lead's data: publishes a `forget` command that the owning instance applies
    /// (state, changelog and store; docs/SPEC.md §7).
    Forget(ForgetArgs),
}

#[derive(Args)]
struct ForgetArgs {
    /// The lead id to erase.
    #[arg(long)]
    lead: String,
    /// The service's config file (brokers, input topics, [kafka] security settings); environment
    /// variables override it, as for `run`.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("data").required(true).args(["events", "table"])))]
#[command(group(clap::ArgGroup::new("target").args(["target_probability", "target_rate"])))]
struct TrainArgs {
    /// Event history (NDJSON, SPEC §2); needs --outcomes.
    #[arg(long, visible_alias = "history", requires = "outcomes")]
    events: Option<PathBuf>,
    /// Outcomes CSV: `lead_id,converted[,converted_at]`.
    #[arg(long)]
    outcomes: Option<PathBuf>,
    /// A flat lead table (CSV, one row per lead) instead of an event history; needs --label.
    #[arg(long, requires = "label", conflicts_with_all = ["events", "outcomes"])]
    table: Option<PathBuf>,
    /// Label column of --table (1/0, true/false, yes/no).
    #[arg(long)]
    label: Option<String>,
    /// Lead id column of --table (default: row-<n>).
    #[arg(long)]
    id_column: Option<String>,
    /// Columns of --table to leave out (leakage, identifiers); comma-separated, `Prefix*` allowed.
    #[arg(long, value_delimiter = ',')]
    exclude: Vec<String>,
    /// Cell values of --table meaning "missing", besides the empty cell (case-insensitive).
    #[arg(long, value_delimiter = ',', default_value = "Select,NA,N/A,null")]
    missing: Vec<String>,
    /// Base rules: threshold (by scaling), bot filter and decay default are kept; compared side
    /// by side in the report.
    #[arg(long, visible_aliases = ["base", "rules"])]
    base_rules: Option<PathBuf>,
    /// Where to write the learned rules file.
    #[arg(long, short, visible_alias = "out")]
    output: PathBuf,
    /// Qualify at this conversion probability (default 0.5).
    #[arg(long)]
    target_probability: Option<f64>,
    /// Qualify this share of leads instead (e.g. 0.05).
    #[arg(long)]
    target_rate: Option<f64>,
    /// Also write the report as JSON.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Also draw ROC and calibration curves (PNG).
    #[arg(long, visible_alias = "png")]
    plot: Option<PathBuf>,
    /// Also write per-lead predictions (CSV: lead_id,split,converted,score,probability).
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// Share of leads held out for the report.
    #[arg(long, default_value_t = 0.25)]
    holdout: f64,
    /// Cross-validation folds.
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Seed of the split and the bootstrap.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Half-life grid for engagement rules.
    #[arg(long, value_delimiter = ',', default_value = "1d,7d,30d,never")]
    half_lives: Vec<String>,
    /// Penalty grid (L2 strength on standardised features).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.01,0.1,1,10,100,1000,10000,100000"
    )]
    lambdas: Vec<f64>,
    /// Minimum leads a candidate rule must touch.
    #[arg(long, default_value_t = 30)]
    min_support: usize,
    /// Most values per profile field, URL sections, campaigns and forms.
    #[arg(long, default_value_t = 30)]
    max_values: usize,
    /// Quantile thresholds per numeric profile field.
    #[arg(long, default_value_t = 10)]
    bins: usize,
    /// Cap per engagement rule, lead and UTC day (0 = none).
    #[arg(long, default_value_t = 5)]
    max_per_day: u32,
    /// Most rules in the learned file: beyond it the least important are dropped and the rest
    /// refitted (0 = no limit).
    #[arg(long, default_value_t = 100)]
    max_rules: usize,
    /// Points that double the odds of converting.
    #[arg(long, default_value_t = 20.0)]
    points_to_double: f64,
    /// `name` of the learned rules.
    #[arg(long, default_value = "predictive")]
    name: String,
    /// Bootstrap resamples for the AUC interval.
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
}

#[derive(Args)]
struct RunArgs {
    /// Config file (TOML); environment variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Validate the configuration and the rules, then exit.
    #[arg(long)]
    check: bool,
}

#[derive(Subcommand)]
enum TopicsCommand {
    /// Create topics (`name` or `name:partitions`) that do not exist yet.
    Create(TopicsArgs),
}

#[derive(Args)]
struct TopicsArgs {
    /// Bootstrap servers.
    #[arg(long, env = "LEADSCORE_BROKERS", default_value = "localhost:9092")]
    brokers: String,
    /// Partitions for topics given without `:N`.
    #[arg(long, default_value_t = 8)]
    partitions: i32,
    /// Topics, as `name` or `name:partitions`.
    #[arg(required = true)]
    topics: Vec<String>,
}

#[derive(Args)]
struct WatchArgs {
    /// Bootstrap servers.
    #[arg(long, env = "LEADSCORE_BROKERS", default_value = "localhost:9092")]
    brokers: String,
    /// The sales_ready topic.
    #[arg(long, env = "LEADSCORE_OUTPUT_TOPIC", default_value = "sales-ready")]
    topic: String,
    /// Stop after this many alerts.
    #[arg(long)]
    max: Option<u64>,
    /// Stop after this long without a new alert (humantime, e.g. 30s).
    #[arg(long)]
    idle_timeout: Option<humantime::Duration>,
    /// Print the raw JSON lines instead of a summary per alert.
    #[arg(long)]
    json: bool,
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
    /// Also write the sales verdicts (SPEC §2b) for every lead as NDJSON, sorted by time.
    #[arg(long)]
    outcome_events: Option<PathBuf>,
    /// Also produce the sales verdicts to this Kafka topic (key = lead_id).
    #[arg(long)]
    outcomes_topic: Option<String>,
    /// Produce to this Kafka topic (key = lead_id) instead of writing NDJSON.
    #[arg(long)]
    topic: Option<String>,
    /// Bootstrap servers for --topic.
    #[arg(long, env = "LEADSCORE_BROKERS", default_value = "localhost:9092")]
    brokers: String,
    /// Messages per second when producing (default: as fast as possible).
    #[arg(long)]
    rate: Option<f64>,
    /// Payload encoding when producing.
    #[arg(long, value_enum, default_value = "json")]
    format: WireFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum WireFormat {
    Json,
    Protobuf,
}

/// Exit code of a panic anywhere (a librdkafka callback thread, the HTTP runtime, a restore
/// thread): the process stops at once instead of living on with a dead thread.
const PANIC_EXIT: i32 = 101;

fn main() -> ExitCode {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if leadscore::service::store::opening_untrusted_file() {
            // redb asserts on some corrupt files; the store turns that panic into an error.
            return;
        }
        default_hook(info);
        eprintln!("leadscore: a thread panicked; exiting with code {PANIC_EXIT}");
        std::process::exit(PANIC_EXIT);
    }));
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(a) => cmd_replay(a),
        Command::Gen(a) => cmd_gen(a),
        Command::Run(a) => cmd_run(a),
        Command::Topics(TopicsCommand::Create(a)) => cmd_topics(a),
        Command::Watch(a) => cmd_watch(a),
        Command::Train(a) => cmd_train(*a),
        Command::Forget(a) => cmd_forget(a),
        Command::Backtest(a) => cli::backtest::run(*a),
        Command::Outcomes(cli::outcomes::OutcomesCommand::Export(a)) => cli::outcomes::export(a),
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
    let rules = leadscore::rules_file::load(&a.rules)?;
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

fn cmd_train(a: TrainArgs) -> Result<ExitCode> {
    let (opt, out) = train_options(a)?;
    let trained = leadscore::train::train(&opt)?;
    write_training(&trained, &out)?;
    Ok(ExitCode::SUCCESS)
}

/// Where `train` writes what.
struct TrainOutputs {
    output: PathBuf,
    report: Option<PathBuf>,
    predictions: Option<PathBuf>,
    plot: Option<PathBuf>,
}

/// Checks the training arguments and turns them into options.
fn train_options(a: TrainArgs) -> Result<(leadscore::train::TrainOptions, TrainOutputs)> {
    use leadscore::train::{self, data::TableSpec, features::CandidateOptions, Source, Target};
    let target = match (a.target_probability, a.target_rate) {
        (_, Some(r)) => {
            anyhow::ensure!(
                r > 0.0 && r < 1.0,
                "--target-rate must be within (0, 1), got {r}"
            );
            Target::Rate(r)
        }
        (p, None) => {
            let p = p.unwrap_or(0.5);
            anyhow::ensure!(
                p > 0.0 && p < 1.0,
                "--target-probability must be within (0, 1), got {p}"
            );
            Target::Probability(p)
        }
    };
    anyhow::ensure!(
        a.holdout > 0.0 && a.holdout < 1.0,
        "--holdout must be within (0, 1), got {}",
        a.holdout
    );
    anyhow::ensure!(a.folds >= 2, "--folds must be at least 2");
    anyhow::ensure!(
        !a.lambdas.is_empty() && a.lambdas.iter().all(|l| *l > 0.0),
        "--lambdas must be positive numbers"
    );
    anyhow::ensure!(
        a.points_to_double > 0.0,
        "--points-to-double must be positive"
    );
    let source = match (a.events, a.outcomes, a.table) {
        (Some(events), Some(outcomes), None) => Source::History { events, outcomes },
        (None, None, Some(path)) => Source::Table(TableSpec {
            path,
            label: a.label.expect("clap requires --label"),
            id_column: a.id_column,
            exclude: a.exclude,
            missing: a.missing,
        }),
        _ => anyhow::bail!("give --events with --outcomes, or --table with --label"),
    };
    let opt = train::TrainOptions {
        source,
        base: a.base_rules,
        target,
        holdout: a.holdout,
        folds: a.folds,
        seed: a.seed,
        half_lives: a.half_lives,
        lambdas: a.lambdas,
        candidates: CandidateOptions {
            min_support: a.min_support,
            max_values: a.max_values,
            bins: a.bins,
            engagement: true,
        },
        max_per_day: (a.max_per_day > 0).then_some(a.max_per_day),
        max_rules: a.max_rules,
        points_to_double: a.points_to_double,
        name: a.name,
        bootstrap: a.bootstrap,
    };
    let out = TrainOutputs {
        output: a.output,
        report: a.report,
        predictions: a.predictions,
        plot: a.plot,
    };
    Ok((opt, out))
}

/// Writes the learned rules, the report, the predictions and the plot.
fn write_training(trained: &leadscore::train::Trained, a: &TrainOutputs) -> Result<()> {
    std::fs::write(&a.output, &trained.rules_text)
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    print!("{}", trained.report.text());
    println!("\nrules written to {}", a.output.display());
    if let Some(path) = &a.report {
        let mut w = create(path)?;
        serde_json::to_writer_pretty(&mut w, &trained.report)?;
        w.flush()?;
        println!("report written to {}", path.display());
    }
    if let Some(path) = &a.predictions {
        let mut w = create(path)?;
        writeln!(w, "lead_id,split,converted,score,probability")?;
        for (id, hold, conv, score, p) in &trained.predictions {
            let split = if *hold { "holdout" } else { "train" };
            writeln!(w, "{id},{split},{},{score},{p}", *conv as u8)?;
        }
        w.flush()?;
        println!("predictions written to {}", path.display());
    }
    if let Some(path) = &a.plot {
        match leadscore::train::plot::write_png(&trained.report, path) {
            Ok(()) => println!("curves drawn to {}", path.display()),
            Err(e) => eprintln!("WARNING: {e:#} (rules and report are written)"),
        }
    }
    Ok(())
}

fn cmd_gen(a: GenArgs) -> Result<ExitCode> {
    let cfg = gen_config(&a)?;
    let started = Instant::now();
    let g = gen::generate(&cfg);
    match &a.topic {
        Some(topic) => produce_generated(&a, topic, &g, started)?,
        None => write_generated(&a, &g, started)?,
    }
    if a.outcome_events.is_some() || a.outcomes_topic.is_some() {
        generated_verdicts(&a, &g)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes and/or produces the generated sales verdicts.
fn generated_verdicts(a: &GenArgs, g: &gen::Generated) -> Result<()> {
    let verdicts = gen::verdicts(g, a.seed);
    if let Some(p) = &a.outcome_events {
        let mut out = create(p)?;
        for v in &verdicts {
            writeln!(out, "{}", v.to_json())?;
        }
        out.flush()?;
        eprintln!("gen: {} sales verdicts in {}", verdicts.len(), p.display());
    }
    if let Some(topic) = &a.outcomes_topic {
        let records = verdicts
            .iter()
            .map(|v| (v.lead_id.clone(), v.to_json().into_bytes()));
        let (sent, _) = leadscore::kafka::produce_all(
            &a.brokers,
            &Default::default(),
            topic,
            records,
            None,
            |n| eprintln!("gen: {n}/{} verdicts sent", verdicts.len()),
        )?;
        eprintln!("gen: {sent} sales verdicts acknowledged on {topic}");
    }
    Ok(())
}

/// Checks the generator arguments.
fn gen_config(a: &GenArgs) -> Result<GenConfig> {
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
    Ok(GenConfig {
        seed: a.seed,
        leads: a.leads,
        start,
        days: a.days,
        late_fraction: a.late_fraction,
        duplicate_fraction: a.duplicate_fraction,
        invalid_fraction: a.invalid_fraction,
    })
}

/// Produces a generated stream to a Kafka topic (JSON or Protobuf), paced when asked.
fn produce_generated(a: &GenArgs, topic: &str, g: &gen::Generated, started: Instant) -> Result<()> {
    if let Some(p) = &a.outcomes {
        gen::write_outcomes(&g.outcomes, create(p)?)?;
    }
    let total = g.records.len();
    eprintln!(
        "gen: producing {total} events for {} leads to {topic} on {}{}",
        g.outcomes.len(),
        a.brokers,
        a.rate.map(|r| format!(" at {r:.0}/s")).unwrap_or_default()
    );
    let format = a.format;
    let records = g.records.iter().map(move |r| {
        let payload = match (format, &r.event) {
            (WireFormat::Protobuf, Some(ev)) => {
                use prost::Message;
                ev.to_proto().encode_to_vec()
            }
            _ => r.json_line().into_bytes(),
        };
        (r.lead_id.clone(), payload)
    });
    let (sent, _) = leadscore::kafka::produce_all(
        &a.brokers,
        &Default::default(),
        topic,
        records,
        a.rate,
        |n| eprintln!("gen: {n}/{total} sent"),
    )?;
    eprintln!(
        "gen: {sent} events acknowledged in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Writes a generated stream as NDJSON (a file or stdout) and its outcomes.
fn write_generated(a: &GenArgs, g: &gen::Generated, started: Instant) -> Result<()> {
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
    Ok(())
}

fn cmd_forget(a: ForgetArgs) -> Result<ExitCode> {
    let cfg = leadscore::config::Config::load(a.config.as_deref())?;
    let topic = cfg
        .input_topics
        .first()
        .context("no input topic configured (input_topics / LEADSCORE_INPUT_TOPICS)")?;
    let producer = leadscore::kafka::command_producer(&cfg.brokers, &cfg.kafka)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (partition, offset) =
        rt.block_on(leadscore::kafka::send_forget(&producer, topic, &a.lead))?;
    println!(
        "forget command published to {topic}/{partition}@{offset}; the instance that owns \
         partition {partition} erases the lead when it reaches that offset \
         (metric leadscore_erasures_total)"
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_run(a: RunArgs) -> Result<ExitCode> {
    let cfg = leadscore::config::Config::load(a.config.as_deref())?;
    if a.check {
        let rules = leadscore::service::check(&cfg)?;
        println!(
            "config OK: rules {} ({} engagement, {} fit rules)\n{}",
            rules.version,
            rules.engagement.len(),
            rules.fit.len(),
            cfg.describe()
        );
        return Ok(ExitCode::SUCCESS);
    }
    leadscore::service::run(cfg)?;
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn cmd_topics(a: TopicsArgs) -> Result<ExitCode> {
    let mut topics = Vec::new();
    for t in &a.topics {
        let (name, parts) = match t.split_once(':') {
            Some((n, p)) => (
                n.to_string(),
                p.parse::<i32>()
                    .ok()
                    .filter(|p| *p > 0)
                    .with_context(|| format!("`{t}`: partitions must be a positive number"))?,
            ),
            None => (t.clone(), a.partitions),
        };
        topics.push((name, parts));
    }
    runtime()?.block_on(leadscore::kafka::ensure_topics(
        &a.brokers,
        &Default::default(),
        &topics,
        &[],
    ))?;
    for (n, p) in &topics {
        eprintln!("topics: {n} ({p} partitions) ready on {}", a.brokers);
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_watch(a: WatchArgs) -> Result<ExitCode> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let consumer: BaseConsumer = leadscore::kafka::client_config(&a.brokers, &Default::default())
        .set(
            "group.id",
            format!("leadscore-watch-{}", std::process::id()),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .context("cannot create Kafka consumer")?;
    consumer
        .subscribe(&[a.topic.as_str()])
        .with_context(|| format!("cannot subscribe to {}", a.topic))?;
    let mut seen = 0u64;
    let mut last = Instant::now();
    let idle: Option<std::time::Duration> = a.idle_timeout.map(Into::into);
    let out = io::stdout();
    loop {
        if a.max.is_some_and(|m| seen >= m) || idle.is_some_and(|d| last.elapsed() >= d) {
            break;
        }
        match consumer.poll(std::time::Duration::from_millis(200)) {
            None => continue,
            Some(Err(e)) => eprintln!("watch: {e}"),
            Some(Ok(m)) => {
                last = Instant::now();
                seen += 1;
                let text = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
                let mut o = out.lock();
                if a.json {
                    writeln!(o, "{text}")?;
                    continue;
                }
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(v) => {
                        let signals: Vec<String> = v["top_signals"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .map(|s| {
                                        format!(
                                            "{} {:+.1}",
                                            s["rule"].as_str().unwrap_or("?"),
                                            s["points"].as_f64().unwrap_or(0.0)
                                        )
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        writeln!(
                            o,
                            "SALES-READY {:<10} #{} score {:>6.1} (fit {:>5.1}, engagement {:>6.1}) at {}  because: {}",
                            v["lead_id"].as_str().unwrap_or("?"),
                            v["sequence"],
                            v["score"].as_f64().unwrap_or(0.0),
                            v["fit_score"].as_f64().unwrap_or(0.0),
                            v["engagement_score"].as_f64().unwrap_or(0.0),
                            v["qualified_at"].as_str().unwrap_or("?"),
                            signals.join(", ")
                        )?;
                    }
                    Err(_) => writeln!(o, "(non-JSON sales_ready payload, {} bytes)", text.len())?,
                }
            }
        }
    }
    eprintln!("watch: {seen} alerts");
    Ok(ExitCode::SUCCESS)
}
