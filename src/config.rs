//! Service settings (SPEC §7): an optional TOML file, then `LEADSCORE_*` environment overrides,
//! then validation that names the source, the field and the fix.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::event::PayloadFormat;

/// Delivery guarantee of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    /// Offsets committed after outputs are acknowledged; a crash may re-send `sales_ready`
    /// (same `event_id`).
    AtLeastOnce,
    /// Kafka transactions: outputs and offsets commit together.
    ExactlyOnce,
}

/// How the consumer group assigns input partitions to instances (docs/CONFIG.md "Choosing an
/// assignment").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// SPEC §5 JSON.
    Json,
    /// `leadscore.v1.SalesReady`.
    Protobuf,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// All service settings. Field names are the TOML keys; see docs/CONFIG.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Bootstrap servers.
    pub brokers: String,
    /// Consumer group.
    pub group_id: String,
    /// Stable identity of this instance in the group (static membership, e.g. the pod name): a
    /// restarted instance gets its partitions back at once instead of after the session timeout.
    pub instance_id: Option<String>,
    /// Input topics (co-partitioned when more than one).
    pub input_topics: Vec<String>,
    /// `sales_ready` topic.
    pub output_topic: String,
    /// Dead-letter topic.
    pub dlq_topic: String,
    /// Rules file.
    pub rules: PathBuf,
    /// Local state directory.
    pub state_dir: PathBuf,
    /// HTTP listener.
    pub http_addr: String,
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
    /// How often state is checkpointed (changelog, local store) and offsets committed, after
    /// outputs are acknowledged; humantime.
    #[serde(alias = "checkpoint_interval")]
    pub commit_interval: String,
    /// Leads with no fit points, never qualified, |score| below this floor ...
    pub retention_floor: f64,
    /// ... and idle (event time) longer than this TTL are evicted; humantime.
    pub retention_ttl: String,
    /// How often each partition is swept for evictable leads; humantime.
    pub retention_sweep: String,
    /// How often librdkafka statistics (consumer lag) are refreshed, humantime.
    pub statistics_interval: String,
    /// librdkafka properties passed through unchanged (security.protocol, sasl.*, ssl.*, ...).
    pub kafka: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            brokers: "localhost:9092".into(),
            group_id: "leadscore".into(),
            instance_id: None,
            input_topics: vec!["lead-events".into()],
            output_topic: "sales-ready".into(),
            dlq_topic: "lead-events-dlq".into(),
            rules: "rules.toml".into(),
            state_dir: "./state".into(),
            http_addr: "127.0.0.1:9464".into(),
            guarantee: Guarantee::AtLeastOnce,
            assignment: Assignment::Range,
            input_format: PayloadFormat::Auto,
            output_format: OutputFormat::Json,
            log_format: LogFormat::Text,
            commit_interval: "1s".into(),
            retention_floor: 1.0,
            retention_ttl: "90d".into(),
            retention_sweep: "1m".into(),
            statistics_interval: "5s".into(),
            kafka: BTreeMap::new(),
        }
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

