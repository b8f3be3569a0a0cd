//! Per-lead scoring state and its versioned binary encoding (what the durable store and the
//! changelog persist).
//!
//! Encoding v1, little-endian; `var` = LEB128 varint, `zvar` = zig-zag varint:
//! ```text
//! u8 version=1 | i64 clock | u8 flags(bit0 armed) | var sequence | f64 fit
//! var n | n × (u32 rule_key, f64 value)                         engagement accumulators
//! var n | n × (u32 rule_key, zvar utc_day, var count)           cap counters
//! u8 len | u8 head | len × 6-byte event-id hash                 dedup ring
//! var n | n × (var len, field, var len, value, i64 ts)          profile (fit fields only)
//! ```
//! Version 2 (written only for a lead with sales feedback) appends; `ostr` = var (len + 1),
//! 0 for none, then the bytes:
//! ```text
//! var n | n × (i64 ts, u8 outcome, ostr reason, ostr sales_ready_event_id)   verdicts
//! u8 has_suppression | [i64 suppressed_until] | ostr alert_signal
//! ```
//! Version 3 (written only for a lead with shape state) appends `u8 sections` (bit 0: sales
//! feedback follows, as in v2; bit 1: shape state follows):
//! ```text
//! var n | n × (u32 rule_key, f64 count, i64 last)                 count and dwell band totals
//! u8 has_visit | [i64 last_page_view, var pages]                  the current visit
//! ```
//! Rules are referenced by a stable 32-bit key of their name, so state survives a rules reload
//! that reorders rules. Accumulators of rules that no longer exist are dropped on decode.

use smallvec::SmallVec;

use crate::rules::Rules;
use crate::time::Micros;
use crate::verdict::{SalesOutcome, Verdict};

/// How many recent scored event ids a lead remembers for deduplication (SPEC §4, duplicates).
pub const DEDUP_WINDOW: usize = 16;
/// Cap counters are kept for this many UTC days behind the lead clock; a late event older than
/// that for a capped rule contributes nothing (its day's count is no longer known).
pub const CAP_WINDOW_DAYS: i32 = 7;
const ID_HASH_MASK: u64 = (1 << 48) - 1;
const FORMAT_VERSION: u8 = 1;
const FORMAT_VERSION_FEEDBACK: u8 = 2;
const FORMAT_VERSION_SECTIONS: u8 = 3;
/// How many sales verdicts a lead keeps (the newest).
pub const MAX_VERDICTS: usize = 8;
const NO_CLOCK: Micros = i64::MIN;

/// One rule's accumulated, decayed contribution at the lead clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accumulator {
    /// Engagement rule index in the current [`Rules`].
    pub rule: u16,
    /// Contribution at the lead clock.
    pub value: f64,
}

/// Applications of a capped rule on one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapCount {
    /// Engagement rule index.
    pub rule: u16,
    /// UTC day (days since epoch).
    pub day: i32,
    /// Applications so far.
    pub count: u32,
}

/// The latest value of one profile field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileField {
    /// Field name.
    pub field: Box<str>,
    /// Value as rules read it.
    pub value: Box<str>,
    /// `ts` of the form that set it.
    pub ts: Micros,
}

/// One sales verdict as a lead's state keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictRecord {
    /// When sales decided.
    pub ts: Micros,
    /// The decision.
    pub outcome: SalesOutcome,
    /// Free text from sales.
    pub reason: Option<Box<str>>,
    /// The alert it answers, when given.
    pub sales_ready_event_id: Option<Box<str>>,
}

impl VerdictRecord {
    /// The record of a verdict.
    pub fn of(v: &Verdict) -> Self {
        VerdictRecord {
            ts: v.ts,
            outcome: v.outcome,
            reason: v.reason.as_deref().map(Into::into),
            sales_ready_event_id: v.sales_ready_event_id.as_deref().map(Into::into),
        }
    }
}

/// What sales said about a lead and what its last alert rested on. Boxed in [`LeadState`]:
/// most leads never get any, and they pay one pointer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SalesFeedback {
    /// The newest [`MAX_VERDICTS`] verdicts, oldest first.
    pub verdicts: Vec<VerdictRecord>,
    /// Alerts are withheld while the lead clock is before this (after a rejection).
    pub suppressed_until: Option<Micros>,
    /// The top signal of the lead's last alert (what a rejection is charged to).
    pub alert_signal: Option<Box<str>>,
}

