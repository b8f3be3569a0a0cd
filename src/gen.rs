//! `leadscore gen`: seeded, realistic synthetic lead activity.
//!
//! Every lead has a latent buying intent `z ~ N(0, 1)`. Intent raises how often the lead visits,
//! how deep it reads (pricing, demo, case studies rather than careers), how it reacts to email,
//! whether it converts on bottom-of-funnel forms, how senior its title is and whether it works
//! in a target industry. Email campaigns go out on a schedule; security scanners and image
//! proxies open and click right after the send (bot activity). The stream is delivered in time
//! order but a little out of order, with a few duplicates, and optionally a few broken lines.
//! Outcomes (`lead_id,converted,converted_at`) are drawn from the same intent.

use std::borrow::Cow;
use std::io::Write;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal, Normal, Poisson};

use crate::event::{Event, EventType, FieldValue, OfferStage};
use crate::numeric::sigmoid;
use crate::time::{format_rfc3339, Micros};

const SEC: Micros = 1_000_000;
const MIN: Micros = 60 * SEC;
const HOUR: Micros = 60 * MIN;
const DAY: Micros = 24 * HOUR;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// RNG seed: same seed, same stream.
    pub seed: u64,
    /// Number of leads.
    pub leads: usize,
    /// Start of the activity window.
    pub start: Micros,
    /// Length of the window in days.
    pub days: u32,
    /// Share of events delivered late (up to 15 minutes behind).
    pub late_fraction: f64,
    /// Share of events delivered twice.
    pub duplicate_fraction: f64,
    /// Share of lines replaced by malformed events (for dead-letter demos and tests).
    pub invalid_fraction: f64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 42,
            leads: 1000,
            start: crate::time::parse_rfc3339("2026-11-01T00:00:00Z").expect("valid"),
            days: 28,
            late_fraction: 0.02,
            duplicate_fraction: 0.005,
            invalid_fraction: 0.0,
        }
    }
}

/// One generated message, in delivery order.
#[derive(Debug, Clone)]
pub struct GenRecord {
    /// Delivery time (event time plus lateness); records are sorted by it.
    pub delivered_at: Micros,
    /// The lead (the Kafka message key).
    pub lead_id: String,
    /// The event, or `None` for a malformed line.
    pub event: Option<Event<'static>>,
    /// The malformed line when `event` is `None`.
    pub malformed: Option<String>,
}

impl GenRecord {
    /// The record as one NDJSON line (without the newline).
    pub fn json_line(&self) -> String {
        match (&self.event, &self.malformed) {
            (Some(ev), _) => ev.to_json(),
            (None, Some(m)) => m.clone(),
            (None, None) => String::new(),
        }
    }
}

/// Ground truth for one lead.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadOutcome {
    /// The lead.
    pub lead_id: String,
    /// Became a customer.
    pub converted: bool,
    /// When, if converted.
    pub converted_at: Option<Micros>,
    /// The latent intent the generator drew (for tests and diagnostics).
    pub intent: f64,
}

/// A generated stream and its outcomes.
#[derive(Debug, Clone, Default)]
pub struct Generated {
    /// Messages in delivery order.
    pub records: Vec<GenRecord>,
    /// One outcome per lead.
    pub outcomes: Vec<LeadOutcome>,
}

struct Campaign {
    id: String,
    sent_at: Micros,
    landing: &'static str,
}

