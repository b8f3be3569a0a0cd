//! The scoring engine (SPEC §4): pure, deterministic, no I/O. Given the rules, a lead's state
//! and one validated event, it updates the state and says whether the lead became sales-ready.
//! `replay` and the Kafka service both call exactly this code.

use std::sync::Arc;

use crate::event::{Event, EventType, FieldValue};
use crate::leads::{LeadTable, Slot};
use crate::output::{LeadScore, SalesReady, Signal};
use crate::rules::{url_path, Rules};
use crate::state::{
    event_id_hash, LeadState, ProfileField, VerdictRecord, CAP_WINDOW_DAYS, MAX_VERDICTS,
};
use crate::time::{decay_factor, format_rfc3339, utc_day, Micros};
use crate::verdict::{SalesOutcome, Verdict};

/// How many rules `top_signals` lists at most.
pub const TOP_SIGNALS: usize = 5;

/// What applying one event did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Scored; `Some` when the lead crossed the threshold.
    Scored(Option<Box<SalesReady>>),
    /// Bot activity: ignored (SPEC §4, bots).
    Bot,
    /// Event id among the lead's last 16 scored: ignored (SPEC §4, duplicates).
    Duplicate,
    /// Scored and crossed the threshold, but the alert is withheld: sales rejected the lead
    /// less than `suppress_after_rejection` ago (SPEC §4). The lead stays armed.
    Withheld,
}

/// What one event did to a lead's score, before qualification.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// Scored: the score before and after the event.
    Scored {
        /// Score before.
        before: f64,
        /// Score after.
        after: f64,
    },
    /// Bot activity: ignored.
    Bot,
    /// A duplicate: ignored.
    Duplicate,
}

/// What a score move did at the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossing {
    /// No alert.
    None,
    /// An alert: the lead is disarmed.
    Fired,
    /// Would have fired, withheld by a rejection; the lead stays armed.
    Withheld,
}

/// Qualification with hysteresis (SPEC §4): the one definition of when a lead's score move
/// raises an alert. `backtest` runs one per threshold over the same scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gate {
    /// Alert at or above this score.
    pub sales_ready: f64,
    /// Re-arm when the score is below this (before or after an event).
    pub rearm_below: f64,
    /// Alert only with at least this fit score.
    pub min_fit: f64,
}

impl Gate {
    /// The gate of a rules file.
    pub fn of(rules: &Rules) -> Self {
        Gate {
            sales_ready: rules.sales_ready,
            rearm_below: rules.rearm_below,
            min_fit: rules.min_fit,
        }
    }

    /// Moves `armed` for a score move from `before` to `after` with fit `fit`; `suppressed`
    /// withholds a crossing without disarming.
    #[inline]
    pub fn cross(
        &self,
        armed: &mut bool,
        before: f64,
        after: f64,
        fit: f64,
        suppressed: bool,
    ) -> Crossing {
        if !*armed && (before < self.rearm_below || after < self.rearm_below) {
            *armed = true;
        }
        if !(*armed && after >= self.sales_ready && fit >= self.min_fit) {
            Crossing::None
        } else if suppressed {
            Crossing::Withheld
        } else {
            *armed = false;
            Crossing::Fired
        }
    }
}

/// Events whose leads [`Engine::apply_batch`] looks up and prefetches together.
pub const PREFETCH_BATCH: usize = 16;

/// What applying a verdict did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerdictOutcome {
    /// Kept in the lead's state; for a rejection, the top signal of the lead's last alert.
    Recorded {
        /// The rule a rejection is charged to, if the lead alerted before.
        rejected_signal: Option<Box<str>>,
    },
    /// The same verdict (time, outcome, alert) is already kept: ignored.
    Duplicate,
}

/// The scoring engine for one set of rules.
#[derive(Debug, Clone)]
pub struct Engine {
    rules: Arc<Rules>,
    gate: Gate,
}

impl Engine {
    /// An engine for these rules.
    pub fn new(rules: Arc<Rules>) -> Self {
        let gate = Gate::of(&rules);
        Engine { rules, gate }
    }

    /// The rules in force.
    pub fn rules(&self) -> &Arc<Rules> {
        &self.rules
    }

    /// Applies one event to its lead's state.
    pub fn apply(&self, st: &mut LeadState, ev: &Event<'_>) -> Outcome {
        let step = self.step(st, ev);
        self.qualify(st, ev, step)
    }

    /// Applies one event to its lead in a table; a lead that only bots have touched gets no
    /// state (the bot check runs once, before the lookup).
    pub fn apply_to(&self, leads: &mut LeadTable, ev: &Event<'_>) -> Outcome {
        self.apply_located(leads, None, ev)
    }

