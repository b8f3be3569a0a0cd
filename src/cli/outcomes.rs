//! `leadscore outcomes export`: the sales verdicts topic as the outcomes CSV that `train` and
//! `backtest` read.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::Offset;

use leadscore::config::Config;
use leadscore::service::restore::read_partition;
use leadscore::train::data::write_outcomes;
use leadscore::verdict::{self, final_outcomes};

/// `leadscore outcomes ...`.
#[derive(Subcommand)]
pub enum OutcomesCommand {
    /// Read the verdicts topic from the beginning to its current end and write
    /// `lead_id,converted,converted_at` (won = converted at the first `won`; lost or rejected
    /// = not converted; accepted alone = still open, left out).
    Export(ExportArgs),
}

/// Arguments of `outcomes export`.
#[derive(Args)]
pub struct ExportArgs {
    /// The service's config file (brokers, outcomes_topic, [kafka] security settings);
    /// environment variables override it, as for `run`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Bootstrap servers (overrides the config).
    #[arg(long)]
    brokers: Option<String>,
    /// The verdicts topic (default: the config's outcomes_topic, else `lead-outcomes`).
    #[arg(long)]
    topic: Option<String>,
    /// Where to write the CSV.
    #[arg(long, short)]
    output: PathBuf,
    /// Count leads with only `accepted` as not converted instead of leaving them out.
    #[arg(long)]
    open_as_lost: bool,
}

/// Runs `leadscore outcomes export`.
pub fn export(a: ExportArgs) -> Result<ExitCode> {
    let mut cfg = Config::load(a.config.as_deref())?;
    if let Some(b) = &a.brokers {
        cfg.brokers = b.clone();
    }
    let topic = (a.topic.clone())
        .or_else(|| cfg.outcomes_topic.clone())
        .unwrap_or_else(|| "lead-outcomes".into());
    let partitions = partition_count(&cfg, &topic)?;
    let never = AtomicBool::new(false);
    let (mut verdicts, mut invalid) = (Vec::new(), 0u64);
    for p in 0..partitions {
        read_partition(&cfg, &topic, p, Offset::Beginning, None, &never, |m| {
            let payload = m.payload().unwrap_or_default();
            match verdict::decode(payload, m.key(), &cfg.limits) {
                Ok(v) => verdicts.push(v),
                Err(_) => invalid += 1,
            }
        })?;
    }
    let rows = final_outcomes(&verdicts, a.open_as_lost);
    let f = std::fs::File::create(&a.output)
        .with_context(|| format!("cannot create {}", a.output.display()))?;
    let mut out = BufWriter::new(f);
    write_outcomes(
        rows.iter().map(|(id, (c, at))| (id.as_str(), *c, *at)),
        &mut out,
    )?;
    out.flush()?;
    let converted = rows.values().filter(|(c, _)| *c).count();
    eprintln!(
        "outcomes export: {} verdicts from {topic} ({partitions} partitions), {} leads ({converted} converted) to {}{}",
        verdicts.len(),
        rows.len(),
        a.output.display(),
        if invalid > 0 {
            format!("; {invalid} invalid messages skipped (the service dead-letters them)")
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn partition_count(cfg: &Config, topic: &str) -> Result<i32> {
    let consumer: BaseConsumer = leadscore::kafka::client_config(&cfg.brokers, &cfg.kafka)
        .create()
        .context("cannot create a Kafka client")?;
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .with_context(|| format!("cannot read the metadata of {topic} from {}", cfg.brokers))?;
    let t = md.topics().first().context("no metadata")?;
    if t.error().is_some() || t.partitions().is_empty() {
        anyhow::bail!(
            "topic {topic} does not exist on {}\n  fix: create it with `leadscore topics create {topic}:<partitions of the input>`",
            cfg.brokers
        );
    }
    Ok(t.partitions().len() as i32)
}