const TITLES: [&[&str]; 4] = [
    &[
        "Software Engineer",
        "Marketing Specialist",
        "Data Analyst",
        "Student",
        "Consultant",
        "Sales Representative",
    ],
    &[
        "Engineering Manager",
        "Marketing Manager",
        "Product Manager",
        "IT Manager",
    ],
    &[
        "Director of Engineering",
        "Head of Marketing",
        "VP Sales",
        "Director of IT",
        "VP Engineering",
    ],
    &["CTO", "CEO", "CMO", "Chief Revenue Officer"],
];
const INDUSTRIES: [&str; 9] = [
    "software",
    "saas",
    "fintech",
    "healthcare",
    "retail",
    "education",
    "manufacturing",
    "government",
    "media",
];
const COUNTRIES: [(&str, f64); 9] = [
    ("US", 40.0),
    ("GB", 12.0),
    ("DE", 10.0),
    ("IN", 10.0),
    ("CA", 7.0),
    ("FR", 6.0),
    ("BR", 5.0),
    ("AU", 5.0),
    ("NL", 5.0),
];
const FIRST: [&str; 10] = [
    "ana", "ben", "chen", "dara", "eli", "fatima", "gus", "hana", "ivan", "jo",
];
const LAST: [&str; 10] = [
    "smith", "garcia", "kim", "novak", "okafor", "rossi", "patel", "muller", "silva", "tanaka",
];
const COMPANIES: [&str; 12] = [
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "vandelay",
    "stark",
    "wayne",
    "tyrell",
    "soylent",
    "cyberdyne",
    "wonka",
];
const FREE_MAIL: [&str; 3] = ["gmail.com", "outlook.com", "yahoo.com"];
const BOT_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (compatible; Mimecast URL Protect)",
    "Barracuda Sentinel (EE)",
    "Proofpoint URL Defense",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
];
const HUMAN_AGENTS: [&str; 3] = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Mail",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Outlook/16.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile",
];
const SITE: &str = "https://www.example-saas.com";

fn pick_weighted<'a, T>(rng: &mut ChaCha8Rng, items: &'a [(T, f64)]) -> &'a T {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random::<f64>() * total;
    for (item, w) in items {
        if x < *w {
            return item;
        }
        x -= w;
    }
    &items[items.len() - 1].0
}

struct LeadGen<'r> {
    rng: &'r mut ChaCha8Rng,
    lead_id: String,
    events: Vec<Event<'static>>,
}

impl LeadGen<'_> {
    fn id(&mut self) -> Cow<'static, str> {
        Cow::Owned(format!("e-{:016x}", self.rng.random::<u64>()))
    }

    fn base(&mut self, kind: EventType, ts: Micros) -> Event<'static> {
        // Trackers stamp milliseconds.
        let ts = ts - ts.rem_euclid(1000);
        Event {
            event_id: self.id(),
            kind,
            lead_id: Cow::Owned(self.lead_id.clone()),
            ts,
            url: None,
            duration_s: None,
            campaign_id: None,
            sent_at: None,
            user_agent: None,
            form_id: None,
            offer_stage: None,
            fields: Vec::new(),
        }
    }

    fn page_view(&mut self, ts: Micros, path: String) {
        let mut ev = self.base(EventType::PageView, ts);
        ev.url = Some(Cow::Owned(format!("{SITE}{path}")));
        let d: f64 = LogNormal::new(3.6, 1.0).unwrap().sample(self.rng);
        ev.duration_s = Some((d.min(3600.0) * 10.0).round() / 10.0);
        self.events.push(ev);
    }
}

/// Who a lead is: drawn from its latent intent `z`.
struct Profile {
    tier: usize,
    title: &'static str,
    industry: &'static str,
    size: f64,
    country: &'static str,
    corporate: bool,
    email: String,
    /// A corporate mail scanner opens and clicks every email at once.
    scanner: bool,
}

/// The newsletter, webinar-invite and pricing-update campaigns of the activity window.
fn schedule_campaigns(cfg: &GenConfig, end: Micros) -> Vec<Campaign> {
    let mut campaigns = Vec::new();
    let mut t = cfg.start + 2 * DAY + 14 * HOUR;
    let mut n = 0;
    while t < end {
        campaigns.push(Campaign {
            id: format!("newsletter-{:02}", n + 1),
            sent_at: t,
            landing: "/blog/",
        });
        if n % 2 == 1 {
            campaigns.push(Campaign {
                id: format!("webinar-invite-{:02}", n / 2 + 1),
                sent_at: t + DAY + 2 * HOUR,
                landing: "/webinars/",
            });
        }
        if n == 2 {
            campaigns.push(Campaign {
                id: "pricing-update".into(),
                sent_at: t + 3 * DAY,
                landing: "/pricing",
            });
        }
        t += 7 * DAY;
        n += 1;
    }
    campaigns
}