/// Matches of a count-band rule so far (SPEC §3 "Shapes").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleCount {
    /// Engagement rule index.
    pub rule: u16,
    /// Matching events (count bands) or seconds of dwell (dwell bands) counted since the
    /// last restart of the count window.
    pub count: f64,
    /// Latest `ts` of a counted match.
    pub last: Micros,
}

/// The lead's current visit: page views less than `[visits] gap` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visit {
    /// Latest `ts` of its page views.
    pub last: Micros,
    /// Page views in it so far.
    pub pages: u32,
}

/// Per-lead state of rule shapes: count-band counters and the current visit. Boxed in
/// [`LeadState`]: only rules with a count band or a visit page need it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShapeState {
    /// One counter per count-band rule that matched.
    pub counts: Vec<RuleCount>,
    /// The current visit, after a first page view.
    pub visit: Option<Visit>,
}

/// Everything the engine remembers about one lead.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadState {
    pub(crate) clock: Micros,
    pub(crate) sequence: u32,
    pub(crate) armed: bool,
    pub(crate) fit: f64,
    // Inline up to a typical lead's size: no extra heap (and cache miss) per lead.
    pub(crate) engagement: SmallVec<[Accumulator; 6]>,
    pub(crate) caps: SmallVec<[CapCount; 2]>,
    recent: [u64; DEDUP_WINDOW],
    recent_len: u8,
    recent_head: u8,
    pub(crate) profile: Vec<ProfileField>,
    pub(crate) feedback: Option<Box<SalesFeedback>>,
    pub(crate) shape: Option<Box<ShapeState>>,
}

impl Default for LeadState {
    fn default() -> Self {
        LeadState {
            clock: NO_CLOCK,
            sequence: 0,
            armed: true,
            fit: 0.0,
            engagement: SmallVec::new(),
            caps: SmallVec::new(),
            recent: [0; DEDUP_WINDOW],
            recent_len: 0,
            recent_head: 0,
            profile: Vec::new(),
            feedback: None,
            shape: None,
        }
    }
}

/// 48-bit hash of an event id, as kept in the dedup ring.
#[inline]
pub fn event_id_hash(event_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(event_id.as_bytes()) & ID_HASH_MASK
}

impl LeadState {
    /// A lead never seen before: armed, no clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// The lead clock (largest `ts` of its scored events), if any event was scored.
    pub fn clock(&self) -> Option<Micros> {
        (self.clock != NO_CLOCK).then_some(self.clock)
    }

    /// Qualifications so far.
    pub fn sequence(&self) -> u32 {
        self.sequence
    }

    /// Would the next crossing emit `sales_ready`?
    pub fn armed(&self) -> bool {
        self.armed
    }

    /// Fit score on the current profile.
    pub fn fit(&self) -> f64 {
        self.fit
    }

    /// Engagement score at the lead clock.
    pub fn engagement(&self) -> f64 {
        self.engagement.iter().map(|a| a.value).sum()
    }

    /// `fit + engagement` at the lead clock.
    pub fn score(&self) -> f64 {
        self.fit + self.engagement()
    }

    /// Per-rule accumulators.
    pub fn accumulators(&self) -> &[Accumulator] {
        &self.engagement
    }

    /// Profile fields the rules read.
    pub fn profile(&self) -> &[ProfileField] {
        &self.profile
    }

    /// Sales verdicts and suppression, if sales ever said anything.
    pub fn feedback(&self) -> Option<&SalesFeedback> {
        self.feedback.as_deref()
    }

    /// The feedback record, created when missing.
    pub(crate) fn feedback_mut(&mut self) -> &mut SalesFeedback {
        self.feedback.get_or_insert_with(Box::default)
    }

    /// Count-band counters and the current visit, if any rule needed them.
    pub fn shape(&self) -> Option<&ShapeState> {
        self.shape.as_deref()
    }