    /// [`Engine::apply_to`] with the lead's slot when [`LeadTable::prefetch`] found it.
    #[inline]
    fn apply_located(&self, leads: &mut LeadTable, slot: Option<Slot>, ev: &Event<'_>) -> Outcome {
        if self.rules.bot_filter.is_bot(ev) {
            return Outcome::Bot;
        }
        let st = match slot {
            Some(slot) => leads.get_or_insert_at(slot, &ev.lead_id),
            None => leads.get_or_insert(&ev.lead_id),
        };
        let step = self.update(st, ev);
        self.qualify(st, ev, step)
    }

    /// Applies events in order to their leads, exactly as [`Engine::apply_to`] one by one,
    /// calling `each` with every event's index and outcome. The leads of every
    /// [`PREFETCH_BATCH`] events are looked up first and their states prefetched together, so
    /// their loads from memory overlap instead of following one another.
    pub fn apply_batch(
        &self,
        leads: &mut LeadTable,
        events: &[Event<'_>],
        mut each: impl FnMut(usize, Outcome),
    ) {
        let mut slots = Vec::with_capacity(PREFETCH_BATCH);
        for (c, chunk) in events.chunks(PREFETCH_BATCH).enumerate() {
            slots.clear();
            slots.extend(chunk.iter().map(|ev| leads.prefetch(&ev.lead_id)));
            for (i, (ev, slot)) in chunk.iter().zip(&slots).enumerate() {
                each(
                    c * PREFETCH_BATCH + i,
                    self.apply_located(leads, Some(*slot), ev),
                );
            }
        }
    }

    /// Scores one event without qualifying: the score move that [`Gate::cross`] judges.
    #[inline]
    pub fn step(&self, st: &mut LeadState, ev: &Event<'_>) -> Step {
        if self.rules.bot_filter.is_bot(ev) {
            return Step::Bot;
        }
        self.update(st, ev)
    }

    /// SPEC §4 for an event that is not bot activity: duplicate check, lead clock, engagement
    /// rules, profile and fit. The steps are `#[inline]`: this is the per-event hot path
    /// (`cargo bench --bench engine`).
    #[inline]
    fn update(&self, st: &mut LeadState, ev: &Event<'_>) -> Step {
        let rules = &*self.rules;
        let id_hash = event_id_hash(&ev.event_id);
        if st.seen(id_hash) {
            return Step::Duplicate;
        }
        if st.clock().is_none() {
            // A new lead: fit rules on missing fields already hold.
            st.fit = rules.fit_score(|f| st.profile_value(f));
        }
        let clock = advance_clock(rules, st, ev.ts);
        st.clock = clock;
        let before = st.score();
        apply_engagement(rules, st, ev, clock);
        if ev.kind == EventType::FormConversion
            && !ev.fields.is_empty()
            && update_profile(rules, st, ev)
        {
            st.fit = rules.fit_score(|f| st.profile_value(f));
        }
        st.remember(id_hash);
        Step::Scored {
            before,
            after: st.score(),
        }
    }

    /// Qualification (SPEC §4): the gate of the rules, then the alert.
    #[inline]
    fn qualify(&self, st: &mut LeadState, ev: &Event<'_>, step: Step) -> Outcome {
        let (before, after) = match step {
            Step::Bot => return Outcome::Bot,
            Step::Duplicate => return Outcome::Duplicate,
            Step::Scored { before, after } => (before, after),
        };
        let suppressed = st.suppressed_at(st.clock);
        match self
            .gate
            .cross(&mut st.armed, before, after, st.fit, suppressed)
        {
            Crossing::None => Outcome::Scored(None),
            Crossing::Withheld => Outcome::Withheld,
            Crossing::Fired => {
                st.sequence += 1;
                let sr = self.sales_ready(&ev.lead_id, st, &ev.event_id);
                if let Some(top) = sr.top_signals.first() {
                    st.feedback_mut().alert_signal = Some(top.rule.as_str().into());
                }
                Outcome::Scored(Some(Box::new(sr)))
            }
        }
    }

    /// Keeps a sales verdict in the lead's state (SPEC §4, sales verdicts): the newest
    /// [`MAX_VERDICTS`], an identical one once; a rejection starts the suppression period.
    /// A verdict neither moves the lead clock nor changes the score.
    pub fn apply_verdict(&self, st: &mut LeadState, v: &Verdict) -> VerdictOutcome {
        let record = VerdictRecord::of(v);
        let suppress = self.rules.suppress_after_rejection;
        let f = st.feedback_mut();
        if f.verdicts.contains(&record) {
            return VerdictOutcome::Duplicate;
        }
        if f.verdicts.len() == MAX_VERDICTS {
            f.verdicts.remove(0);
        }
        f.verdicts.push(record);
        if v.outcome != SalesOutcome::Rejected {
            return VerdictOutcome::Recorded {
                rejected_signal: None,
            };
        }
        if let Some(period) = suppress {
            let until = v.ts.saturating_add(period);
            f.suppressed_until = Some(f.suppressed_until.map_or(until, |u| u.max(until)));
        }
        VerdictOutcome::Recorded {
            rejected_signal: f.alert_signal.clone(),
        }
    }

    fn sales_ready(&self, lead_id: &str, st: &LeadState, trigger: &str) -> SalesReady {
        let rules = &*self.rules;
        let engagement = st.engagement();
        let score = st.fit + engagement;
        SalesReady {
            event_id: format!("sr:{lead_id}:{}", st.sequence),
            lead_id: lead_id.to_string(),
            sequence: st.sequence,
            qualified_at: st.clock,
            score,
            fit_score: st.fit,
            engagement_score: engagement,
            threshold: rules.sales_ready,
            trigger_event_id: trigger.to_string(),
            rules_version: rules.version.clone(),
            top_signals: self.top_signals(st, None),
            conversion_probability: rules.model.map(|m| m.probability(score)),
        }
    }

    /// Up to [`TOP_SIGNALS`] rules with a non-zero current contribution, largest first (ties by
    /// name). `at` = `None` means at the lead clock, else decayed to that time.
    pub fn top_signals(&self, st: &LeadState, at: Option<Micros>) -> Vec<Signal> {
        let rules = &*self.rules;
        let mut signals: Vec<Signal> = rules
            .fit
            .iter()
            .filter(|r| r.condition.holds_on(st.profile_value(&r.field)))
            .map(|r| Signal {
                rule: r.name.clone(),
                points: r.points,
            })
            .chain(st.engagement.iter().map(|a| {
                let rule = &rules.engagement[a.rule as usize];
                Signal {
                    rule: rule.name.clone(),
                    points: a.value * self.decay_since_clock(st, at, rule.half_life),
                }
            }))
            .filter(|s| s.points != 0.0)
            .collect();
        signals.sort_by(|a, b| b.points.total_cmp(&a.points).then(a.rule.cmp(&b.rule)));
        signals.truncate(TOP_SIGNALS);
        signals
    }

    fn decay_since_clock(&self, st: &LeadState, at: Option<Micros>, h: Option<Micros>) -> f64 {
        match (at, st.clock()) {
            (Some(now), Some(clock)) if now > clock => decay_factor(now - clock, h),
            _ => 1.0,
        }
    }

    /// Engagement decayed to `now` (never before the lead clock).
    pub fn engagement_at(&self, st: &LeadState, now: Micros) -> f64 {
        st.engagement
            .iter()
            .map(|a| {
                let h = self.rules.engagement[a.rule as usize].half_life;
                a.value * self.decay_since_clock(st, Some(now), h)
            })
            .sum()
    }

    /// The lead's score at its clock, as `replay --scores` prints it.
    pub fn lead_score(&self, lead_id: &str, st: &LeadState) -> LeadScore {
        let engagement = st.engagement();
        let score = st.fit + engagement;
        LeadScore {
            lead_id: lead_id.to_string(),
            score,
            fit_score: st.fit,
            engagement_score: engagement,
            as_of: st.clock().map(format_rfc3339).unwrap_or_default(),
            conversion_probability: self.rules.model.map(|m| m.probability(score)),
        }
    }
}

/// Moves the lead clock to `ts` when it is later, decaying what has accumulated to it (one
/// exp2 per distinct half-life, cached for the first 8 decay classes; more classes compute
/// theirs per rule) and dropping cap counters older than the cap window. Returns the clock.
#[inline]
fn advance_clock(rules: &Rules, st: &mut LeadState, ts: Micros) -> Micros {
    let t = match st.clock() {
        None => return ts,
        Some(t) if ts <= t => return t,
        Some(t) => t,
    };
    let dt = ts - t;
    let mut factors = [f64::NAN; 8];
    for a in &mut st.engagement {
        let class = rules.engagement[a.rule as usize].decay_class as usize;
        let f = match factors.get(class) {
            Some(f) if !f.is_nan() => *f,
            _ => {
                let f = decay_factor(dt, rules.half_lives[class]);
                if class < factors.len() {
                    factors[class] = f;
                }
                f
            }
        };
        a.value *= f;
    }
    if utc_day(ts) != utc_day(t) {
        let horizon = utc_day(ts) - CAP_WINDOW_DAYS;
        st.caps.retain(|c| c.day >= horizon);
    }
    ts
}

/// Applies the engagement rules of the event's type that match it — within their visit page,
/// count band and daily cap — with their points per event or per second of dwell; a late
/// event's contribution is decayed to the clock.
#[inline]
fn apply_engagement(rules: &Rules, st: &mut LeadState, ev: &Event<'_>, clock: Micros) {
    let day = utc_day(ev.ts);
    let horizon = utc_day(clock) - CAP_WINDOW_DAYS;
    let path = match (&ev.url, rules.needs_path(ev.kind)) {
        (Some(u), true) => Some(url_path(u)),
        _ => None,
    };
    let visit_page = (rules.tracks_visits && ev.kind == EventType::PageView)
        .then(|| st.visit_page(ev.ts, rules.visit_gap));
    for &i in rules.rules_for(ev.kind) {
        let rule = &rules.engagement[i as usize];
        if !rule.criteria.matches(ev, path) {
            continue;
        }
        let Some(amount) = shaped_amount(rule, st, ev, i, visit_page) else {
            continue;
        };
        if let Some(max) = rule.max_per_day {
            if !st.take_cap(i, day, max, horizon) {
                continue;
            }
        }
        let value = rule.points * amount * decay_factor(clock - ev.ts, rule.half_life);
        st.add(i, value);
    }
}

/// What a matching event counts for under the rule's shape (SPEC §3 "Shapes"): 1 per event,
/// or its seconds of dwell (capped); `None` when the visit page or the count band excludes it.
/// The match is counted (for the band) before the daily cap is checked.
#[inline]
fn shaped_amount(
    rule: &crate::rules::EngagementRule,
    st: &mut LeadState,
    ev: &Event<'_>,
    i: u16,
    visit_page: Option<u32>,
) -> Option<f64> {
    let shape = &rule.shape;
    if shape.visit_page.is_some() && shape.visit_page != visit_page {
        return None;
    }
    let seconds = match (shape.per_second, ev.duration_s) {
        (false, _) => 1.0,
        (true, None) => return None,
        (true, Some(d)) => shape.max_seconds.map_or(d, |m| d.min(m)),
    };
    if let Some((k, m)) = shape.band {
        let n = st.count_match(i, ev.ts, shape.count_window, 1.0) + 1.0;
        if n < k as f64 || n > m as f64 {
            return None;
        }
    }
    if let Some((low, high)) = shape.dwell_band {
        let before = st.count_match(i, ev.ts, shape.count_window, seconds);
        let inside = (before + seconds).min(high) - before.max(low);
        return (inside > 0.0).then_some(inside);
    }
    Some(seconds)
}

/// Takes the form's fields into the profile where its `ts` is not older than the stored value
/// (equal `ts`: the later processed wins). Keeps only fields some fit rule reads; derives
/// `email_domain` from `email` when a rule reads it and the form does not send it.
/// Returns whether anything changed.
fn update_profile(rules: &Rules, st: &mut LeadState, ev: &Event<'_>) -> bool {
    let mut changed = false;
    let wanted = |f: &str| {
        rules
            .profile_fields
            .binary_search_by(|x| x.as_str().cmp(f))
            .is_ok()
    };
    let mut set = |field: &str, value: &str, st: &mut LeadState| match st
        .profile
        .iter_mut()
        .find(|p| &*p.field == field)
    {
        Some(p) if ev.ts >= p.ts => {
            if &*p.value != value {
                p.value = value.into();
                changed = true;
            }
            p.ts = ev.ts;
        }
        Some(_) => {}
        None => {
            st.profile.push(ProfileField {
                field: field.into(),
                value: value.into(),
                ts: ev.ts,
            });
            changed = true;
        }
    };
    let mut has_domain = false;
    let mut email: Option<&FieldValue<'_>> = None;
    for (k, v) in &ev.fields {
        if k == "email_domain" {
            has_domain = true;
        }
        if k == "email" {
            email = Some(v);
        }
        if wanted(k) {
            set(k, &v.as_text(), st);
        }
    }
    if !has_domain && wanted("email_domain") {
        if let Some(FieldValue::Str(e)) = email {
            if let Some((_, domain)) = e.rsplit_once('@') {
                set("email_domain", &domain.to_lowercase(), st);
            }
        }
    }
    changed
}