/// Generates a stream: per lead, its profile, web sessions, forms, email activity and outcome,
/// then each event's delivery.
pub fn generate(cfg: &GenConfig) -> Generated {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let end = cfg.start + cfg.days as Micros * DAY;
    let campaigns = schedule_campaigns(cfg, end);
    let normal = Normal::new(0.0, 1.0).unwrap();
    let mut records = Vec::new();
    let mut outcomes = Vec::with_capacity(cfg.leads);
    for i in 0..cfg.leads {
        let lead_id = format!("L-{:06}", i + 1);
        let z: f64 = normal.sample(&mut rng);
        let created = cfg.start + (rng.random::<f64>() * 0.8 * (end - cfg.start) as f64) as Micros;
        let mut g = LeadGen {
            rng: &mut rng,
            lead_id: lead_id.clone(),
            events: Vec::new(),
        };
        let profile = g.profile(z);
        let session_times = g.web_sessions(z, created, end);
        let wants_demo = g.forms(z, created, &session_times, &profile);
        g.emails(z, created, &campaigns, &profile);
        let (converted, converted_at) = g.outcome(z, created, &profile, wants_demo);
        let events = std::mem::take(&mut g.events);
        deliver(&mut rng, cfg, &lead_id, events, end, &mut records);
        outcomes.push(LeadOutcome {
            lead_id,
            converted,
            converted_at,
            intent: z,
        });
    }
    records.sort_by_key(|r| r.delivered_at);
    Generated { records, outcomes }
}

