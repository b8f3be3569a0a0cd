//! `leadscore backtest`: the exact streaming decisions over a history, for several rules files
//! and thresholds in one pass, measured against what sales knows (the outcomes CSV).
//!
//! The pass decodes each line once and scores it once per rules file ([`Engine::step`]); each
//! threshold then has its own [`Gate`] — the same qualification code the service runs — with
//! its own armed flag and sequence per lead. A threshold's alerts are therefore exactly the
//! `sales_ready` events of `replay` with that threshold (tests/backtest.rs checks it).

mod evaluate;
mod plot;
mod report;

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::{Crossing, Engine, Gate, Step};
use crate::replay::{decode_line, Line};
use crate::rules::Rules;
use crate::state::LeadState;
use crate::time::Micros;

pub use evaluate::{evaluate, mark_targets, Targets, VariantResult, Window};
pub use plot::write_png;
pub use report::{write_json, write_table, ReportJson};

/// One rules file, under the name the report gives it.
#[derive(Debug, Clone)]
pub struct RulesFile {
    /// Label: the file's stem (made unique by the caller).
    pub label: String,
    /// The compiled rules.
    pub rules: Arc<Rules>,
}

/// One line of the report: a rules file at one threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Index into the rules files.
    pub file: usize,
    /// `label` or `label@threshold`.
    pub name: String,
    /// Its qualification.
    pub gate: Gate,
}

/// The variants: each file at its own threshold, or at every threshold of the sweep. In a
/// sweep `rearm_below` keeps its ratio to `sales_ready` (for a positive threshold; else its
/// distance), or is −∞ with `no_rearm` (each lead alerts at most once).
pub fn variants(files: &[RulesFile], sweep: Option<&[f64]>, no_rearm: bool) -> Vec<Variant> {
    let mut out = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let own = Gate::of(&f.rules);
        let thresholds: Vec<Option<f64>> = match sweep {
            None => vec![None],
            Some(ts) => ts.iter().copied().map(Some).collect(),
        };
        for t in thresholds {
            let mut gate = own;
            let mut name = f.label.clone();
            if let Some(t) = t {
                gate.sales_ready = t;
                gate.rearm_below = sweep_rearm(&own, t);
                name = format!("{}@{}", f.label, t);
            }
            if no_rearm {
                gate.rearm_below = f64::NEG_INFINITY;
            }
            out.push(Variant {
                file: i,
                name,
                gate,
            });
        }
    }
    out
}

/// `rearm_below` for threshold `t`, keeping the file's hysteresis in proportion.
pub fn sweep_rearm(own: &Gate, t: f64) -> f64 {
    if own.sales_ready > 0.0 {
        t * (own.rearm_below / own.sales_ready)
    } else {
        t - (own.sales_ready - own.rearm_below)
    }
}

/// Parses `FROM:TO:STEP` (inclusive of TO when a step lands on it).
pub fn parse_thresholds(s: &str) -> Result<Vec<f64>, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let nums: Result<Vec<f64>, _> = parts.iter().map(|p| p.trim().parse::<f64>()).collect();
    let fix = "write FROM:TO:STEP, e.g. 40:160:10";
    match nums.as_deref() {
        Ok([from, to, step]) if step.is_finite() && *step > 0.0 && from <= to => {
            let n = ((to - from) / step + 1e-9).floor() as usize + 1;
            if n > 200 {
                return Err(format!("`{s}` gives {n} thresholds (at most 200); {fix}"));
            }
            Ok((0..n).map(|i| from + i as f64 * step).collect())
        }
        _ => Err(format!("`{s}` is not a threshold range; {fix}")),
    }
}

/// An alert a variant raised.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Lead ordinal (index into [`Pass::lead_ids`]).
    pub lead: u32,
    /// The lead's qualification count under this variant.
    pub sequence: u32,
    /// Lead clock at the crossing (`qualified_at`).
    pub at: Micros,
    /// Score after the triggering event.
    pub score: f64,
    /// The triggering event.
    pub trigger: Box<str>,
}

/// What one pass over a history produced.
#[derive(Debug, Default)]
pub struct Pass {
    /// Lead ids by ordinal.
    pub lead_ids: Vec<Box<str>>,
    /// Alerts per variant, in emission order.
    pub alerts: Vec<Vec<Alert>>,
    /// Lines read, invalid lines, verdict lines.
    pub lines: u64,
    /// Lines that were neither an event nor a verdict.
    pub invalid: u64,
    /// Earliest and latest event time.
    pub span: Option<(Micros, Micros)>,
}