    /// Which page of its visit a page view at `ts` is: a new visit (page 1) when it comes at
    /// least `gap` after the visit's latest page view, else the next page of the current one
    /// (a late page view joins the current visit).
    #[inline]
    pub(crate) fn visit_page(&mut self, ts: Micros, gap: Micros) -> u32 {
        let shape = self.shape.get_or_insert_with(Box::default);
        let v = match &mut shape.visit {
            Some(v) if ts < v.last.saturating_add(gap) => {
                v.pages = v.pages.saturating_add(1);
                v.last = v.last.max(ts);
                v
            }
            slot => slot.insert(Visit { last: ts, pages: 1 }),
        };
        v.pages
    }

    /// Counts `amount` (1 for a match, or its seconds of dwell) for rule `rule` at `ts` and
    /// returns the total before it; the total restarts when `window` passed since the
    /// previous match.
    #[inline]
    pub(crate) fn count_match(
        &mut self,
        rule: u16,
        ts: Micros,
        window: Option<Micros>,
        amount: f64,
    ) -> f64 {
        let shape = self.shape.get_or_insert_with(Box::default);
        let c = match shape.counts.iter_mut().position(|c| c.rule == rule) {
            Some(i) => &mut shape.counts[i],
            None => {
                shape.counts.push(RuleCount {
                    rule,
                    count: 0.0,
                    last: ts,
                });
                shape.counts.last_mut().expect("just pushed")
            }
        };
        if window.is_some_and(|w| ts >= c.last.saturating_add(w)) {
            c.count = 0.0;
        }
        let before = c.count;
        c.count += amount;
        c.last = c.last.max(ts);
        before
    }

    /// Are alerts withheld at lead-clock time `t`?
    #[inline]
    pub fn suppressed_at(&self, t: Micros) -> bool {
        self.feedback
            .as_ref()
            .and_then(|f| f.suppressed_until)
            .is_some_and(|until| t < until)
    }

    /// The current value of a profile field.
    pub fn profile_value(&self, field: &str) -> Option<&str> {
        self.profile
            .iter()
            .find(|p| &*p.field == field)
            .map(|p| &*p.value)
    }

    /// Was this event id hash among the last [`DEDUP_WINDOW`] scored?
    #[inline]
    pub(crate) fn seen(&self, h: u64) -> bool {
        self.recent[..self.recent_len as usize].contains(&h)
    }

    /// Remembers a scored event id hash, forgetting the oldest beyond the window.
    #[inline]
    pub(crate) fn remember(&mut self, h: u64) {
        if (self.recent_len as usize) < DEDUP_WINDOW {
            self.recent[self.recent_len as usize] = h;
            self.recent_len += 1;
        } else {
            self.recent[self.recent_head as usize] = h;
            self.recent_head = ((self.recent_head as usize + 1) % DEDUP_WINDOW) as u8;
        }
    }

    /// Adds to a rule's accumulator.
    #[inline]
    pub(crate) fn add(&mut self, rule: u16, value: f64) {
        match self.engagement.iter_mut().find(|a| a.rule == rule) {
            Some(a) => a.value += value,
            None => self.engagement.push(Accumulator { rule, value }),
        }
    }

    /// Counts one application of a capped rule on `day`; false when the cap is reached or the
    /// day is behind the cap window (`horizon`).
    #[inline]
    pub(crate) fn take_cap(&mut self, rule: u16, day: i32, max: u32, horizon: i32) -> bool {
        if day < horizon {
            return false;
        }
        match self
            .caps
            .iter_mut()
            .find(|c| c.rule == rule && c.day == day)
        {
            Some(c) if c.count >= max => false,
            Some(c) => {
                c.count += 1;
                true
            }
            None => {
                self.caps.push(CapCount {
                    rule,
                    day,
                    count: 1,
                });
                true
            }
        }
    }