impl LeadGen<'_> {
    /// Who the lead is.
    fn profile(&mut self, z: f64) -> Profile {
        let tier_w: Vec<(usize, f64)> = (0..4)
            .map(|k| (k, [5.0, 3.0, 1.5, 0.5][k] * (0.45 * z * k as f64).exp()))
            .collect();
        let tier = *pick_weighted(self.rng, &tier_w);
        let title = TITLES[tier][self.rng.random_range(0..TITLES[tier].len())];
        let ind_w: Vec<(&str, f64)> = INDUSTRIES
            .iter()
            .enumerate()
            .map(|(k, s)| (*s, if k < 2 { 1.5 * (0.5 * z).exp() } else { 1.0 }))
            .collect();
        let industry = *pick_weighted(self.rng, &ind_w);
        let size: f64 = LogNormal::new((80.0f64).ln() + 0.3 * z, 1.4)
            .unwrap()
            .sample(self.rng);
        let size = size.max(1.0).round();
        let country = *pick_weighted(self.rng, &COUNTRIES);
        let corporate = self.rng.random::<f64>() < sigmoid(0.8 + 0.6 * z);
        let first = FIRST[self.rng.random_range(0..FIRST.len())];
        let last = LAST[self.rng.random_range(0..LAST.len())];
        let company = COMPANIES[self.rng.random_range(0..COMPANIES.len())];
        let domain = if corporate {
            format!("{company}.com")
        } else {
            FREE_MAIL[self.rng.random_range(0..FREE_MAIL.len())].to_string()
        };
        let email = format!("{first}.{last}@{domain}");
        let scanner = corporate && self.rng.random::<f64>() < 0.08;
        Profile {
            tier,
            title,
            industry,
            size,
            country,
            corporate,
            email,
            scanner,
        }
    }

    /// Web sessions of page views; returns their start times.
    fn web_sessions(&mut self, z: f64, created: Micros, end: Micros) -> Vec<Micros> {
        let sessions = 1 + Poisson::new(1.4 * (0.5 * z).exp())
            .unwrap()
            .sample(self.rng) as usize;
        let gap = Exp::new(1.0 / (0.2 * (end - created) as f64)).unwrap();
        let pages: [(&str, f64); 8] = [
            ("/blog/", 4.0),
            ("/docs/", 1.5 * (0.4 * z).exp()),
            ("/product/", 2.0),
            ("/pricing", 0.5 * (0.9 * z).exp()),
            ("/demo", 0.15 * (1.1 * z).exp()),
            ("/case-studies/", 0.4 * (0.6 * z).exp()),
            ("/careers", 0.4 * (-0.6 * z).exp()),
            ("/", 1.0),
        ];
        let mut session_times = Vec::new();
        let mut st = created;
        for _ in 0..sessions {
            if st >= end {
                break;
            }
            session_times.push(st);
            let depth = 1 + Poisson::new(1.2 + 0.6 * z.max(0.0))
                .unwrap()
                .sample(self.rng) as usize;
            let mut pt = st;
            for _ in 0..depth.min(12) {
                let section = *pick_weighted(self.rng, &pages);
                let path = match section {
                    "/blog/" | "/docs/" | "/product/" | "/case-studies/" => {
                        format!("{section}article-{}", self.rng.random_range(1..40))
                    }
                    s => s.to_string(),
                };
                self.page_view(pt, path);
                pt += self.rng.random_range(20 * SEC..180 * SEC);
            }
            st += gap.sample(self.rng) as Micros + 30 * MIN;
        }
        session_times
    }

    /// Form conversions; the first one carries the profile. Returns whether the lead asked for
    /// a demo.
    fn forms(&mut self, z: f64, created: Micros, sessions: &[Micros], p: &Profile) -> bool {
        let mut forms: Vec<(&str, OfferStage, f64)> = Vec::new();
        if self.rng.random::<f64>() < sigmoid(-0.6 + 0.3 * z) {
            forms.push(("ebook-download", OfferStage::Tofu, 0.0));
        }
        if self.rng.random::<f64>() < sigmoid(-1.8 + 0.8 * z) {
            forms.push(("webinar-registration", OfferStage::Mofu, 0.3));
        }
        let wants_demo = self.rng.random::<f64>() < sigmoid(-3.3 + 1.4 * z);
        if wants_demo {
            let f = if self.rng.random::<bool>() {
                "demo-request"
            } else {
                "contact-sales"
            };
            forms.push((f, OfferStage::Bofu, 0.7));
        }
        for (k, (form, stage, pos)) in forms.iter().enumerate() {
            let idx = ((sessions.len() as f64 - 1.0) * pos).round() as usize;
            let ts = sessions.get(idx).copied().unwrap_or(created)
                + self.rng.random_range(30 * SEC..600 * SEC);
            let mut ev = self.base(EventType::FormConversion, ts);
            ev.form_id = Some(Cow::Borrowed(form));
            ev.offer_stage = Some(*stage);
            ev.url = Some(Cow::Owned(format!("{SITE}/forms/{form}")));
            ev.fields = self.form_fields(k == 0, p);
            ev.fields.sort_by(|a, b| a.0.cmp(&b.0));
            self.events.push(ev);
        }
        wants_demo
    }

    /// The fields of a form: the whole profile on the first one; on a later one, sometimes an
    /// updated title (a promotion or a more honest answer).
    fn form_fields(
        &mut self,
        first: bool,
        p: &Profile,
    ) -> Vec<(Cow<'static, str>, FieldValue<'static>)> {
        let text = |v: &str| FieldValue::Str(Cow::Owned(v.to_string()));
        if first {
            let size_value = if self.rng.random::<f64>() < 0.1 {
                FieldValue::Str(Cow::Owned(format!("{}", p.size)))
            } else {
                FieldValue::Num(p.size)
            };
            return vec![
                (Cow::Borrowed("email"), text(&p.email)),
                (
                    Cow::Borrowed("job_title"),
                    FieldValue::Str(Cow::Borrowed(p.title)),
                ),
                (
                    Cow::Borrowed("industry"),
                    FieldValue::Str(Cow::Borrowed(p.industry)),
                ),
                (Cow::Borrowed("company_size"), size_value),
                (
                    Cow::Borrowed("country"),
                    FieldValue::Str(Cow::Borrowed(p.country)),
                ),
            ];
        }
        if self.rng.random::<f64>() < 0.15 {
            let up = (p.tier + 1).min(3);
            let t2 = TITLES[up][self.rng.random_range(0..TITLES[up].len())];
            return vec![
                (Cow::Borrowed("email"), text(&p.email)),
                (
                    Cow::Borrowed("job_title"),
                    FieldValue::Str(Cow::Borrowed(t2)),
                ),
            ];
        }
        Vec::new()
    }

    /// Opens and clicks of the campaigns sent after the lead appeared: a scanner's or a free-mail
    /// proxy's (bot activity), then the person's own.
    fn emails(&mut self, z: f64, created: Micros, campaigns: &[Campaign], p: &Profile) {
        for c in campaigns {
            if c.sent_at < created || self.rng.random::<f64>() > 0.85 {
                continue;
            }
            if p.scanner || (!p.corporate && self.rng.random::<f64>() < 0.25) {
                let ua = if p.scanner {
                    BOT_AGENTS[self.rng.random_range(0..3)]
                } else {
                    BOT_AGENTS[3]
                };
                let ts = c.sent_at + self.rng.random_range(200_000..1_800_000);
                self.email_open(c, ts, ua);
                if p.scanner {
                    let cts = ts + self.rng.random_range(0..500_000);
                    self.email_click(c, cts, ua);
                }
            }
            if self.rng.random::<f64>() < sigmoid(-0.9 + 0.7 * z) {
                let delay: f64 = LogNormal::new((3.0f64 * 3600.0).ln(), 1.2)
                    .unwrap()
                    .sample(self.rng);
                let ts = c.sent_at + (delay * SEC as f64) as Micros + 5 * SEC;
                let ua = HUMAN_AGENTS[self.rng.random_range(0..HUMAN_AGENTS.len())];
                self.email_open(c, ts, ua);
                if self.rng.random::<f64>() < sigmoid(-1.2 + 0.8 * z) {
                    let cts = ts + self.rng.random_range(5 * SEC..5 * MIN);
                    self.email_click(c, cts, ua);
                    self.page_view(cts + 2 * SEC, c.landing.to_string());
                }
            }
        }
    }

    fn email_open(&mut self, c: &Campaign, ts: Micros, ua: &'static str) {
        let mut ev = self.base(EventType::EmailOpen, ts);
        ev.campaign_id = Some(Cow::Owned(c.id.clone()));
        ev.sent_at = Some(c.sent_at);
        ev.user_agent = Some(Cow::Borrowed(ua));
        self.events.push(ev);
    }

    fn email_click(&mut self, c: &Campaign, ts: Micros, ua: &'static str) {
        let mut click = self.base(EventType::Click, ts);
        click.campaign_id = Some(Cow::Owned(c.id.clone()));
        click.sent_at = Some(c.sent_at);
        click.user_agent = Some(Cow::Borrowed(ua));
        click.url = Some(Cow::Owned(format!("{SITE}{}", c.landing)));
        self.events.push(click);
    }

    /// Whether and when the lead converts: logistic in intent, seniority, industry and a demo
    /// request.
    fn outcome(
        &mut self,
        z: f64,
        created: Micros,
        p: &Profile,
        wants_demo: bool,
    ) -> (bool, Option<Micros>) {
        let last_ts = self.events.iter().map(|e| e.ts).max().unwrap_or(created);
        let logit = -4.0
            + 1.5 * z
            + if p.tier >= 2 { 0.5 } else { 0.0 }
            + if p.industry == "software" || p.industry == "saas" {
                0.3
            } else {
                0.0
            }
            + if wants_demo { 0.8 } else { 0.0 };
        let converted = self.rng.random::<f64>() < sigmoid(logit);
        let converted_at = converted.then(|| {
            last_ts + (Exp::new(1.0 / 4.0).unwrap().sample(self.rng) * DAY as f64) as Micros + HOUR
        });
        (converted, converted_at)
    }
}