/// Environment variables the service reads (besides `LEADSCORE_KAFKA_*`).
pub const ENV_KEYS: [(&str, &str); 20] = [
    ("LEADSCORE_BROKERS", "brokers"),
    ("LEADSCORE_GROUP_ID", "group_id"),
    ("LEADSCORE_INSTANCE_ID", "instance_id"),
    ("LEADSCORE_INPUT_TOPICS", "input_topics"),
    ("LEADSCORE_OUTPUT_TOPIC", "output_topic"),
    ("LEADSCORE_DLQ_TOPIC", "dlq_topic"),
    ("LEADSCORE_RULES", "rules"),
    ("LEADSCORE_STATE_DIR", "state_dir"),
    ("LEADSCORE_HTTP_ADDR", "http_addr"),
    ("LEADSCORE_GUARANTEE", "guarantee"),
    ("LEADSCORE_ASSIGNMENT", "assignment"),
    ("LEADSCORE_INPUT_FORMAT", "input_format"),
    ("LEADSCORE_OUTPUT_FORMAT", "output_format"),
    ("LEADSCORE_LOG_FORMAT", "log_format"),
    ("LEADSCORE_COMMIT_INTERVAL", "commit_interval"),
    ("LEADSCORE_CHECKPOINT_INTERVAL", "commit_interval"),
    ("LEADSCORE_RETENTION_FLOOR", "retention_floor"),
    ("LEADSCORE_RETENTION_TTL", "retention_ttl"),
    ("LEADSCORE_RETENTION_SWEEP", "retention_sweep"),
    ("LEADSCORE_STATISTICS_INTERVAL", "statistics_interval"),
];

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
        let mut cfg = match file {
            None => Config::default(),
            Some(p) => {
                let source = format!("config file {}", p.display());
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError {
                    origin: source.clone(),
                    field: "file".into(),
                    problem: format!("cannot read: {e}"),
                    fix: "pass an existing file to --config, or omit --config to use the environment alone".into(),
                })?;
                toml::from_str::<Config>(&text).map_err(|e| ConfigError {
                    origin: source,
                    field: "TOML".into(),
                    problem: e.to_string().trim_end().to_string(),
                    fix: "see docs/CONFIG.md for every key".into(),
                })?
            }
        };
        let env: Vec<(String, String)> = env.into_iter().collect();
        for (k, v) in &env {
            cfg.apply_env(k, v)?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn apply_env(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let bad = |problem: String, fix: &str| ConfigError {
            origin: "environment".into(),
            field: format!("{key}={value}"),
            problem,
            fix: fix.into(),
        };
        if let Some(prop) = key.strip_prefix("LEADSCORE_KAFKA_") {
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
        let enum_value = |allowed: &str| -> Result<String, ConfigError> {
            let v = value.trim().to_ascii_lowercase();
            if allowed.split(" or ").any(|a| a == v) {
                Ok(v)
            } else {
                Err(bad(
                    format!("unknown value `{value}`"),
                    &format!("use {allowed}"),
                ))
            }
        };
        match key {
            "LEADSCORE_BROKERS" => self.brokers = value.into(),
            "LEADSCORE_GROUP_ID" => self.group_id = value.into(),
            "LEADSCORE_INSTANCE_ID" => {
                self.instance_id = Some(value.trim().to_string()).filter(|v| !v.is_empty())
            }
            "LEADSCORE_INPUT_TOPICS" => {
                self.input_topics = value
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }
            "LEADSCORE_OUTPUT_TOPIC" => self.output_topic = value.into(),
            "LEADSCORE_DLQ_TOPIC" => self.dlq_topic = value.into(),
            "LEADSCORE_RULES" => self.rules = value.into(),
            "LEADSCORE_STATE_DIR" => self.state_dir = value.into(),
            "LEADSCORE_HTTP_ADDR" => self.http_addr = value.into(),
            "LEADSCORE_GUARANTEE" => {
                self.guarantee = match enum_value("at_least_once or exactly_once")?.as_str() {
                    "exactly_once" => Guarantee::ExactlyOnce,
                    _ => Guarantee::AtLeastOnce,
                }
            }
            "LEADSCORE_ASSIGNMENT" => {
                self.assignment =
                    match enum_value("range or cooperative-sticky or consumer")?.as_str() {
                        "cooperative-sticky" => Assignment::CooperativeSticky,
                        "consumer" => Assignment::Consumer,
                        _ => Assignment::Range,
                    }
            }
            "LEADSCORE_INPUT_FORMAT" => {
                self.input_format = match enum_value("auto or json or protobuf")?.as_str() {
                    "json" => PayloadFormat::Json,
                    "protobuf" => PayloadFormat::Protobuf,
                    _ => PayloadFormat::Auto,
                }
            }
            "LEADSCORE_OUTPUT_FORMAT" => {
                self.output_format = match enum_value("json or protobuf")?.as_str() {
                    "protobuf" => OutputFormat::Protobuf,
                    _ => OutputFormat::Json,
                }
            }
            "LEADSCORE_LOG_FORMAT" => {
                self.log_format = match enum_value("text or json")?.as_str() {
                    "json" => LogFormat::Json,
                    _ => LogFormat::Text,
                }
            }
            "LEADSCORE_COMMIT_INTERVAL" | "LEADSCORE_CHECKPOINT_INTERVAL" => {
                self.commit_interval = value.into()
            }
            "LEADSCORE_RETENTION_FLOOR" => {
                self.retention_floor = value
                    .trim()
                    .parse()
                    .map_err(|_| bad("not a number".into(), "use a number of points such as 1.0"))?
            }
            "LEADSCORE_RETENTION_TTL" => self.retention_ttl = value.into(),
            "LEADSCORE_RETENTION_SWEEP" => self.retention_sweep = value.into(),
            "LEADSCORE_STATISTICS_INTERVAL" => self.statistics_interval = value.into(),
            _ => {}
        }
        Ok(())
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
        self.http_socket_addr()?;
        self.commit_every()?;
        self.retention_ttl()?;
        self.retention_sweep_every()?;
        if !(self.retention_floor.is_finite() && self.retention_floor >= 0.0) {
            return Err(bad(
                "retention_floor",
                format!("must be ≥ 0, got {}", self.retention_floor),
                "use a number of points such as 1.0 (0 evicts only leads at exactly 0)",
            ));
        }
        self.statistics_every()?;
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

    /// The HTTP listener address.
    pub fn http_socket_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.http_addr.parse().map_err(|e| ConfigError {
            origin: "configuration".into(),
            field: "http_addr".into(),
            problem: format!("`{}` is not host:port ({e})", self.http_addr),
            fix: "use an IP and port such as 127.0.0.1:9464 or 0.0.0.0:9464".into(),
        })
    }

    fn duration(field: &str, v: &str) -> Result<Duration, ConfigError> {
        match humantime::parse_duration(v) {
            Ok(d) if !d.is_zero() => Ok(d),
            Ok(_) => Err(format!("`{v}` must be positive")),
            Err(e) => Err(format!("`{v}`: {e}")),
        }
        .map_err(|problem| ConfigError {
            origin: "configuration".into(),
            field: field.into(),
            problem,
            fix: "use a humantime duration such as 500ms, 1s or 5s".into(),
        })
    }

    /// Offset commit interval.
    pub fn commit_every(&self) -> Result<Duration, ConfigError> {
        Self::duration("commit_interval", &self.commit_interval)
    }

    /// Idle time (event time) after which a negligible lead is evicted.
    pub fn retention_ttl(&self) -> Result<Duration, ConfigError> {
        Self::duration("retention_ttl", &self.retention_ttl)
    }

    /// How often partitions are swept for eviction.
    pub fn retention_sweep_every(&self) -> Result<Duration, ConfigError> {
        Self::duration("retention_sweep", &self.retention_sweep)
    }

    /// librdkafka statistics interval.
    pub fn statistics_every(&self) -> Result<Duration, ConfigError> {
        Self::duration("statistics_interval", &self.statistics_interval)
    }
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
    fn defaults_match_the_spec() {
        let c = Config::load_with_env(None, env(&[])).unwrap();
        assert_eq!(c.brokers, "localhost:9092");
        assert_eq!(c.group_id, "leadscore");
        assert_eq!(c.input_topics, vec!["lead-events"]);
        assert_eq!(c.output_topic, "sales-ready");
        assert_eq!(c.dlq_topic, "lead-events-dlq");
        assert_eq!(c.rules, PathBuf::from("rules.toml"));
        assert_eq!(c.state_dir, PathBuf::from("./state"));
        assert_eq!(c.http_addr, "127.0.0.1:9464");
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
        assert!(e.contains("http_addr") && e.contains("fix:"), "{e}");
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
