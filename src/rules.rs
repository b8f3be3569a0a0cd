//! The rules file (SPEC §3): parsing, validation with actionable errors, and compilation into the
//! form the engine evaluates per event (regexes built once, rules indexed by event type).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::event::{Event, EventType, OfferStage};
use crate::time::Micros;

/// A rules file that cannot be used, with where, what and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rules file {}: {location}: {problem}{}", .file.display(), fix_line(.fix))]
pub struct RulesError {
    /// The rules file.
    pub file: PathBuf,
    /// Where in the file (`[threshold]`, `[[engagement]] #2 "pricing-page"`, ...).
    pub location: String,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

/// `"\n  fix: ..."`, or nothing when there is no fix to give.
pub(crate) fn fix_line(fix: &str) -> String {
    if fix.is_empty() {
        String::new()
    } else {
        format!("\n  fix: {fix}")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesToml {
    #[serde(default = "default_name")]
    name: String,
    threshold: ThresholdToml,
    #[serde(default)]
    decay: DecayToml,
    #[serde(default)]
    bot_filter: BotFilterToml,
    #[serde(default)]
    engagement: Vec<EngagementToml>,
    #[serde(default)]
    fit: Vec<FitToml>,
    model: Option<ModelToml>,
    #[serde(default)]
    visits: VisitsToml,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VisitsToml {
    #[serde(default = "default_visit_gap")]
    gap: String,
}

impl Default for VisitsToml {
    fn default() -> Self {
        VisitsToml {
            gap: default_visit_gap(),
        }
    }
}

fn default_visit_gap() -> String {
    "30m".to_string()
}

fn default_name() -> String {
    "default".to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdToml {
    sales_ready: f64,
    rearm_below: Option<f64>,
    #[serde(default)]
    min_fit: f64,
    /// A lead sales rejected alerts again only after this long (humantime); none by default.
    suppress_after_rejection: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecayToml {
    #[serde(default = "default_half_life")]
    half_life: String,
}

impl Default for DecayToml {
    fn default() -> Self {
        DecayToml {
            half_life: default_half_life(),
        }
    }
}

fn default_half_life() -> String {
    "30d".to_string()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BotFilterToml {
    #[serde(default)]
    min_seconds_after_send: f64,
    #[serde(default)]
    user_agent_contains: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EngagementToml {
    name: String,
    on: String,
    url_path_prefix: Option<String>,
    url_contains: Option<String>,
    url_regex: Option<String>,
    campaign_id: Option<String>,
    form_id: Option<String>,
    offer_stage: Option<String>,
    min_duration_s: Option<f64>,
    max_duration_s: Option<f64>,
    points: Option<f64>,
    points_per_second: Option<f64>,
    max_seconds: Option<f64>,
    nth: Option<Vec<f64>>,
    max_total: Option<i64>,
    dwell_band: Option<Vec<f64>>,
    count_window: Option<String>,
    visit_page: Option<i64>,
    half_life: Option<String>,
    max_per_day: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FitToml {
    name: String,
    field: String,
    matches: Option<String>,
    equals: Option<toml::Value>,
    #[serde(rename = "in")]
    in_: Option<Vec<toml::Value>>,
    range: Option<Vec<f64>>,
    bin: Option<Vec<f64>>,
    exists: Option<bool>,
    missing: Option<bool>,
    points: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelToml {
    intercept: f64,
    scale: f64,
}

/// Bot-activity filter for email opens and clicks (SPEC §4, bots).
#[derive(Debug, Clone)]
pub struct BotFilter {
    /// Activity sooner than this after `sent_at` is a bot (microseconds; 0 disables).
    pub min_after_send: f64,
    /// Case-insensitive alternation of the listed user-agent substrings.
    pub user_agent: Option<Regex>,
}

impl BotFilter {
    /// Is this email_open / click bot activity? Other event types never are.
    pub fn is_bot(&self, ev: &Event<'_>) -> bool {
        if !matches!(ev.kind, EventType::EmailOpen | EventType::Click) {
            return false;
        }
        if let Some(sent) = ev.sent_at {
            if ((ev.ts - sent) as f64) < self.min_after_send {
                return true;
            }
        }
        match (&self.user_agent, &ev.user_agent) {
            (Some(re), Some(ua)) => re.is_match(ua),
            _ => false,
        }
    }
}

/// What an engagement rule requires of an event (all present criteria must hold).
#[derive(Debug, Clone, Default)]
pub struct Criteria {
    /// The URL's path starts with this.
    pub url_path_prefix: Option<String>,
    /// The whole URL contains this.
    pub url_contains: Option<String>,
    /// A regex search over the whole URL.
    pub url_regex: Option<Regex>,
    /// Exact campaign.
    pub campaign_id: Option<String>,
    /// Exact form.
    pub form_id: Option<String>,
    /// Exact offer stage.
    pub offer_stage: Option<OfferStage>,
    /// `duration_s` at least this.
    pub min_duration_s: Option<f64>,
    /// `duration_s` below this.
    pub max_duration_s: Option<f64>,
}

impl Criteria {
    /// Do all criteria hold for this event? `path` is `url_path` of the event's URL (computed
    /// once per event by the caller).
    pub fn matches(&self, ev: &Event<'_>, path: Option<&str>) -> bool {
        let url = ev.url.as_deref();
        if let Some(p) = &self.url_path_prefix {
            match path {
                Some(path) if path.starts_with(p.as_str()) => {}
                _ => return false,
            }
        }
        if let Some(c) = &self.url_contains {
            match url {
                Some(u) if u.contains(c.as_str()) => {}
                _ => return false,
            }
        }
        if let Some(re) = &self.url_regex {
            match url {
                Some(u) if re.is_match(u) => {}
                _ => return false,
            }
        }
        if let Some(c) = &self.campaign_id {
            if ev.campaign_id.as_deref() != Some(c.as_str()) {
                return false;
            }
        }
        if let Some(f) = &self.form_id {
            if ev.form_id.as_deref() != Some(f.as_str()) {
                return false;
            }
        }
        if let Some(s) = self.offer_stage {
            if ev.offer_stage != Some(s) {
                return false;
            }
        }
        if let Some(min) = self.min_duration_s {
            match ev.duration_s {
                Some(d) if d >= min => {}
                _ => return false,
            }
        }
        if let Some(max) = self.max_duration_s {
            match ev.duration_s {
                Some(d) if d < max => {}
                _ => return false,
            }
        }
        true
    }
}

/// The path of a URL: after `scheme://host[:port]`, before `?` or `#`. A URL that is already a
/// path (`/pricing?x`) is taken as one; anything else has an empty path.
pub fn url_path(url: &str) -> &str {
    let scheme_end = url
        .bytes()
        .position(|b| b == b':')
        .filter(|&i| url.as_bytes()[i + 1..].starts_with(b"//"));
    let rest = match scheme_end {
        Some(i) => {
            let after = &url[i + 3..];
            match after.find(['/', '?', '#']) {
                Some(j) if after.as_bytes()[j] == b'/' => &after[j..],
                _ => return "",
            }
        }
        None if url.starts_with('/') => url,
        None => return "",
    };
    match rest.find(['?', '#']) {
        Some(j) => &rest[..j],
        None => rest,
    }
}

/// One compiled engagement rule.
#[derive(Debug, Clone)]
pub struct EngagementRule {
    /// Unique name (explanations, metrics).
    pub name: String,
    /// Stable 32-bit key of the name, used in persisted state.
    pub key: u32,
    /// Event type it applies to.
    pub on: EventType,
    /// What the event must look like.
    pub criteria: Criteria,
    /// Points per application (may be negative).
    pub points: f64,
    /// Half-life in microseconds; `None` = never decays.
    pub half_life: Option<Micros>,
    /// Cap on applications per lead per UTC day.
    pub max_per_day: Option<u32>,
    /// Shape: per-second points, count band, visit page (SPEC §3 "Shapes").
    pub shape: Shape,
    /// Index of `half_life` in [`Rules::half_lives`] (rules sharing a half-life decay together).
    pub decay_class: u8,
}

/// How an engagement rule turns matching events into points beyond "`points` per event"
/// (SPEC §3 "Shapes"). The default is no shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shape {
    /// `points` are per second of `duration_s` (an event without it does not match).
    pub per_second: bool,
    /// Seconds counted per event at most (with `per_second`).
    pub max_seconds: Option<f64>,
    /// Applies only to the k-th to m-th matching event (1-based, inclusive).
    pub band: Option<(u32, u32)>,
    /// Per-second rules: counts only the seconds of the lead's cumulative dwell (over this
    /// rule's matches) that fall in `[low, high)`.
    pub dwell_band: Option<(f64, f64)>,
    /// The match count restarts after this long without a match (default: never).
    pub count_window: Option<Micros>,
    /// Page views only: applies only to the n-th page view of a visit.
    pub visit_page: Option<u32>,
}

impl Shape {
    /// Does the rule need a match counter per lead?
    pub fn counts(&self) -> bool {
        self.band.is_some() || self.dwell_band.is_some()
    }
}

/// The condition of a fit rule on one profile field.
#[derive(Debug, Clone)]
pub enum FitCondition {
    /// Regex search.
    Matches(Regex),
    /// Case-insensitive equality (stored lower-cased).
    Equals(String),
    /// Case-insensitive membership (stored lower-cased).
    In(Vec<String>),
    /// Number (or numeric string) within inclusive bounds.
    Range(f64, f64),
    /// Number (or numeric string) in `[low, high)`.
    Bin(f64, f64),
    /// Non-empty value.
    Exists,
    /// No value (the field was never given, or given empty).
    Missing,
}

impl FitCondition {
    /// Does the condition hold on this field value?
    pub fn holds(&self, value: &str) -> bool {
        match self {
            FitCondition::Matches(re) => re.is_match(value),
            FitCondition::Equals(s) => value.to_lowercase() == *s,
            FitCondition::In(list) => {
                let v = value.to_lowercase();
                list.contains(&v)
            }
            FitCondition::Range(lo, hi) => match value.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => *lo <= n && n <= *hi,
                _ => false,
            },
            FitCondition::Bin(lo, hi) => match value.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => *lo <= n && n < *hi,
                _ => false,
            },
            FitCondition::Exists => !value.is_empty(),
            FitCondition::Missing => value.is_empty(),
        }
    }

    /// Does the condition hold on the field's value, `None` when the profile lacks it?
    pub fn holds_on(&self, value: Option<&str>) -> bool {
        match value {
            Some(v) => self.holds(v),
            None => matches!(self, FitCondition::Missing),
        }
    }
}

/// One compiled fit rule.
#[derive(Debug, Clone)]
pub struct FitRule {
    /// Unique name.
    pub name: String,
    /// Profile field it reads.
    pub field: String,
    /// Condition on the field.
    pub condition: FitCondition,
    /// Points when the condition holds.
    pub points: f64,
}

/// Predictive model calibration: `p = 1 / (1 + exp(-(intercept + score / scale)))`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    /// Log-odds at score 0.
    pub intercept: f64,
    /// Points per unit of log-odds.
    pub scale: f64,
}

impl Model {
    /// Conversion probability at a score.
    pub fn probability(&self, score: f64) -> f64 {
        crate::numeric::sigmoid(self.intercept + score / self.scale)
    }
}

/// A validated, compiled rules file.
#[derive(Debug, Clone)]
pub struct Rules {
    /// `name` from the file.
    pub name: String,
    /// `<name>+<first 8 hex of sha256 of the file>`.
    pub version: String,
    /// Qualification threshold.
    pub sales_ready: f64,
    /// Re-arm when the score falls below this.
    pub rearm_below: f64,
    /// Minimum fit to qualify.
    pub min_fit: f64,
    /// After a `rejected` verdict, the lead's alerts are withheld this long (SPEC §4).
    pub suppress_after_rejection: Option<Micros>,
    /// Bot filter.
    pub bot_filter: BotFilter,
    /// Engagement rules in file order.
    pub engagement: Vec<EngagementRule>,
    /// Fit rules in file order.
    pub fit: Vec<FitRule>,
    /// Predictive calibration, when the file has a `[model]` table.
    pub model: Option<Model>,
    /// Profile fields any fit rule reads, sorted: the only ones the state keeps.
    pub profile_fields: Vec<String>,
    /// Distinct half-lives of the engagement rules (at most 255).
    pub half_lives: Vec<Option<Micros>>,
    /// Page views this close after the previous one continue its visit (`[visits] gap`).
    pub visit_gap: Micros,
    /// Does any rule read visits (`visit_page`)? Only then are visits tracked per lead.
    pub tracks_visits: bool,
    by_type: [Vec<u16>; 4],
    /// Per event type: does any of its rules need the URL path?
    needs_path: [bool; 4],
    by_key: HashMap<u32, u16>,
}

impl Rules {
    /// Validates and compiles rules from the bytes of a rules file (pure: the shell reads the
    /// file, see [`crate::rules_file`]); `name` names the source in errors.
    pub fn parse(name: &Path, bytes: &[u8]) -> Result<Rules, RulesError> {
        let at = ErrorAt(name);
        let (raw, version) = read_toml(&at, bytes)?;
        let (rearm_below, min_fit) = check_threshold(&at, &raw.threshold)?;
        let suppress_after_rejection = match &raw.threshold.suppress_after_rejection {
            None => None,
            Some(s) => positive_duration(s).map(Some).ok_or_else(|| {
                at.err(
                    "[threshold] suppress_after_rejection",
                    format!("`{s}` is not a positive duration"),
                    "use a duration such as \"14d\", or remove the key",
                )
            })?,
        };
        let default_half_life = parse_half_life(&raw.decay.half_life)
            .map_err(|p| at.err("[decay] half_life", p, HALF_LIFE_FIX))?;
        let bot_filter = compile_bot_filter(&at, &raw.bot_filter)?;
        let visit_gap = positive_duration(&raw.visits.gap).ok_or_else(|| {
            at.err(
                "[visits] gap",
                format!("`{}` is not a positive duration", raw.visits.gap),
                "use a duration such as \"30m\" (the default)",
            )
        })?;
        let mut names: HashSet<String> = HashSet::new();
        let eng = compile_engagement(&at, raw.engagement, default_half_life, &mut names)?;
        let fit = raw
            .fit
            .into_iter()
            .enumerate()
            .map(|(i, r)| compile_fit_rule(&at, i, r, &mut names))
            .collect::<Result<Vec<_>, _>>()?;
        let model = check_model(&at, raw.model)?;
        let tracks_visits = eng.rules.iter().any(|r| r.shape.visit_page.is_some());
        let mut profile_fields: Vec<String> = fit.iter().map(|f| f.field.clone()).collect();
        profile_fields.sort();
        profile_fields.dedup();
        Ok(Rules {
            name: raw.name,
            version,
            sales_ready: raw.threshold.sales_ready,
            rearm_below,
            min_fit,
            suppress_after_rejection,
            bot_filter,
            engagement: eng.rules,
            fit,
            model,
            profile_fields,
            half_lives: eng.half_lives,
            visit_gap,
            tracks_visits,
            by_type: eng.by_type,
            needs_path: eng.needs_path,
            by_key: eng.by_key,
        })
    }

    /// Indices of the engagement rules for an event type.
    #[inline]
    pub fn rules_for(&self, kind: EventType) -> &[u16] {
        &self.by_type[kind.index()]
    }

    /// Does any rule for this event type match on the URL path?
    #[inline]
    pub fn needs_path(&self, kind: EventType) -> bool {
        self.needs_path[kind.index()]
    }

    /// The engagement rule index for a persisted rule key.
    pub fn index_of_key(&self, key: u32) -> Option<u16> {
        self.by_key.get(&key).copied()
    }

    /// The fit score of a profile: `lookup(field)` gives the current value of a field.
    pub fn fit_score<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> f64 {
        self.fit
            .iter()
            .filter(|r| r.condition.holds_on(lookup(&r.field)))
            .map(|r| r.points)
            .sum()
    }
}

/// Builds errors located in one rules file.
struct ErrorAt<'p>(&'p Path);

impl ErrorAt<'_> {
    fn err(&self, location: &str, problem: String, fix: &str) -> RulesError {
        RulesError {
            file: self.0.to_path_buf(),
            location: location.to_string(),
            problem,
            fix: fix.to_string(),
        }
    }
}

/// The TOML document and the rules version (`<name>+<first 8 hex digits of its SHA-256>`).
fn read_toml(at: &ErrorAt<'_>, bytes: &[u8]) -> Result<(RulesToml, String), RulesError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| at.err("file", format!("not UTF-8: {e}"), "save the file as UTF-8"))?;
    let raw: RulesToml = toml::from_str(text).map_err(|e| {
        at.err(
            "TOML",
            e.to_string().trim_end().to_string(),
            "see the rules file format in docs/SPEC.md §3 and examples/rules.toml",
        )
    })?;
    let digest = Sha256::digest(bytes);
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let version = format!("{}+{}", raw.name, hex);
    Ok((raw, version))
}

/// `[threshold]`: returns (rearm_below, min_fit).
fn check_threshold(at: &ErrorAt<'_>, t: &ThresholdToml) -> Result<(f64, f64), RulesError> {
    if !t.sales_ready.is_finite() {
        return Err(at.err(
            "[threshold]",
            "sales_ready must be a finite number".into(),
            "set sales_ready = 100.0 or similar",
        ));
    }
    let rearm_below = t.rearm_below.unwrap_or(t.sales_ready / 2.0);
    if !rearm_below.is_finite() || rearm_below >= t.sales_ready {
        return Err(at.err(
            "[threshold]",
            format!(
                "rearm_below ({rearm_below}) must be below sales_ready ({})",
                t.sales_ready
            ),
            "lower rearm_below or remove it (default: sales_ready / 2)",
        ));
    }
    if !t.min_fit.is_finite() {
        return Err(at.err(
            "[threshold]",
            "min_fit must be a finite number".into(),
            "set min_fit = 0.0 or remove it",
        ));
    }
    Ok((rearm_below, t.min_fit))
}

/// `[bot_filter]`.
fn compile_bot_filter(at: &ErrorAt<'_>, bf: &BotFilterToml) -> Result<BotFilter, RulesError> {
    if !(bf.min_seconds_after_send.is_finite() && bf.min_seconds_after_send >= 0.0) {
        return Err(at.err(
            "[bot_filter] min_seconds_after_send",
            format!("must be ≥ 0, got {}", bf.min_seconds_after_send),
            "use a number of seconds such as 2",
        ));
    }
    let mut pats = Vec::new();
    for (i, p) in bf.user_agent_contains.iter().enumerate() {
        if p.is_empty() {
            return Err(at.err(
                "[bot_filter] user_agent_contains",
                format!("entry #{} is empty and would match every user agent", i + 1),
                "remove the empty string",
            ));
        }
        pats.push(regex::escape(p));
    }
    let user_agent = if pats.is_empty() {
        None
    } else {
        Some(Regex::new(&format!("(?i){}", pats.join("|"))).map_err(|e| {
            at.err(
                "[bot_filter] user_agent_contains",
                e.to_string(),
                "shorten the list",
            )
        })?)
    };
    Ok(BotFilter {
        min_after_send: bf.min_seconds_after_send * 1e6,
        user_agent,
    })
}

/// The compiled engagement rules and their indexes.
struct EngagementSet {
    rules: Vec<EngagementRule>,
    half_lives: Vec<Option<Micros>>,
    by_type: [Vec<u16>; 4],
    needs_path: [bool; 4],
    by_key: HashMap<u32, u16>,
}

/// `[[engagement]]`: each rule compiled, then indexed by event type, rule key and decay class.
fn compile_engagement(
    at: &ErrorAt<'_>,
    raw: Vec<EngagementToml>,
    default_half_life: Option<Micros>,
    names: &mut HashSet<String>,
) -> Result<EngagementSet, RulesError> {
    if raw.len() > u16::MAX as usize {
        return Err(at.err(
            "[[engagement]]",
            "too many rules".into(),
            "keep fewer than 65535",
        ));
    }
    let mut set = EngagementSet {
        rules: Vec::new(),
        half_lives: Vec::new(),
        by_type: Default::default(),
        needs_path: [false; 4],
        by_key: HashMap::new(),
    };
    for (i, r) in raw.into_iter().enumerate() {
        let loc = format!("[[engagement]] #{} \"{}\"", i + 1, r.name);
        check_name(&r.name, names).map_err(|(p, f)| at.err(&loc, p, f))?;
        let mut rule = compile_engagement_rule(at, &loc, r, default_half_life)?;
        rule.decay_class = decay_class(&mut set.half_lives, rule.half_life).ok_or_else(|| {
            at.err(
                &loc,
                "more than 255 distinct half-lives".into(),
                "use fewer distinct half-life values",
            )
        })?;
        let idx = set.rules.len() as u16;
        if let Some(other) = set.by_key.insert(rule.key, idx) {
            return Err(at.err(
                &loc,
                format!(
                    "the name hashes to the same key as \"{}\"",
                    set.rules[other as usize].name
                ),
                "rename one of the two rules",
            ));
        }
        if rule.criteria.url_path_prefix.is_some() {
            set.needs_path[rule.on.index()] = true;
        }
        set.by_type[rule.on.index()].push(idx);
        set.rules.push(rule);
    }
    Ok(set)
}

/// The decay class of a half-life: its index among the distinct half-lives (added when new);
/// `None` beyond 255 classes.
fn decay_class(half_lives: &mut Vec<Option<Micros>>, half_life: Option<Micros>) -> Option<u8> {
    match half_lives.iter().position(|h| *h == half_life) {
        Some(c) => Some(c as u8),
        None if half_lives.len() < 255 => {
            half_lives.push(half_life);
            Some((half_lives.len() - 1) as u8)
        }
        None => None,
    }
}

/// One `[[engagement]]` rule (decay class still 0).
fn compile_engagement_rule(
    at: &ErrorAt<'_>,
    loc: &str,
    r: EngagementToml,
    default_half_life: Option<Micros>,
) -> Result<EngagementRule, RulesError> {
    let on = EventType::parse(&r.on).ok_or_else(|| {
        at.err(
            loc,
            format!("field `on`: unknown event type `{}`", r.on),
            "use page_view, email_open, click or form_conversion",
        )
    })?;
    check_criteria_can_match(at, loc, &r, on)?;
    let points = rule_points(at, loc, &r)?;
    let shape = compile_shape(at, loc, &r, on)?;
    let half_life = match &r.half_life {
        Some(h) => parse_half_life(h)
            .map_err(|p| at.err(loc, format!("field `half_life`: {p}"), HALF_LIFE_FIX))?,
        None => default_half_life,
    };
    let max_per_day = match r.max_per_day {
        None => None,
        Some(n) if n >= 1 && n <= u32::MAX as i64 => Some(n as u32),
        Some(n) => {
            return Err(at.err(
                loc,
                format!("field `max_per_day` must be ≥ 1, got {n}"),
                "use a positive count, or remove the rule to disable it",
            ))
        }
    };
    let criteria = compile_criteria(at, loc, &r)?;
    Ok(EngagementRule {
        key: rule_key(&r.name),
        name: r.name,
        on,
        criteria,
        points,
        half_life,
        max_per_day,
        shape,
        decay_class: 0,
    })
}

/// `points`, or `points_per_second` (exactly one), finite.
fn rule_points(at: &ErrorAt<'_>, loc: &str, r: &EngagementToml) -> Result<f64, RulesError> {
    let p = match (r.points, r.points_per_second) {
        (Some(p), None) | (None, Some(p)) => p,
        _ => return Err(at.err(
            loc,
            "needs exactly one of `points` and `points_per_second`".into(),
            "set points = 10.0 (per event), or points_per_second = 0.1 (per second of duration_s)",
        )),
    };
    if !p.is_finite() {
        return Err(at.err(
            loc,
            "the points must be a finite number".into(),
            "set points = 10.0 or similar",
        ));
    }
    Ok(p)
}

/// Per-second points, count band, dwell band, count window, visit page.
fn compile_shape(
    at: &ErrorAt<'_>,
    loc: &str,
    r: &EngagementToml,
    on: EventType,
) -> Result<Shape, RulesError> {
    let bad = |(field, problem, fix): ShapeProblem| {
        at.err(loc, format!("field `{field}` {problem}"), fix)
    };
    check_per_second(r, on).map_err(bad)?;
    let band = check_count_band(r).map_err(bad)?;
    let dwell_band = check_dwell_band(r).map_err(bad)?;
    let count_window =
        check_count_window(r, band.is_some() || dwell_band.is_some()).map_err(bad)?;
    let visit_page = check_visit_page(r).map_err(bad)?;
    Ok(Shape {
        per_second: r.points_per_second.is_some(),
        max_seconds: r.max_seconds,
        band,
        dwell_band,
        count_window,
        visit_page,
    })
}

/// What is wrong with a shape key: (field, problem, fix).
type ShapeProblem = (&'static str, String, &'static str);

/// `max_seconds` needs `points_per_second`; per-second points and visit pages need page views.
fn check_per_second(r: &EngagementToml, on: EventType) -> Result<(), ShapeProblem> {
    if r.max_seconds.is_some() && r.points_per_second.is_none() {
        let fix = "remove it, or use points_per_second";
        return Err(("max_seconds", "needs points_per_second".into(), fix));
    }
    if let Some(m) = r.max_seconds.filter(|m| !(m.is_finite() && *m > 0.0)) {
        let fix = "use a number of seconds";
        return Err(("max_seconds", format!("must be > 0, got {m}"), fix));
    }
    if (r.points_per_second.is_some() || r.visit_page.is_some()) && on != EventType::PageView {
        let field = if r.visit_page.is_some() {
            "visit_page"
        } else {
            "points_per_second"
        };
        let fix = "use it with on = \"page_view\"";
        return Err((field, format!("can never match {on} events"), fix));
    }
    Ok(())
}

/// `nth = [k, m]` or `max_total = n`, at most one.
fn check_count_band(r: &EngagementToml) -> Result<Option<(u32, u32)>, ShapeProblem> {
    match (&r.nth, r.max_total) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(("nth", "and `max_total` both given".into(), "keep one")),
        (None, Some(n)) if n >= 1 && n <= u32::MAX as i64 => Ok(Some((1, n as u32))),
        (None, Some(n)) => Err((
            "max_total",
            format!("must be ≥ 1, got {n}"),
            "use a positive count",
        )),
        (Some(v), None) => nth_band(v).map(Some).ok_or_else(|| {
            (
                "nth",
                format!("must be [k, m] with 1 ≤ k ≤ m (m may be inf), got {v:?}"),
                "write nth = [4, 13] or nth = [4, inf]",
            )
        }),
    }
}

/// `count_window`: a positive duration, only with a band.
fn check_count_window(r: &EngagementToml, banded: bool) -> Result<Option<Micros>, ShapeProblem> {
    match &r.count_window {
        None => Ok(None),
        Some(_) if !banded => Err((
            "count_window",
            "needs nth, max_total or dwell_band".into(),
            "remove it, or add a band",
        )),
        Some(w) => positive_duration(w).map(Some).ok_or_else(|| {
            let fix = "use a duration such as \"30d\"";
            (
                "count_window",
                format!("`{w}` is not a positive duration"),
                fix,
            )
        }),
    }
}

/// `visit_page = n`, n ≥ 1.
fn check_visit_page(r: &EngagementToml) -> Result<Option<u32>, ShapeProblem> {
    match r.visit_page {
        None => Ok(None),
        Some(n) if n >= 1 && n <= u32::MAX as i64 => Ok(Some(n as u32)),
        Some(n) => Err((
            "visit_page",
            format!("must be ≥ 1, got {n}"),
            "1 is the first page of a visit",
        )),
    }
}

/// `dwell_band = [low, high]`: only with `points_per_second`, never with a count band.
fn check_dwell_band(r: &EngagementToml) -> Result<Option<(f64, f64)>, ShapeProblem> {
    let Some(v) = &r.dwell_band else {
        return Ok(None);
    };
    if r.points_per_second.is_none() {
        return Err((
            "dwell_band",
            "needs points_per_second".into(),
            "use points_per_second",
        ));
    }
    if r.nth.is_some() || r.max_total.is_some() {
        return Err((
            "dwell_band",
            "and a count band both given".into(),
            "keep one",
        ));
    }
    match v.as_slice() {
        [lo, hi] if lo.is_finite() && *lo >= 0.0 && !hi.is_nan() && lo < hi => Ok(Some((*lo, *hi))),
        _ => Err((
            "dwell_band",
            format!("must be [low, high) seconds with 0 ≤ low < high, got {v:?}"),
            "write dwell_band = [300, 700] or [700, inf]",
        )),
    }
}

/// `[k, m]` (1-based, inclusive; `m` may be `inf`) as a band.
fn nth_band(v: &[f64]) -> Option<(u32, u32)> {
    let int = |x: f64| (x.fract() == 0.0 && x >= 1.0 && x <= u32::MAX as f64).then_some(x as u32);
    match v {
        [k, m] if m.is_infinite() && *m > 0.0 => Some((int(*k)?, u32::MAX)),
        [k, m] => {
            let (k, m) = (int(*k)?, int(*m)?);
            (k <= m).then_some((k, m))
        }
        _ => None,
    }
}

/// Refuses criteria that can never match the rule's event type.
fn check_criteria_can_match(
    at: &ErrorAt<'_>,
    loc: &str,
    r: &EngagementToml,
    on: EventType,
) -> Result<(), RulesError> {
    use EventType::{Click, EmailOpen, FormConversion, PageView};
    let given: [(&str, bool, &[EventType]); 5] = [
        ("campaign_id", r.campaign_id.is_some(), &[EmailOpen, Click]),
        ("form_id", r.form_id.is_some(), &[FormConversion]),
        ("offer_stage", r.offer_stage.is_some(), &[FormConversion]),
        ("min_duration_s", r.min_duration_s.is_some(), &[PageView]),
        ("max_duration_s", r.max_duration_s.is_some(), &[PageView]),
    ];
    for (field, set, allowed) in given {
        if set && !allowed.contains(&on) {
            let names: Vec<String> = allowed
                .iter()
                .map(|t| format!("\"{}\"", t.as_str()))
                .collect();
            return Err(at.err(
                loc,
                format!("field `{field}` can never match {on} events"),
                &format!("remove `{field}` or set on = {}", names.join(" or ")),
            ));
        }
    }
    Ok(())
}

/// The match criteria of an engagement rule.
fn compile_criteria(
    at: &ErrorAt<'_>,
    loc: &str,
    r: &EngagementToml,
) -> Result<Criteria, RulesError> {
    let offer_stage = match &r.offer_stage {
        Some(s) => Some(OfferStage::parse(s).ok_or_else(|| {
            at.err(
                loc,
                format!("field `offer_stage`: unknown stage `{s}`"),
                "use tofu, mofu or bofu",
            )
        })?),
        None => None,
    };
    let url_regex = match &r.url_regex {
        Some(s) => Some(Regex::new(s).map_err(|e| {
            at.err(
                loc,
                format!("field `url_regex`: invalid regex: {e}"),
                "fix the regular expression (Rust regex syntax; no look-around)",
            )
        })?),
        None => None,
    };
    for (field, value) in [
        ("min_duration_s", r.min_duration_s),
        ("max_duration_s", r.max_duration_s),
    ] {
        if let Some(m) = value.filter(|m| !(m.is_finite() && *m >= 0.0)) {
            return Err(at.err(
                loc,
                format!("field `{field}` must be ≥ 0, got {m}"),
                "use a number of seconds",
            ));
        }
    }
    Ok(Criteria {
        url_path_prefix: r.url_path_prefix.clone(),
        url_contains: r.url_contains.clone(),
        url_regex,
        campaign_id: r.campaign_id.clone(),
        form_id: r.form_id.clone(),
        offer_stage,
        min_duration_s: r.min_duration_s,
        max_duration_s: r.max_duration_s,
    })
}

/// One `[[fit]]` rule.
fn compile_fit_rule(
    at: &ErrorAt<'_>,
    i: usize,
    r: FitToml,
    names: &mut HashSet<String>,
) -> Result<FitRule, RulesError> {
    let loc = format!("[[fit]] #{} \"{}\"", i + 1, r.name);
    check_name(&r.name, names).map_err(|(p, f)| at.err(&loc, p, f))?;
    if r.field.is_empty() {
        return Err(at.err(
            &loc,
            "field `field` is empty".into(),
            "name the profile field, e.g. field = \"job_title\"",
        ));
    }
    if !r.points.is_finite() {
        return Err(at.err(
            &loc,
            "field `points` must be a finite number".into(),
            "set points = 10.0 or similar",
        ));
    }
    let given = [
        r.matches.is_some(),
        r.equals.is_some(),
        r.in_.is_some(),
        r.range.is_some(),
        r.bin.is_some(),
        r.exists.is_some(),
        r.missing.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given != 1 {
        return Err(at.err(
            &loc,
            format!("needs exactly one condition, got {given}"),
            "keep exactly one of: matches, equals, in, range, bin, exists, missing",
        ));
    }
    let (name, field, points) = (r.name.clone(), r.field.clone(), r.points);
    let condition = fit_condition(at, &loc, r)?;
    Ok(FitRule {
        name,
        field,
        condition,
        points,
    })
}

/// The one condition of a fit rule.
fn fit_condition(at: &ErrorAt<'_>, loc: &str, r: FitToml) -> Result<FitCondition, RulesError> {
    let scalar = |v: &toml::Value, what: &str, fix: &str| {
        toml_scalar_text(v)
            .map(|t| t.to_lowercase())
            .ok_or_else(|| at.err(loc, what.into(), fix))
    };
    if let Some(m) = r.matches {
        return Ok(FitCondition::Matches(Regex::new(&m).map_err(|e| {
            at.err(
                loc,
                format!("field `matches`: invalid regex: {e}"),
                "fix the regular expression (Rust regex syntax; no look-around)",
            )
        })?));
    }
    if let Some(v) = r.equals {
        return Ok(FitCondition::Equals(scalar(
            &v,
            "field `equals` must be a string or a number",
            "quote the value",
        )?));
    }
    if let Some(list) = r.in_ {
        let values = list
            .iter()
            .map(|v| {
                scalar(
                    v,
                    "field `in` must list strings or numbers",
                    "quote the values",
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        if values.is_empty() {
            return Err(at.err(
                loc,
                "field `in` is empty and can never hold".into(),
                "list at least one value",
            ));
        }
        return Ok(FitCondition::In(values));
    }
    if let Some(c) = numeric_condition(at, loc, &r)? {
        return Ok(c);
    }
    if r.exists == Some(true) {
        return Ok(FitCondition::Exists);
    }
    if r.missing == Some(true) {
        return Ok(FitCondition::Missing);
    }
    if r.missing == Some(false) {
        return Err(at.err(
            loc,
            "`missing = false` is not a condition".into(),
            "use exists = true instead",
        ));
    }
    Err(at.err(
        loc,
        "`exists = false` is not a condition".into(),
        "use exists = true, or remove the rule",
    ))
}

/// `range = [a, b]` or `bin = [a, b]`, when given.
fn numeric_condition(
    at: &ErrorAt<'_>,
    loc: &str,
    r: &FitToml,
) -> Result<Option<FitCondition>, RulesError> {
    if let Some(range) = &r.range {
        return match range.as_slice() {
            // Open ends are allowed: `range = [5, inf]` means "at least 5".
            [lo, hi] if !lo.is_nan() && !hi.is_nan() && lo <= hi => {
                Ok(Some(FitCondition::Range(*lo, *hi)))
            }
            _ => Err(at.err(
                loc,
                format!("field `range` must be [low, high] with low ≤ high, got {range:?}"),
                "write range = [50, 5000]",
            )),
        };
    }
    if let Some(bin) = &r.bin {
        return match bin.as_slice() {
            [lo, hi] if !lo.is_nan() && !hi.is_nan() && lo < hi => {
                Ok(Some(FitCondition::Bin(*lo, *hi)))
            }
            _ => Err(at.err(
                loc,
                format!("field `bin` must be [low, high) with low < high, got {bin:?}"),
                "write bin = [50, 200] (50 ≤ x < 200; -inf and inf allowed)",
            )),
        };
    }
    Ok(None)
}

/// `[model]`, when present.
fn check_model(at: &ErrorAt<'_>, m: Option<ModelToml>) -> Result<Option<Model>, RulesError> {
    match m {
        None => Ok(None),
        Some(m) if m.intercept.is_finite() && m.scale.is_finite() && m.scale > 0.0 => {
            Ok(Some(Model {
                intercept: m.intercept,
                scale: m.scale,
            }))
        }
        Some(_) => Err(at.err(
            "[model]",
            "intercept must be finite and scale a positive number".into(),
            "regenerate the file with `leadscore train`",
        )),
    }
}

const HALF_LIFE_FIX: &str =
    "use a humantime duration such as \"12h\", \"7d\", \"30d\", or \"never\" for no decay";

/// Parses a half-life: humantime, or `never` (no decay).
pub fn parse_half_life(s: &str) -> Result<Option<Micros>, String> {
    if s.trim() == "never" {
        return Ok(None);
    }
    let d =
        humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration `{s}`: {e}"))?;
    let us = d.as_micros();
    if us == 0 || us > i64::MAX as u128 {
        return Err(format!("half-life `{s}` must be positive and finite"));
    }
    Ok(Some(us as Micros))
}

/// A positive, finite duration (humantime; `never` is none).
fn positive_duration(s: &str) -> Option<Micros> {
    parse_half_life(s).ok().flatten()
}

/// Stable 32-bit key of a rule name (xxh3), used instead of the name in persisted state.
pub fn rule_key(name: &str) -> u32 {
    xxhash_rust::xxh3::xxh3_64(name.as_bytes()) as u32
}

fn check_name(name: &str, seen: &mut HashSet<String>) -> Result<(), (String, &'static str)> {
    if name.trim().is_empty() {
        return Err((
            "field `name` is empty".into(),
            "give every rule a unique, non-empty name",
        ));
    }
    if !seen.insert(name.to_string()) {
        return Err((
            format!(
                "duplicate rule name \"{name}\" (names are unique across engagement and fit rules)"
            ),
            "rename one of the rules",
        ));
    }
    Ok(())
}

fn toml_scalar_text(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(crate::event::number_text(*f)),
        _ => None,
    }
}