/// Delivery: mostly in order, some late, a few twice, optionally some broken.
fn deliver(
    rng: &mut ChaCha8Rng,
    cfg: &GenConfig,
    lead_id: &str,
    events: Vec<Event<'static>>,
    end: Micros,
    records: &mut Vec<GenRecord>,
) {
    for ev in events {
        if ev.ts >= end {
            continue;
        }
        let late = if rng.random::<f64>() < cfg.late_fraction {
            rng.random_range(SEC..15 * MIN)
        } else {
            rng.random_range(0..500_000)
        };
        let delivered_at = ev.ts + late;
        if rng.random::<f64>() < cfg.invalid_fraction {
            records.push(GenRecord {
                delivered_at,
                lead_id: lead_id.to_string(),
                event: None,
                malformed: Some(malform(rng, &ev)),
            });
            continue;
        }
        if rng.random::<f64>() < cfg.duplicate_fraction {
            records.push(GenRecord {
                delivered_at: delivered_at + rng.random_range(SEC..2 * MIN),
                lead_id: lead_id.to_string(),
                event: Some(ev.clone()),
                malformed: None,
            });
        }
        records.push(GenRecord {
            delivered_at,
            lead_id: lead_id.to_string(),
            event: Some(ev),
            malformed: None,
        });
    }
}