    /// Bytes of memory this state occupies (inline plus heap), excluding allocator overhead.
    pub fn memory_bytes(&self) -> usize {
        let spilled = |spilled: bool, bytes: usize| if spilled { bytes } else { 0 };
        std::mem::size_of::<Self>()
            + spilled(
                self.engagement.spilled(),
                self.engagement.capacity() * std::mem::size_of::<Accumulator>(),
            )
            + spilled(
                self.caps.spilled(),
                self.caps.capacity() * std::mem::size_of::<CapCount>(),
            )
            + self.profile.capacity() * std::mem::size_of::<ProfileField>()
            + self
                .profile
                .iter()
                .map(|p| p.field.len() + p.value.len())
                .sum::<usize>()
            + self.feedback.as_ref().map_or(0, |f| {
                std::mem::size_of::<SalesFeedback>()
                    + f.verdicts.capacity() * std::mem::size_of::<VerdictRecord>()
            })
            + self.shape.as_ref().map_or(0, |s| {
                std::mem::size_of::<ShapeState>()
                    + s.counts.capacity() * std::mem::size_of::<RuleCount>()
            })
    }

    /// Serializes the state (format v1, see module docs).
    pub fn encode(&self, rules: &Rules, out: &mut Vec<u8>) {
        out.push(match (&self.feedback, &self.shape) {
            (None, None) => FORMAT_VERSION,
            (Some(_), None) => FORMAT_VERSION_FEEDBACK,
            (_, Some(_)) => FORMAT_VERSION_SECTIONS,
        });
        out.extend_from_slice(&self.clock.to_le_bytes());
        out.push(self.armed as u8);
        put_var(out, self.sequence as u64);
        out.extend_from_slice(&self.fit.to_le_bytes());
        put_var(out, self.engagement.len() as u64);
        for a in &self.engagement {
            out.extend_from_slice(&rules.engagement[a.rule as usize].key.to_le_bytes());
            out.extend_from_slice(&a.value.to_le_bytes());
        }
        put_var(out, self.caps.len() as u64);
        for c in &self.caps {
            out.extend_from_slice(&rules.engagement[c.rule as usize].key.to_le_bytes());
            put_var(out, zigzag(c.day as i64));
            put_var(out, c.count as u64);
        }
        out.push(self.recent_len);
        out.push(self.recent_head);
        for h in &self.recent[..self.recent_len as usize] {
            out.extend_from_slice(&h.to_le_bytes()[..6]);
        }
        put_var(out, self.profile.len() as u64);
        for p in &self.profile {
            put_var(out, p.field.len() as u64);
            out.extend_from_slice(p.field.as_bytes());
            put_var(out, p.value.len() as u64);
            out.extend_from_slice(p.value.as_bytes());
            out.extend_from_slice(&p.ts.to_le_bytes());
        }
        if let Some(shape) = &self.shape {
            out.push(self.feedback.is_some() as u8 | 2);
            if let Some(f) = &self.feedback {
                encode_feedback(f, out);
            }
            encode_shape(shape, rules, out);
        } else if let Some(f) = &self.feedback {
            encode_feedback(f, out);
        }
    }

    /// Serializes into a new buffer.
    pub fn to_bytes(&self, rules: &Rules) -> Vec<u8> {
        let mut v = Vec::with_capacity(96);
        self.encode(rules, &mut v);
        v
    }

    /// Deserializes state written by [`LeadState::encode`] against (possibly other) rules:
    /// accumulators of rules that no longer exist are dropped, fit is re-evaluated.
    pub fn decode(rules: &Rules, bytes: &[u8]) -> Result<LeadState, StateDecodeError> {
        let mut r = Reader { b: bytes, pos: 0 };
        let version = r.u8()?;
        if !(FORMAT_VERSION..=FORMAT_VERSION_SECTIONS).contains(&version) {
            return Err(StateDecodeError(format!(
                "unsupported state format version {version} (this build reads {FORMAT_VERSION} to {FORMAT_VERSION_SECTIONS})"
            )));
        }
        let mut st = LeadState {
            clock: r.i64()?,
            ..LeadState::default()
        };
        st.armed = r.u8()? & 1 == 1;
        st.sequence = r.var()? as u32;
        st.fit = r.f64()?;
        let n = r.var()? as usize;
        for _ in 0..n {
            let key = r.u32()?;
            let value = r.f64()?;
            if let Some(rule) = rules.index_of_key(key) {
                st.engagement.push(Accumulator { rule, value });
            }
        }
        let n = r.var()? as usize;
        for _ in 0..n {
            let key = r.u32()?;
            let day = unzigzag(r.var()?) as i32;
            let count = r.var()? as u32;
            if let Some(rule) = rules.index_of_key(key) {
                st.caps.push(CapCount { rule, day, count });
            }
        }
        st.recent_len = r.u8()?;
        st.recent_head = r.u8()?;
        if st.recent_len as usize > DEDUP_WINDOW || st.recent_head as usize >= DEDUP_WINDOW {
            return Err(StateDecodeError("corrupt dedup ring".into()));
        }
        for i in 0..st.recent_len as usize {
            let b = r.take(6)?;
            let mut x = [0u8; 8];
            x[..6].copy_from_slice(b);
            st.recent[i] = u64::from_le_bytes(x);
        }
        let n = r.var()? as usize;
        for _ in 0..n {
            let field = r.string()?;
            let value = r.string()?;
            let ts = r.i64()?;
            st.profile.push(ProfileField {
                field: field.into(),
                value: value.into(),
                ts,
            });
        }
        decode_sections(version, &mut r, rules, &mut st)?;
        if r.pos != bytes.len() {
            return Err(StateDecodeError(format!(
                "{} trailing bytes",
                bytes.len() - r.pos
            )));
        }
        // Fit follows the fit rules in force (the same value when they are unchanged).
        let fit = rules.fit_score(|f| st.profile_value(f));
        st.fit = fit;
        Ok(st)
    }
}

