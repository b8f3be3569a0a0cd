//! Service settings ([SPEC](../docs/SPEC.md) §7): an optional TOML file, then `LEADSCORE_*`
//! environment overrides, then validation that names the source, the field and the fix.
//!
//! Every setting is defined once, in [`KEYS`]: its TOML key, its environment variable, its
//! default, its meaning and its parser. The TOML file and the environment go through the same
//! parsers; `--check` prints the settings from the table, and docs/CONFIG.md's table is
//! generated from it ([`docs_table`], checked by a test).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::event::{Limits, PayloadFormat};

/// Delivery guarantee of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarantee {
    /// Offsets committed after outputs are acknowledged; a crash may re-send `sales_ready`
    /// (same `event_id`).
    AtLeastOnce,
    /// Kafka transactions: outputs and offsets commit together.
    ExactlyOnce,
}

/// How the consumer group assigns input partitions to instances (docs/CONFIG.md "Choosing an
/// assignment").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment {
    /// Classic protocol, eager `range` assignor: every rebalance revokes every partition; the
    /// same partition number of every input topic goes to the same instance (co-partitioning).
    Range,
    /// Classic protocol, `cooperative-sticky` assignor: incremental rebalances that move only
    /// the partitions that change owner. One input topic only (it does not co-partition).
    CooperativeSticky,
    /// Kafka 4's consumer group protocol (KIP-848, `group.protocol=consumer`): the broker
    /// assigns incrementally; the server-side `range` assignor keeps several input topics
    /// co-partitioned, `uniform` is used for one.
    Consumer,
}

impl Assignment {
    /// The name used in settings.
    pub fn as_str(self) -> &'static str {
        match self {
            Assignment::Range => "range",
            Assignment::CooperativeSticky => "cooperative-sticky",
            Assignment::Consumer => "consumer",
        }
    }
}

/// Encoding of the `sales_ready` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// SPEC §5 JSON.
    Json,
    /// `leadscore.v1.SalesReady`.
    Protobuf,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// All service settings; see [`KEYS`] and docs/CONFIG.md.
#[derive(Debug, Clone)]
pub struct Config {
    /// Bootstrap servers.
    pub brokers: String,
    /// Consumer group.
    pub group_id: String,
    /// Stable identity of this instance in the group (static membership).
    pub instance_id: Option<String>,
    /// Input topics (co-partitioned when more than one).
    pub input_topics: Vec<String>,
    /// `sales_ready` topic.
    pub output_topic: String,
    /// Dead-letter topic.
    pub dlq_topic: String,
    /// Sales verdicts topic (SPEC §2b); when set it is also the last of `input_topics`.
    pub outcomes_topic: Option<String>,
    /// Rules file.
    pub rules: PathBuf,
    /// Local state directory.
    pub state_dir: PathBuf,
    /// HTTP listener.
    pub http_addr: SocketAddr,
    /// Delivery guarantee.
    pub guarantee: Guarantee,
    /// Partition assignment protocol and strategy.
    pub assignment: Assignment,
    /// Input payload encoding.
    pub input_format: PayloadFormat,
    /// Output payload encoding.
    pub output_format: OutputFormat,
    /// Log format.
    pub log_format: LogFormat,
    /// How often state is checkpointed and offsets committed.
    pub commit_interval: Duration,
    /// Eviction: score floor.
    pub retention_floor: f64,
    /// Eviction: idle time in event time.
    pub retention_ttl: Duration,
    /// How often each partition is swept for evictable leads.
    pub retention_sweep: Duration,
    /// How often librdkafka statistics (consumer lag) are refreshed.
    pub statistics_interval: Duration,
    /// Most leads kept in memory across all partitions (`None`: all); the rest live only in
    /// the partitions' local stores and are read back on their next event.
    pub max_leads_in_memory: Option<usize>,
    /// Page cache of each partition's local store, in bytes.
    pub store_cache_bytes: usize,
    /// Bounds on one input message (message size, headers, strings, profile fields).
    pub limits: Limits,
    /// How far ahead of the wall clock an event may be dated.
    pub max_clock_skew: Duration,
    /// How far behind the wall clock an event may be dated (`None`: no bound).
    pub max_event_age: Option<Duration>,
    /// How long an erasure is remembered (wall clock).
    pub erasure_retention: Duration,
    /// Bearer token of `/v1/*` (`None`: lookups open, erasure over HTTP off).
    pub http_token: Option<String>,
    /// librdkafka properties passed through unchanged (security.protocol, sasl.*, ssl.*, ...).
    pub kafka: BTreeMap<String, String>,
}

impl Config {
    /// Leads each of `partitions` active partitions may keep in memory (`usize::MAX`: all).
    pub fn leads_per_partition(&self, partitions: usize) -> usize {
        self.max_leads_in_memory
            .map_or(usize::MAX, |n| (n / partitions.max(1)).max(1))
    }
}

/// Why a value does not parse, and how to fix it.
pub struct Invalid {
    problem: String,
    fix: String,
}