/// A broken variant of an event: one of the kinds of bad input SPEC §2 names.
fn malform(rng: &mut ChaCha8Rng, ev: &Event<'_>) -> String {
    let good = ev.to_json();
    match rng.random_range(0..6) {
        0 => good[..good.len() / 2].to_string(),
        1 => good.replacen("\"ts\":", "\"timestamp\":", 1),
        2 => good.replacen(ev.kind.as_str(), "page_veiw", 1),
        3 => {
            let ts = format_rfc3339(ev.ts);
            good.replacen(&ts, "yesterday at noon", 1)
        }
        4 => good.replacen("\"event_id\":\"", "\"event_id\":42,\"x\":\"", 1),
        _ => format!("[{good}]"),
    }
}

/// Writes records as NDJSON.
pub fn write_ndjson(records: &[GenRecord], mut out: impl Write) -> std::io::Result<()> {
    for r in records {
        out.write_all(r.json_line().as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

const REJECT_REASONS: [&str; 5] = [
    "no budget",
    "wrong persona",
    "student",
    "competitor",
    "bad timing",
];
const LOSS_REASONS: [&str; 3] = ["no decision", "chose a competitor", "price"];

/// Sales verdicts for every generated lead (SPEC §2b), sorted by time: a converter is
/// `accepted`, then `won` at its conversion; any other lead is `rejected` (more likely with
/// low intent) part-way through its activity, so some come back after it, or `accepted`
/// after its last activity and later `lost`. Every lead ends
/// with a final verdict, so [`crate::verdict::final_outcomes`] of the stream equals
/// [`Generated::outcomes`]. Drawn from its own seed: the event stream does not change.
pub fn verdicts(g: &Generated, seed: u64) -> Vec<crate::verdict::Verdict> {
    use crate::verdict::{SalesOutcome, Verdict};
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5a1e_5eed);
    let mut span: std::collections::HashMap<&str, (Micros, Micros)> = Default::default();
    for r in &g.records {
        if let Some(ev) = &r.event {
            let (a, b) = span.entry(r.lead_id.as_str()).or_insert((ev.ts, ev.ts));
            (*a, *b) = ((*a).min(ev.ts), (*b).max(ev.ts));
        }
    }
    let mut out = Vec::with_capacity(g.outcomes.len() * 2);
    for o in &g.outcomes {
        let (first, base) = span.get(o.lead_id.as_str()).copied().unwrap_or((0, 0));
        let v = |ts: Micros, outcome, reason: Option<&str>| Verdict {
            lead_id: o.lead_id.clone(),
            ts,
            outcome,
            reason: reason.map(String::from),
            sales_ready_event_id: None,
        };
        match o.converted_at {
            Some(won_at) => {
                let accepted_at =
                    base + ((won_at - base) as f64 * rng.random_range(0.1..0.6)) as Micros;
                out.push(v(accepted_at, SalesOutcome::Accepted, None));
                out.push(v(won_at, SalesOutcome::Won, None));
            }
            None if rng.random::<f64>() < if o.intent < 0.0 { 0.6 } else { 0.3 } => {
                let at =
                    first + ((base - first) as f64 * rng.random_range(0.2..1.0)) as Micros + HOUR;
                let reason = REJECT_REASONS[rng.random_range(0..REJECT_REASONS.len())];
                out.push(v(at, SalesOutcome::Rejected, Some(reason)));
            }
            None => {
                let accepted_at = base + rng.random_range(HOUR..2 * DAY);
                let lost_at = accepted_at + rng.random_range(3 * DAY..20 * DAY);
                let reason = LOSS_REASONS[rng.random_range(0..LOSS_REASONS.len())];
                out.push(v(accepted_at, SalesOutcome::Accepted, None));
                out.push(v(lost_at, SalesOutcome::Lost, Some(reason)));
            }
        }
    }
    out.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.lead_id.cmp(&b.lead_id)));
    out
}

/// Writes outcomes as CSV: `lead_id,converted,converted_at`.
pub fn write_outcomes(outcomes: &[LeadOutcome], out: impl Write) -> std::io::Result<()> {
    crate::train::data::write_outcomes(
        outcomes
            .iter()
            .map(|o| (o.lead_id.as_str(), o.converted, o.converted_at)),
        out,
    )
}