fn encode_feedback(f: &SalesFeedback, out: &mut Vec<u8>) {
    let put_ostr = |out: &mut Vec<u8>, s: &Option<Box<str>>| match s {
        None => put_var(out, 0),
        Some(s) => {
            put_var(out, s.len() as u64 + 1);
            out.extend_from_slice(s.as_bytes());
        }
    };
    put_var(out, f.verdicts.len() as u64);
    for v in &f.verdicts {
        out.extend_from_slice(&v.ts.to_le_bytes());
        out.push(v.outcome.code());
        put_ostr(out, &v.reason);
        put_ostr(out, &v.sales_ready_event_id);
    }
    match f.suppressed_until {
        None => out.push(0),
        Some(t) => {
            out.push(1);
            out.extend_from_slice(&t.to_le_bytes());
        }
    }
    put_ostr(out, &f.alert_signal);
}

fn decode_feedback(r: &mut Reader<'_>) -> Result<SalesFeedback, StateDecodeError> {
    let mut f = SalesFeedback::default();
    let n = r.var()? as usize;
    if n > MAX_VERDICTS {
        return Err(StateDecodeError(format!(
            "{n} verdicts (at most {MAX_VERDICTS})"
        )));
    }
    for _ in 0..n {
        let ts = r.i64()?;
        let code = r.u8()?;
        let outcome = SalesOutcome::from_code(code)
            .ok_or_else(|| StateDecodeError(format!("unknown verdict code {code}")))?;
        f.verdicts.push(VerdictRecord {
            ts,
            outcome,
            reason: r.opt_string()?.map(Into::into),
            sales_ready_event_id: r.opt_string()?.map(Into::into),
        });
    }
    f.suppressed_until = match r.u8()? {
        0 => None,
        _ => Some(r.i64()?),
    };
    f.alert_signal = r.opt_string()?.map(Into::into);
    Ok(f)
}

/// The optional sections after the v1 body: none (v1), sales feedback (v2), or a bitmask of
/// them (v3).
fn decode_sections(
    version: u8,
    r: &mut Reader<'_>,
    rules: &Rules,
    st: &mut LeadState,
) -> Result<(), StateDecodeError> {
    let sections = match version {
        FORMAT_VERSION => 0,
        FORMAT_VERSION_FEEDBACK => 1,
        _ => r.u8()?,
    };
    if sections & !3 != 0 {
        return Err(StateDecodeError(format!(
            "unknown state sections {sections:#x}"
        )));
    }
    if sections & 1 != 0 {
        st.feedback = Some(Box::new(decode_feedback(r)?));
    }
    if sections & 2 != 0 {
        st.shape = Some(Box::new(decode_shape(r, rules)?));
    }
    Ok(())
}

fn encode_shape(s: &ShapeState, rules: &Rules, out: &mut Vec<u8>) {
    put_var(out, s.counts.len() as u64);
    for c in &s.counts {
        out.extend_from_slice(&rules.engagement[c.rule as usize].key.to_le_bytes());
        out.extend_from_slice(&c.count.to_le_bytes());
        out.extend_from_slice(&c.last.to_le_bytes());
    }
    match s.visit {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.last.to_le_bytes());
            put_var(out, v.pages as u64);
        }
    }
}