impl Invalid {
    fn new(problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Invalid {
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// One setting, defined once: where it is read from, its default, what it means, how it is
/// parsed and shown.
pub struct Key {
    /// TOML key.
    pub toml: &'static str,
    /// Environment variable.
    pub env: &'static str,
    /// An older name accepted for both (TOML key, variable).
    pub alias: Option<(&'static str, &'static str)>,
    /// The default, as it would be written (empty: unset).
    pub default: &'static str,
    /// What it does (a docs/CONFIG.md cell).
    pub meaning: &'static str,
    set: fn(&mut Config, &str) -> Result<(), Invalid>,
    show: fn(&Config) -> String,
}

fn text(v: &str) -> Result<String, Invalid> {
    Ok(v.to_string())
}

/// A bearer token: empty means none; otherwise at least 16 characters.
fn token(v: &str) -> Result<Option<String>, Invalid> {
    match v.trim() {
        "" => Ok(None),
        t if t.chars().count() < 16 => Err(Invalid::new(
            "shorter than 16 characters",
            "use a long random token, e.g. `openssl rand -hex 24`",
        )),
        t => Ok(Some(t.to_string())),
    }
}

/// A whole number of at least `min`.
fn count(v: &str, min: usize) -> Result<usize, Invalid> {
    match v.trim().parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(Invalid::new(
            "not a whole number in range",
            format!("use a whole number ≥ {min}"),
        )),
    }
}

fn duration(v: &str) -> Result<Duration, Invalid> {
    const FIX: &str = "use a humantime duration such as 500ms, 1s, 5m or 90d";
    match humantime::parse_duration(v.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(Invalid::new(format!("`{v}` must be positive"), FIX)),
        Err(e) => Err(Invalid::new(format!("`{v}`: {e}"), FIX)),
    }
}

fn choice<T: Copy>(v: &str, options: &[(&str, T)]) -> Result<T, Invalid> {
    let wanted = v.trim().to_ascii_lowercase();
    options
        .iter()
        .find(|(name, _)| *name == wanted)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            Invalid::new(
                format!("unknown value `{v}`"),
                format!("use {}", names.join(" or ")),
            )
        })
}

fn name_of<T: PartialEq + Copy>(t: T, options: &[(&'static str, T)]) -> String {
    options
        .iter()
        .find(|(_, x)| *x == t)
        .map_or("?", |(n, _)| n)
        .to_string()
}

const GUARANTEES: &[(&str, Guarantee)] = &[
    ("at_least_once", Guarantee::AtLeastOnce),
    ("exactly_once", Guarantee::ExactlyOnce),
];
const ASSIGNMENTS: &[(&str, Assignment)] = &[
    ("range", Assignment::Range),
    ("cooperative-sticky", Assignment::CooperativeSticky),
    ("consumer", Assignment::Consumer),
];
const INPUT_FORMATS: &[(&str, PayloadFormat)] = &[
    ("auto", PayloadFormat::Auto),
    ("json", PayloadFormat::Json),
    ("protobuf", PayloadFormat::Protobuf),
];
const OUTPUT_FORMATS: &[(&str, OutputFormat)] = &[
    ("json", OutputFormat::Json),
    ("protobuf", OutputFormat::Protobuf),
];
const LOG_FORMATS: &[(&str, LogFormat)] = &[("text", LogFormat::Text), ("json", LogFormat::Json)];

/// A duration in the largest whole unit of d, h, m, s or ms (humantime would say "2months").
fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ]
    .iter()
    .find(|(unit, _)| ms % unit == 0)
    .map_or(format!("{ms}ms"), |(unit, name)| {
        format!("{}{name}", ms / unit)
    })
}