/// The per-rules-file state of a pass: the engine, a state per lead, and per variant of the
/// file an armed flag and a sequence per lead.
struct FileRun {
    engine: Engine,
    states: Vec<LeadState>,
    /// Variants of this file: (global index, gate).
    gates: Vec<(usize, Gate)>,
    /// `armed[lead * gates + g]`, `sequence[...]` alike.
    armed: Vec<bool>,
    sequence: Vec<u32>,
}

impl FileRun {
    fn ensure(&mut self, lead: usize) {
        if lead >= self.states.len() {
            self.states.resize_with(lead + 1, LeadState::new);
            let n = (lead + 1) * self.gates.len();
            self.armed.resize(n, true);
            self.sequence.resize(n, 0);
        }
    }

    /// Scores the event once, then runs every gate of the file on the score move.
    fn apply(&mut self, lead: u32, ev: &crate::event::Event<'_>, alerts: &mut [Vec<Alert>]) {
        self.ensure(lead as usize);
        let st = &mut self.states[lead as usize];
        let Step::Scored { before, after } = self.engine.step(st, ev) else {
            return;
        };
        let suppressed = st.suppressed_at(st.clock);
        let base = lead as usize * self.gates.len();
        for (g, (variant, gate)) in self.gates.iter().enumerate() {
            let armed = &mut self.armed[base + g];
            if gate.cross(armed, before, after, st.fit, suppressed) == Crossing::Fired {
                self.sequence[base + g] += 1;
                alerts[*variant].push(Alert {
                    lead,
                    sequence: self.sequence[base + g],
                    at: st.clock,
                    score: after,
                    trigger: ev.event_id.as_ref().into(),
                });
            }
        }
    }
}

/// Lead id → ordinal, in order of first appearance.
#[derive(Default)]
struct Ordinals {
    map: HashMap<Box<str>, u32, ahash::RandomState>,
}

impl Ordinals {
    fn of(&mut self, id: &str, ids: &mut Vec<Box<str>>) -> u32 {
        if let Some(&o) = self.map.get(id) {
            return o;
        }
        let o = ids.len() as u32;
        ids.push(id.into());
        self.map.insert(id.into(), o);
        o
    }
}

/// Runs the history once for every variant; `progress` is called every few seconds with
/// the lines read so far.
pub fn run(
    files: &[RulesFile],
    variants: &[Variant],
    mut input: impl BufRead,
    mut progress: impl FnMut(u64),
) -> std::io::Result<Pass> {
    let mut runs = file_runs(files, variants);
    let mut pass = Pass {
        alerts: vec![Vec::new(); variants.len()],
        ..Pass::default()
    };
    let mut ordinals = Ordinals::default();
    let mut line = Vec::with_capacity(512);
    let mut last_progress = Instant::now();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        pass.lines += 1;
        apply_line(&line, &mut runs, &mut pass, &mut ordinals);
        if pass.lines % 65_536 == 0 && last_progress.elapsed() >= Duration::from_secs(5) {
            last_progress = Instant::now();
            progress(pass.lines);
        }
    }
    Ok(pass)
}

/// One [`FileRun`] per rules file, each with the gates of its variants.
fn file_runs(files: &[RulesFile], variants: &[Variant]) -> Vec<FileRun> {
    (files.iter().enumerate())
        .map(|(i, f)| FileRun {
            engine: Engine::new(f.rules.clone()),
            states: Vec::new(),
            gates: (variants.iter().enumerate())
                .filter(|(_, v)| v.file == i)
                .map(|(vi, v)| (vi, v.gate))
                .collect(),
            armed: Vec::new(),
            sequence: Vec::new(),
        })
        .collect()
}

/// Decodes one history line and applies it to every rules file.
fn apply_line(line: &[u8], runs: &mut [FileRun], pass: &mut Pass, ordinals: &mut Ordinals) {
    match decode_line(line) {
        Err(_) => pass.invalid += 1,
        Ok(Line::Verdict(v)) => {
            let lead = ordinals.of(&v.lead_id, &mut pass.lead_ids);
            for r in runs {
                r.ensure(lead as usize);
                r.engine.apply_verdict(&mut r.states[lead as usize], &v);
            }
        }
        Ok(Line::Event(ev)) => {
            let lead = ordinals.of(&ev.lead_id, &mut pass.lead_ids);
            pass.span = Some(match pass.span {
                None => (ev.ts, ev.ts),
                Some((a, b)) => (a.min(ev.ts), b.max(ev.ts)),
            });
            for r in runs {
                r.apply(lead, &ev, &mut pass.alerts);
            }
        }
    }
}