fn decode_shape(r: &mut Reader<'_>, rules: &Rules) -> Result<ShapeState, StateDecodeError> {
    let mut s = ShapeState::default();
    let n = r.var()? as usize;
    for _ in 0..n {
        let key = r.u32()?;
        let count = r.f64()?;
        let last = r.i64()?;
        if let Some(rule) = rules.index_of_key(key) {
            s.counts.push(RuleCount { rule, count, last });
        }
    }
    s.visit = match r.u8()? {
        0 => None,
        _ => {
            let last = r.i64()?;
            let pages = u32::try_from(r.var()?)
                .map_err(|_| StateDecodeError("visit pages out of range".into()))?;
            Some(Visit { last, pages })
        }
    };
    Ok(s)
}

/// Persisted state that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode lead state: {0}")]
pub struct StateDecodeError(String);

fn put_var(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StateDecodeError> {
        // `n` may be a crafted length: compare without an addition that could overflow.
        if n > self.b.len() - self.pos {
            return Err(StateDecodeError("truncated".into()));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, StateDecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, StateDecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn i64(&mut self) -> Result<i64, StateDecodeError> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    /// A finite number: a NaN or infinity would poison every score derived from it.
    fn f64(&mut self) -> Result<f64, StateDecodeError> {
        let x = f64::from_le_bytes(self.take(8)?.try_into().unwrap());
        if x.is_finite() {
            Ok(x)
        } else {
            Err(StateDecodeError(format!("non-finite number {x}")))
        }
    }
    fn var(&mut self) -> Result<u64, StateDecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(StateDecodeError("varint too long".into()))
    }
    fn string(&mut self) -> Result<String, StateDecodeError> {
        let n = self.var()? as usize;
        self.utf8(n)
    }
    fn utf8(&mut self, n: usize) -> Result<String, StateDecodeError> {
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| StateDecodeError("text not UTF-8".into()))
    }
    /// `var (len + 1)` then the bytes; 0 = none.
    fn opt_string(&mut self) -> Result<Option<String>, StateDecodeError> {
        match self.var()? {
            0 => Ok(None),
            n => self.utf8(n as usize - 1).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(fit: f64) -> Vec<u8> {
        let mut b = vec![FORMAT_VERSION];
        b.extend_from_slice(&1_790_000_000_000_000i64.to_le_bytes());
        b.push(0); // armed
        b.push(0); // sequence
        b.extend_from_slice(&fit.to_le_bytes());
        b
    }

    #[test]
    fn crafted_lengths_and_non_finite_numbers_are_errors_not_panics() {
        let rules = Rules::parse(
            std::path::Path::new("t.toml"),
            b"[threshold]\nsales_ready = 10\n",
        )
        .unwrap();
        // An accumulator count of u64::MAX, then a string length of u64::MAX.
        let mut huge = header(0.0);
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(LeadState::decode(&rules, &huge).is_err());
        let mut long_string = header(0.0);
        long_string.extend_from_slice(&[0, 0, 0, 0, 1]); // no accumulators, caps, dedup; 1 field
        long_string
            .extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(LeadState::decode(&rules, &long_string).is_err());
        for bad in [f64::NAN, f64::INFINITY] {
            let e = LeadState::decode(&rules, &header(bad)).unwrap_err();
            assert!(e.to_string().contains("non-finite"), "{e}");
        }
    }

    #[test]
    fn zigzag_round_trips() {
        for v in [
            0i64,
            1,
            -1,
            20_000,
            -20_000,
            i32::MAX as i64,
            i32::MIN as i64,
        ] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn dedup_ring_forgets_the_oldest() {
        let mut s = LeadState::new();
        for i in 0..DEDUP_WINDOW as u64 {
            s.remember(i);
        }
        assert!(s.seen(0));
        s.remember(100);
        assert!(!s.seen(0), "oldest evicted");
        assert!(s.seen(1) && s.seen(100));
        s.remember(101);
        assert!(!s.seen(1));
        assert!(s.seen(2));
    }
}