/// Every setting of `leadscore run` (the `[kafka]` passthrough table aside).
pub const KEYS: &[Key] = &[
    Key {
        toml: "brokers",
        env: "LEADSCORE_BROKERS",
        alias: None,
        default: "localhost:9092",
        meaning: "bootstrap servers, `host:port[,host:port]`",
        set: |c, v| {
            c.brokers = text(v)?;
            Ok(())
        },
        show: |c| c.brokers.clone(),
    },
    Key {
        toml: "group_id",
        env: "LEADSCORE_GROUP_ID",
        alias: None,
        default: "leadscore",
        meaning: "consumer group; instances of one group share the partitions; also names the state changelog `<group_id>-state-changelog`",
        set: |c, v| {
            c.group_id = text(v)?;
            Ok(())
        },
        show: |c| c.group_id.clone(),
    },
    Key {
        toml: "instance_id",
        env: "LEADSCORE_INSTANCE_ID",
        alias: None,
        default: "",
        meaning: "stable instance identity (static membership, e.g. the pod name): a restarted instance gets its partitions back at once; unset: dynamic membership",
        set: |c, v| {
            c.instance_id = Some(v.trim().to_string()).filter(|v| !v.is_empty());
            Ok(())
        },
        show: |c| c.instance_id.clone().unwrap_or_default(),
    },
    Key {
        toml: "input_topics",
        env: "LEADSCORE_INPUT_TOPICS",
        alias: None,
        default: "lead-events",
        meaning: "input topics (TOML: a list; environment: comma-separated); several must be co-partitioned (same partition count and key partitioner)",
        set: |c, v| {
            c.input_topics = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            Ok(())
        },
        show: |c| c.input_topics.join(","),
    },
    Key {
        toml: "output_topic",
        env: "LEADSCORE_OUTPUT_TOPIC",
        alias: None,
        default: "sales-ready",
        meaning: "`sales_ready` events, key = lead_id",
        set: |c, v| {
            c.output_topic = text(v)?;
            Ok(())
        },
        show: |c| c.output_topic.clone(),
    },
    Key {
        toml: "dlq_topic",
        env: "LEADSCORE_DLQ_TOPIC",
        alias: None,
        default: "lead-events-dlq",
        meaning: "invalid input, unchanged, with `leadscore.error` and `leadscore.source` headers",
        set: |c, v| {
            c.dlq_topic = text(v)?;
            Ok(())
        },
        show: |c| c.dlq_topic.clone(),
    },
    Key {
        toml: "outcomes_topic",
        env: "LEADSCORE_OUTCOMES_TOPIC",
        alias: None,
        default: "",
        meaning: "sales verdicts (`lead-outcomes`, SPEC §2b), consumed beside the input topics and co-partitioned with them; unset: none",
        set: |c, v| {
            c.outcomes_topic = Some(v.trim().to_string()).filter(|v| !v.is_empty());
            Ok(())
        },
        show: |c| c.outcomes_topic.clone().unwrap_or_default(),
    },
    Key {
        toml: "rules",
        env: "LEADSCORE_RULES",
        alias: None,
        default: "rules.toml",
        meaning: "rules file ([SPEC](SPEC.md) §3)",
        set: |c, v| {
            c.rules = v.into();
            Ok(())
        },
        show: |c| c.rules.display().to_string(),
    },
    Key {
        toml: "state_dir",
        env: "LEADSCORE_STATE_DIR",
        alias: None,
        default: "./state",
        meaning: "local state: `<state_dir>/<group_id>/partition-<p>.redb`; losing it is safe (restored from the changelog)",
        set: |c, v| {
            c.state_dir = v.into();
            Ok(())
        },
        show: |c| c.state_dir.display().to_string(),
    },
    Key {
        toml: "http_addr",
        env: "LEADSCORE_HTTP_ADDR",
        alias: None,
        default: "127.0.0.1:9464",
        meaning: "HTTP listener (`/metrics`, `/healthz`, `/readyz`, `/v1/leads/{id}`)",
        set: |c, v| {
            c.http_addr = v.trim().parse().map_err(|e| {
                Invalid::new(
                    format!("`{v}` is not host:port ({e})"),
                    "use an IP and port such as 127.0.0.1:9464 or 0.0.0.0:9464",
                )
            })?;
            Ok(())
        },
        show: |c| c.http_addr.to_string(),
    },
    Key {
        toml: "guarantee",
        env: "LEADSCORE_GUARANTEE",
        alias: None,
        default: "at_least_once",
        meaning: "`at_least_once` or `exactly_once` (docs/ARCHITECTURE.md, \"Delivery guarantees\")",
        set: |c, v| {
            c.guarantee = choice(v, GUARANTEES)?;
            Ok(())
        },
        show: |c| name_of(c.guarantee, GUARANTEES),
    },
    Key {
        toml: "assignment",
        env: "LEADSCORE_ASSIGNMENT",
        alias: None,
        default: "range",
        meaning: "`range` (classic, eager, co-partitions several input topics), `cooperative-sticky` (classic, incremental; one input topic only), `consumer` (Kafka 4's KIP-848 protocol, broker-side assignment); see \"Choosing an assignment\"",
        set: |c, v| {
            c.assignment = choice(v, ASSIGNMENTS)?;
            Ok(())
        },
        show: |c| name_of(c.assignment, ASSIGNMENTS),
    },
    Key {
        toml: "input_format",
        env: "LEADSCORE_INPUT_FORMAT",
        alias: None,
        default: "auto",
        meaning: "`auto` (JSON if the payload starts with `{`/`[`, else Protobuf), `json`, `protobuf`",
        set: |c, v| {
            c.input_format = choice(v, INPUT_FORMATS)?;
            Ok(())
        },
        show: |c| name_of(c.input_format, INPUT_FORMATS),
    },
    Key {
        toml: "output_format",
        env: "LEADSCORE_OUTPUT_FORMAT",
        alias: None,
        default: "json",
        meaning: "`json` ([SPEC](SPEC.md) §5) or `protobuf` (`leadscore.v1.SalesReady`)",
        set: |c, v| {
            c.output_format = choice(v, OUTPUT_FORMATS)?;
            Ok(())
        },
        show: |c| name_of(c.output_format, OUTPUT_FORMATS),
    },
    Key {
        toml: "log_format",
        env: "LEADSCORE_LOG_FORMAT",
        alias: None,
        default: "text",
        meaning: "`text` or `json` (log level: `RUST_LOG`, default `info`)",
        set: |c, v| {
            c.log_format = choice(v, LOG_FORMATS)?;
            Ok(())
        },
        show: |c| name_of(c.log_format, LOG_FORMATS),
    },
    Key {
        toml: "commit_interval",
        env: "LEADSCORE_COMMIT_INTERVAL",
        alias: Some(("checkpoint_interval", "LEADSCORE_CHECKPOINT_INTERVAL")),
        default: "1s",
        meaning: "the checkpoint: changelog, outputs durable, local store, offsets committed",
        set: |c, v| {
            c.commit_interval = duration(v)?;
            Ok(())
        },
        show: |c| show_duration(c.commit_interval),
    },
    Key {
        toml: "retention_floor",
        env: "LEADSCORE_RETENTION_FLOOR",
        alias: None,
        default: "1.0",
        meaning: "evict leads with no fit points, never qualified, \\|score\\| below this ...",
        set: |c, v| {
            let x: f64 = v
                .trim()
                .parse()
                .map_err(|_| Invalid::new("not a number", "use a number of points such as 1.0"))?;
            c.retention_floor = x;
            Ok(())
        },
        show: |c| c.retention_floor.to_string(),
    },
    Key {
        toml: "retention_ttl",
        env: "LEADSCORE_RETENTION_TTL",
        alias: None,
        default: "90d",
        meaning: "... and a lead clock this far behind the partition's newest (event time)",
        set: |c, v| {
            c.retention_ttl = duration(v)?;
            Ok(())
        },
        show: |c| show_duration(c.retention_ttl),
    },
    Key {
        toml: "retention_sweep",
        env: "LEADSCORE_RETENTION_SWEEP",
        alias: None,
        default: "1m",
        meaning: "how often each partition is swept",
        set: |c, v| {
            c.retention_sweep = duration(v)?;
            Ok(())
        },
        show: |c| show_duration(c.retention_sweep),
    },
    Key {
        toml: "statistics_interval",
        env: "LEADSCORE_STATISTICS_INTERVAL",
        alias: None,
        default: "5s",
        meaning: "librdkafka statistics (consumer lag gauges)",
        set: |c, v| {
            c.statistics_interval = duration(v)?;
            Ok(())
        },
        show: |c| show_duration(c.statistics_interval),
    },
    Key {
        toml: "max_leads_in_memory",
        env: "LEADSCORE_MAX_LEADS_IN_MEMORY",
        alias: None,
        default: "none",
        meaning: "most leads held in memory (all partitions); colder ones stay only in the local store and are read back on their next event or lookup (`none`: all in memory; docs/ARCHITECTURE.md, \"Memory budget\")",
        set: |c, v| {
            c.max_leads_in_memory = match v.trim() {
                "none" => None,
                n => Some(count(n, 1).map_err(|_| {
                    Invalid::new(
                        format!("`{n}` is not a whole number ≥ 1"),
                        "use a lead count such as 1000000, or `none` to keep every lead in memory",
                    )
                })?),
            };
            Ok(())
        },
        show: |c| c.max_leads_in_memory.map_or("none".into(), |n| n.to_string()),
    },
    Key {
        toml: "store_cache_mb",
        env: "LEADSCORE_STORE_CACHE_MB",
        alias: None,
        default: "32",
        meaning: "page cache of each partition's local store (redb), in MiB",
        set: |c, v| {
            c.store_cache_bytes = count(v, 1)? << 20;
            Ok(())
        },
        show: |c| (c.store_cache_bytes >> 20).to_string(),
    },
    Key {
        toml: "max_message_bytes",
        env: "LEADSCORE_MAX_MESSAGE_BYTES",
        alias: None,
        default: "1000000",
        meaning: "larger input messages (key + payload + headers) go to the DLQ; dead letters are truncated to fit it",
        set: |c, v| {
            c.limits.max_message_bytes = count(v, 1024)?;
            Ok(())
        },
        show: |c| c.limits.max_message_bytes.to_string(),
    },
    Key {
        toml: "max_headers",
        env: "LEADSCORE_MAX_HEADERS",
        alias: None,
        default: "64",
        meaning: "input messages with more headers go to the DLQ",
        set: |c, v| {
            c.limits.max_headers = count(v, 0)?;
            Ok(())
        },
        show: |c| c.limits.max_headers.to_string(),
    },
    Key {
        toml: "max_string_chars",
        env: "LEADSCORE_MAX_STRING_CHARS",
        alias: None,
        default: "2048",
        meaning: "longest url, user_agent, campaign_id, form_id, profile field name or value",
        set: |c, v| {
            c.limits.max_string_chars = count(v, 1)?;
            Ok(())
        },
        show: |c| c.limits.max_string_chars.to_string(),
    },
    Key {
        toml: "max_profile_fields",
        env: "LEADSCORE_MAX_PROFILE_FIELDS",
        alias: None,
        default: "100",
        meaning: "most profile fields on one form_conversion",
        set: |c, v| {
            c.limits.max_profile_fields = count(v, 0)?;
            Ok(())
        },
        show: |c| c.limits.max_profile_fields.to_string(),
    },
    Key {
        toml: "max_clock_skew",
        env: "LEADSCORE_MAX_CLOCK_SKEW",
        alias: None,
        default: "1h",
        meaning: "events dated further ahead of the wall clock go to the DLQ; retention never looks further ahead",
        set: |c, v| {
            c.max_clock_skew = duration(v)?;
            Ok(())
        },
        show: |c| show_duration(c.max_clock_skew),
    },
    Key {
        toml: "max_event_age",
        env: "LEADSCORE_MAX_EVENT_AGE",
        alias: None,
        default: "none",
        meaning: "events dated further behind the wall clock go to the DLQ (`none`: backfills welcome)",
        set: |c, v| {
            c.max_event_age = match v.trim() {
                "none" => None,
                d => Some(duration(d)?),
            };
            Ok(())
        },
        show: |c| c.max_event_age.map_or("none".into(), show_duration),
    },
    Key {
        toml: "erasure_retention",
        env: "LEADSCORE_ERASURE_RETENTION",
        alias: None,
        default: "400d",
        meaning: "how long an erased lead's hash is kept to refuse its older events; keep it longer than the input topic's retention and any backfill",
        set: |c, v| {
            c.erasure_retention = duration(v)?;
            Ok(())
        },
        show: |c| show_duration(c.erasure_retention),
    },
    Key {
        toml: "http_token",
        env: "LEADSCORE_HTTP_TOKEN",
        alias: None,
        default: "",
        meaning: "bearer token required by `/v1/*` (lookups and erasure); empty: lookups open, erasure over HTTP off. Secret: never shown",
        set: |c, v| {
            c.http_token = token(v)?;
            Ok(())
        },
        show: |c| c.http_token.as_ref().map_or(String::new(), |_| "***".into()),
    },
    Key {
        toml: "http_token_file",
        env: "LEADSCORE_HTTP_TOKEN_FILE",
        alias: None,
        default: "",
        meaning: "a file holding `http_token` (a mounted Kubernetes secret); read at start",
        set: |c, v| {
            if v.trim().is_empty() {
                return Ok(());
            }
            let text = std::fs::read_to_string(v.trim()).map_err(|e| {
                Invalid::new(
                    format!("cannot read {}: {e}", v.trim()),
                    "mount the secret there, or set http_token instead",
                )
            })?;
            c.http_token = token(&text)?;
            Ok(())
        },
        show: |_| String::new(),
    },
];

