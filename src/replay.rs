//! `leadscore replay`: score an NDJSON event file offline with the exact streaming semantics.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use crate::engine::{Engine, Outcome};
use crate::event::{decode_json, Event, InvalidEvent, Limits};
use crate::leads::LeadTable;
use crate::verdict::{self, Verdict};

/// One line of a replayed history: a lead event, or a sales verdict (SPEC §2b).
#[derive(Debug)]
pub enum Line<'a> {
    /// A lead event.
    Event(Event<'a>),
    /// A sales verdict.
    Verdict(Verdict),
}

/// Decodes a history line: an event, else a verdict (a line with `"outcome"` and no event
/// `type`); the error is the event's unless the line reads as a verdict attempt.
pub fn decode_line(line: &[u8]) -> Result<Line<'_>, InvalidEvent> {
    match decode_json(line) {
        Ok(ev) => Ok(Line::Event(ev)),
        Err(e) => match verdict::decode_json(line, &Limits::default()) {
            Ok(v) => Ok(Line::Verdict(v)),
            Err(ve) if is_verdict_attempt(line) => Err(ve),
            Err(_) => Err(e),
        },
    }
}

/// Does a line that is no valid event mean to be a verdict (`"outcome"` or its type)?
fn is_verdict_attempt(line: &[u8]) -> bool {
    let has = |needle: &[u8]| line.windows(needle.len()).any(|w| w == needle);
    has(b"\"outcome\"") || has(verdict::VERDICT_TYPE.as_bytes())
}

/// Counters printed at the end of a replay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Non-blank lines read.
    pub read: u64,
    /// Events scored.
    pub scored: u64,
    /// Bot activity ignored.
    pub bot: u64,
    /// Duplicates ignored.
    pub duplicate: u64,
    /// Invalid lines reported.
    pub invalid: u64,
    /// Leads with state.
    pub leads: u64,
    /// `sales_ready` events emitted.
    pub qualifications: u64,
    /// Crossings withheld after a sales rejection.
    pub withheld: u64,
    /// Sales verdict lines applied (SPEC §2b).
    pub verdicts: u64,
}

impl std::fmt::Display for ReplayStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "read {}, scored {}, bot {}, duplicate {}, invalid {}, leads {}, qualifications {}, withheld {}, verdicts {}",
            self.read,
            self.scored,
            self.bot,
            self.duplicate,
            self.invalid,
            self.leads,
            self.qualifications,
            self.withheld,
            self.verdicts
        )
    }
}

/// Replays `input` through the engine: `sales_ready` NDJSON to `out` in emission order, one
/// `line N: reason` per invalid line to `diag`, progress every few seconds to `diag` when
/// `progress` is set. Returns the final per-lead states and the counters.
pub fn replay(
    engine: &Engine,
    mut input: impl BufRead,
    mut out: impl Write,
    mut diag: impl Write,
    progress: bool,
) -> std::io::Result<(LeadTable, ReplayStats)> {
    let mut leads = LeadTable::default();
    let mut stats = ReplayStats::default();
    let mut line = Vec::with_capacity(512);
    let mut line_no: u64 = 0;
    let started = Instant::now();
    let mut last_progress = started;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        line_no += 1;
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        stats.read += 1;
        let ev = match decode_line(&line) {
            Ok(Line::Event(ev)) => ev,
            Ok(Line::Verdict(v)) => {
                stats.verdicts += 1;
                engine.apply_verdict(leads.get_or_insert(&v.lead_id), &v);
                continue;
            }
            Err(e) => {
                stats.invalid += 1;
                writeln!(diag, "line {line_no}: {e}")?;
                continue;
            }
        };
        match engine.apply_to(&mut leads, &ev) {
            Outcome::Scored(sr) => {
                stats.scored += 1;
                if let Some(sr) = sr {
                    stats.qualifications += 1;
                    out.write_all(sr.to_json().as_bytes())?;
                    out.write_all(b"\n")?;
                }
            }
            Outcome::Withheld => {
                stats.scored += 1;
                stats.withheld += 1;
            }
            Outcome::Bot => stats.bot += 1,
            Outcome::Duplicate => stats.duplicate += 1,
        }
        if progress && line_no % 65_536 == 0 && last_progress.elapsed() >= Duration::from_secs(5) {
            last_progress = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            writeln!(
                diag,
                "replay: {} lines, {:.0} events/s, {} leads, {} qualifications",
                line_no,
                stats.read as f64 / secs,
                leads.len(),
                stats.qualifications
            )?;
        }
    }
    stats.leads = leads.len() as u64;
    out.flush()?;
    Ok((leads, stats))
}

/// Writes one `{"lead_id","score","fit_score","engagement_score","as_of"}` line per lead,
/// sorted by lead id.
pub fn write_scores(
    engine: &Engine,
    leads: &LeadTable,
    mut out: impl Write,
) -> std::io::Result<()> {
    for lead in leads.sorted() {
        let s = engine.lead_score(&lead.id, &lead.state);
        serde_json::to_writer(&mut out, &s)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}