/// The `[kafka]` passthrough row of docs/CONFIG.md's table.
const KAFKA_ROW: &str = "| `[kafka]` table | `LEADSCORE_KAFKA_<PROPERTY>` | — | any librdkafka property, passed through (`LEADSCORE_KAFKA_SASL_USERNAME=u` → `sasl.username=u`) |";

/// Parts of librdkafka property names whose values are secrets (never shown).
const SECRET_PARTS: [&str; 4] = ["password", "secret", "key.pem", "oauthbearer.config"];

impl Default for Config {
    fn default() -> Self {
        let mut c = Config {
            brokers: String::new(),
            group_id: String::new(),
            instance_id: None,
            input_topics: Vec::new(),
            output_topic: String::new(),
            dlq_topic: String::new(),
            outcomes_topic: None,
            rules: PathBuf::new(),
            state_dir: PathBuf::new(),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            guarantee: Guarantee::AtLeastOnce,
            assignment: Assignment::Range,
            input_format: PayloadFormat::Auto,
            output_format: OutputFormat::Json,
            log_format: LogFormat::Text,
            commit_interval: Duration::ZERO,
            retention_floor: 0.0,
            retention_ttl: Duration::ZERO,
            retention_sweep: Duration::ZERO,
            statistics_interval: Duration::ZERO,
            max_leads_in_memory: None,
            store_cache_bytes: 0,
            limits: Limits::default(),
            max_clock_skew: Duration::ZERO,
            max_event_age: None,
            erasure_retention: Duration::ZERO,
            http_token: None,
            kafka: BTreeMap::new(),
        };
        for k in KEYS {
            if (k.set)(&mut c, k.default).is_err() {
                unreachable!("the default of {} parses", k.toml);
            }
        }
        c
    }
}

/// A setting that cannot be used: where it came from, what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {field}: {problem}{}", crate::rules::fix_line(.fix))]
pub struct ConfigError {
    /// `config file x.toml` or `environment`.
    pub origin: String,
    /// The field or variable.
    pub field: String,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

impl ConfigError {
    /// A value that fails validation (after the file and the environment were read).
    fn invalid(field: &str, problem: String, fix: &str) -> Self {
        ConfigError {
            origin: "configuration".into(),
            field: field.into(),
            problem,
            fix: fix.into(),
        }
    }
}

impl Config {
    /// Loads the file (if any), applies the process environment, validates.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// As [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        if let Some(p) = file {
            cfg.apply_file(p)?;
        }
        for (k, v) in env {
            cfg.apply_env(&k, &v)?;
        }
        cfg.consume_outcomes_topic();
        cfg.validate()?;
        Ok(cfg)
    }

    /// The settings of a TOML file, each through its key's parser.
    fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let origin = format!("config file {}", path.display());
        let bad = |field: &str, problem: String, fix: &str| ConfigError {
            origin: origin.clone(),
            field: field.into(),
            problem,
            fix: fix.into(),
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            bad(
                "file",
                format!("cannot read: {e}"),
                "pass an existing file to --config, or omit --config to use the environment alone",
            )
        })?;
        self.apply_toml(&origin, &text)
    }

    /// A configuration from TOML text alone (no environment), validated; `origin` names the
    /// source in errors.
    pub fn from_toml(origin: &str, text: &str) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        cfg.apply_toml(origin, text)?;
        cfg.consume_outcomes_topic();
        cfg.validate()?;
        Ok(cfg)
    }

    /// The outcomes topic is read like an input topic (same partitions, same positions and
    /// checkpoints): it joins `input_topics`, last.
    fn consume_outcomes_topic(&mut self) {
        if let Some(t) = &self.outcomes_topic {
            if !self.input_topics.contains(t) {
                self.input_topics.push(t.clone());
            }
        }
    }

    /// Is `topic` the sales verdicts topic?
    pub fn is_outcomes_topic(&self, topic: &str) -> bool {
        self.outcomes_topic.as_deref() == Some(topic)
    }

    /// The settings of TOML text, each through its key's parser.
    fn apply_toml(&mut self, origin: &str, text: &str) -> Result<(), ConfigError> {
        let bad = |field: &str, problem: String, fix: &str| ConfigError {
            origin: origin.to_string(),
            field: field.into(),
            problem,
            fix: fix.into(),
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            bad(
                "TOML",
                e.to_string().trim_end().to_string(),
                "see docs/CONFIG.md for every key",
            )
        })?;
        for (name, value) in table {
            if name == "kafka" {
                let toml::Value::Table(props) = value else {
                    return Err(bad(
                        "kafka",
                        "must be a table".into(),
                        "write [kafka] with \"property\" = \"value\" lines",
                    ));
                };
                for (prop, v) in props {
                    let v = toml_text(&v).ok_or_else(|| {
                        bad(
                            &format!("kafka.\"{prop}\""),
                            "must be a string or a number".into(),
                            "quote the value",
                        )
                    })?;
                    self.kafka.insert(prop, v);
                }
                continue;
            }
            let key = KEYS
                .iter()
                .find(|k| k.toml == name || k.alias.is_some_and(|a| a.0 == name))
                .ok_or_else(|| {
                    bad(
                        "TOML",
                        format!("unknown field `{name}`"),
                        "see docs/CONFIG.md for every key",
                    )
                })?;
            let v = toml_text(&value).ok_or_else(|| {
                bad(
                    &name,
                    "must be a string, a number or a list of strings".into(),
                    key.meaning,
                )
            })?;
            (key.set)(self, &v).map_err(|i| bad(&name, i.problem, &i.fix))?;
        }
        Ok(())
    }

    /// One environment variable: a `LEADSCORE_KAFKA_*` property or a key's variable; others are
    /// ignored.
    fn apply_env(&mut self, var: &str, value: &str) -> Result<(), ConfigError> {
        let bad = |problem: String, fix: &str| ConfigError {
            origin: "environment".into(),
            field: format!("{var}={value}"),
            problem,
            fix: fix.into(),
        };
        if let Some(prop) = var.strip_prefix("LEADSCORE_KAFKA_") {
            if prop.is_empty() {
                return Err(bad(
                    "no librdkafka property named".into(),
                    "write e.g. LEADSCORE_KAFKA_SECURITY_PROTOCOL=SASL_SSL",
                ));
            }
            self.kafka
                .insert(prop.to_ascii_lowercase().replace('_', "."), value.into());
            return Ok(());
        }
        match KEYS
            .iter()
            .find(|k| k.env == var || k.alias.is_some_and(|a| a.1 == var))
        {
            Some(key) => (key.set)(self, value).map_err(|i| bad(i.problem, &i.fix)),
            None => Ok(()),
        }
    }

    /// The settings in force, one `key = value` per line, secrets masked (for `--check`).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for k in KEYS {
            out.push_str(&format!("  {} = {}\n", k.toml, (k.show)(self)));
        }
        for (prop, v) in &self.kafka {
            let secret = SECRET_PARTS.iter().any(|s| prop.contains(s));
            let v = if secret { "***" } else { v.as_str() };
            out.push_str(&format!("  kafka.\"{prop}\" = {v}\n"));
        }
        out
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = ConfigError::invalid;
        if self.brokers.trim().is_empty() {
            return Err(bad(
                "brokers",
                "is empty".into(),
                "set LEADSCORE_BROKERS=host:9092[,host2:9092]",
            ));
        }
        if self.input_topics.is_empty() {
            return Err(bad(
                "input_topics",
                "no input topic".into(),
                "set LEADSCORE_INPUT_TOPICS=lead-events",
            ));
        }
        for (field, t) in [
            ("output_topic", &self.output_topic),
            ("dlq_topic", &self.dlq_topic),
            ("group_id", &self.group_id),
        ] {
            if t.trim().is_empty() {
                return Err(bad(field, "is empty".into(), "give it a name"));
            }
        }
        if self.input_topics.contains(&self.output_topic)
            || self.input_topics.contains(&self.dlq_topic)
        {
            return Err(bad(
                "output_topic / dlq_topic",
                "an output topic is also an input topic; the service would consume its own output"
                    .into(),
                "use distinct topic names",
            ));
        }
        if !(self.retention_floor.is_finite() && self.retention_floor >= 0.0) {
            return Err(bad(
                "retention_floor",
                format!("must be ≥ 0, got {}", self.retention_floor),
                "use a number of points such as 1.0 (0 evicts only leads at exactly 0)",
            ));
        }
        self.validate_group()?;
        for reserved in [
            "group.id",
            "bootstrap.servers",
            "enable.auto.commit",
            "enable.auto.offset.store",
        ] {
            if self.kafka.contains_key(reserved) {
                return Err(bad(
                    &format!("kafka.\"{reserved}\""),
                    "is managed by leadscore".into(),
                    "use brokers / group_id, and leave offset handling to the service",
                ));
            }
        }
        Ok(())
    }

    /// Assignment and the librdkafka properties leadscore manages itself.
    fn validate_group(&self) -> Result<(), ConfigError> {
        let bad = ConfigError::invalid;
        if self.assignment == Assignment::CooperativeSticky && self.input_topics.len() > 1 {
            return Err(bad(
                "assignment",
                format!(
                    "cooperative-sticky does not keep the {} input topics co-partitioned: a lead's \
                     events could be scored by two instances",
                    self.input_topics.len()
                ),
                "use assignment = \"range\" or \"consumer\" (KIP-848) with several input topics",
            ));
        }
        for (key, owner) in [
            ("partition.assignment.strategy", "assignment"),
            ("group.protocol", "assignment"),
            ("group.remote.assignor", "assignment"),
            (
                "isolation.level",
                "guarantee (input is always read_committed)",
            ),
            ("transactional.id", "guarantee / instance_id"),
        ] {
            if self.kafka.contains_key(key) {
                return Err(bad(
                    &format!("kafka.\"{key}\""),
                    "is managed by leadscore".into(),
                    &format!("use {owner}"),
                ));
            }
        }
        if self.assignment == Assignment::Consumer {
            for key in ["session.timeout.ms", "heartbeat.interval.ms"] {
                if self.kafka.contains_key(key) {
                    return Err(bad(
                        &format!("kafka.\"{key}\""),
                        "is set by the broker under assignment = \"consumer\" (KIP-848)".into(),
                        "remove it, or set group.consumer.session.timeout.ms / \
                         group.consumer.heartbeat.interval.ms on the broker",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A TOML value as the text its key's parser reads: strings as they are, numbers and booleans
/// written out, lists of those joined by commas.
fn toml_text(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => items
            .iter()
            .map(toml_text)
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(",")),
        _ => None,
    }
}

/// docs/CONFIG.md's settings table, generated from [`KEYS`].
pub fn docs_table() -> String {
    let mut out =
        String::from("| TOML key | environment | default | meaning |\n|---|---|---|---|\n");
    for k in KEYS {
        let (toml, env) = match k.alias {
            Some((t, e)) => (
                format!("`{}` (alias `{t}`)", k.toml),
                format!("`{}` or `{e}`", k.env),
            ),
            None => (format!("`{}`", k.toml), format!("`{}`", k.env)),
        };
        let default = if k.default.is_empty() {
            "unset".to_string()
        } else {
            format!("`{}`", k.default)
        };
        out.push_str(&format!("| {toml} | {env} | {default} | {} |\n", k.meaning));
    }
    out.push_str(KAFKA_ROW);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_limit_keys_default_to_the_event_limits() {
        assert_eq!(Config::default().limits, Limits::default());
    }

    #[test]
    fn docs_config_md_has_the_table_of_the_keys() {
        let docs = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/CONFIG.md"),
        )
        .unwrap();
        let table = docs_table();
        assert!(
            docs.contains(&table),
            "docs/CONFIG.md's settings table is not the one the keys give; replace it with:\n{table}"
        );
    }

    #[test]
    fn a_toml_file_and_the_environment_go_through_the_same_parsers() {
        let dir = std::env::temp_dir().join(format!("lsconf-same-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(
            &f,
            "input_topics = [\"web\", \"email\"]\ncheckpoint_interval = \"250ms\"\nretention_floor = 2\n[kafka]\n\"sasl.password\" = \"hunter2\"\n",
        )
        .unwrap();
        let c = Config::load_with_env(Some(&f), env(&[("LEADSCORE_RETENTION_TTL", "7d")])).unwrap();
        assert_eq!(c.input_topics, vec!["web", "email"]);
        assert_eq!(c.commit_interval, Duration::from_millis(250));
        assert_eq!(c.retention_floor, 2.0);
        assert_eq!(c.retention_ttl, Duration::from_secs(7 * 86_400));
        let shown = c.describe();
        assert!(shown.contains("commit_interval = 250ms"), "{shown}");
        assert!(shown.contains("retention_ttl = 7d"), "{shown}");
        assert!(
            !shown.contains("hunter2") && shown.contains("sasl.password\" = ***"),
            "{shown}"
        );
        let e =
            Config::load_with_env(None, env(&[("LEADSCORE_COMMIT_INTERVAL", "0s")])).unwrap_err();
        assert!(e.to_string().contains("must be positive"), "{e}");
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = Config::load_with_env(None, env(&[])).unwrap();
        assert_eq!(c.brokers, "localhost:9092");
        assert_eq!(c.group_id, "leadscore");
        assert_eq!(c.input_topics, vec!["lead-events"]);
        assert_eq!(c.output_topic, "sales-ready");
        assert_eq!(c.dlq_topic, "lead-events-dlq");
        assert_eq!(c.rules, PathBuf::from("rules.toml"));
        assert_eq!(c.state_dir, PathBuf::from("./state"));
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:9464");
        assert_eq!(c.guarantee, Guarantee::AtLeastOnce);
    }

    #[test]
    fn environment_overrides_and_passthrough() {
        let c = Config::load_with_env(
            None,
            env(&[
                ("LEADSCORE_INPUT_TOPICS", "a, b,,c"),
                ("LEADSCORE_GUARANTEE", "exactly_once"),
                ("LEADSCORE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
                ("LEADSCORE_KAFKA_SASL_USERNAME", "u"),
            ]),
        )
        .unwrap();
        assert_eq!(c.input_topics, vec!["a", "b", "c"]);
        assert_eq!(c.guarantee, Guarantee::ExactlyOnce);
        assert_eq!(c.kafka["security.protocol"], "SASL_SSL");
        assert_eq!(c.kafka["sasl.username"], "u");
    }

    #[test]
    fn assignment_choices_that_would_break_co_partitioning_or_the_protocol_are_refused() {
        let c = Config::load_with_env(None, env(&[("LEADSCORE_ASSIGNMENT", "consumer")])).unwrap();
        assert_eq!(c.assignment, Assignment::Consumer);
        let e = Config::load_with_env(
            None,
            env(&[
                ("LEADSCORE_ASSIGNMENT", "cooperative-sticky"),
                ("LEADSCORE_INPUT_TOPICS", "web,email"),
            ]),
        )
        .unwrap_err();
        assert_eq!(e.field, "assignment");
        assert!(e.fix.contains("range"), "{e}");
        let e = Config::load_with_env(
            None,
            env(&[
                ("LEADSCORE_ASSIGNMENT", "consumer"),
                ("LEADSCORE_KAFKA_SESSION_TIMEOUT_MS", "6000"),
            ]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("session.timeout.ms"), "{e}");
        let e = Config::load_with_env(
            None,
            env(&[("LEADSCORE_KAFKA_ISOLATION_LEVEL", "read_uncommitted")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("managed by leadscore"), "{e}");
    }

    #[test]
    fn bad_settings_name_the_source_field_and_fix() {
        let e = Config::load_with_env(None, env(&[("LEADSCORE_GUARANTEE", "twice")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("environment: LEADSCORE_GUARANTEE=twice: unknown value"),
            "{e}"
        );
        assert!(e.contains("fix: use at_least_once or exactly_once"), "{e}");
        let e = Config::load_with_env(None, env(&[("LEADSCORE_HTTP_ADDR", "localhost")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("LEADSCORE_HTTP_ADDR") && e.contains("fix:"),
            "{e}"
        );
        let dir = std::env::temp_dir().join(format!("lsconf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(&f, "brokers = \"b:1\"\ngroup = \"x\"\n").unwrap();
        let e = Config::load_with_env(Some(&f), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("c.toml") && e.contains("unknown field `group`"),
            "{e}"
        );
        std::fs::write(&f, "brokers = \"b:1\"\n[kafka]\n\"group.id\" = \"x\"\n").unwrap();
        let e = Config::load_with_env(Some(&f), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("managed by leadscore"), "{e}");
    }
}
