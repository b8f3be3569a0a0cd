//! Helpers for integration tests against the real broker (Apache Kafka, over the Kafka
//! protocol). The broker address comes from LEADSCORE_TEST_BROKERS (scripts/test.sh starts one);
//! [`OwnKafka`] starts a private broker or cluster for tests that kill brokers.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use leadscore::engine::Engine;
use leadscore::gen::{generate, GenConfig, GenRecord};
use leadscore::leads::LeadTable;
use leadscore::replay::replay;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

/// The broker under test.
pub fn brokers() -> String {
    std::env::var("LEADSCORE_TEST_BROKERS").unwrap_or_else(|_| {
        panic!(
            "LEADSCORE_TEST_BROKERS is not set: these tests need the real broker. \
             Run scripts/test.sh (it installs and starts Apache Kafka), or start one with \
             scripts/start-kafka.sh 19092 and export LEADSCORE_TEST_BROKERS=127.0.0.1:19092"
        )
    })
}

/// A name unique to this test run.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// Topics and group of one test.
#[derive(Clone, Debug)]
pub struct Names {
    pub input: String,
    pub output: String,
    pub dlq: String,
    pub group: String,
}

impl Names {
    pub fn new(test: &str) -> Self {
        let base = unique(test);
        Names {
            input: format!("{base}-in"),
            output: format!("{base}-out"),
            dlq: format!("{base}-dlq"),
            group: format!("{base}-group"),
        }
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Creates the test's topics (input with `partitions`).
pub fn create_topics(n: &Names, partitions: i32) {
    rt().block_on(leadscore::kafka::ensure_topics(
        &brokers(),
        &BTreeMap::new(),
        &[
            (n.input.clone(), partitions),
            (n.output.clone(), 4),
            (n.dlq.clone(), 1),
        ],
        &[],
    ))
    .expect("create topics");
}

pub fn rules_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/rules.toml")
}

/// A generated stream.
pub fn stream(leads: usize, seed: u64) -> Vec<GenRecord> {
    generate(&GenConfig {
        leads,
        seed,
        ..GenConfig::default()
    })
    .records
}

pub fn ndjson(records: &[GenRecord]) -> String {
    records.iter().map(|r| r.json_line() + "\n").collect()
}

/// What `leadscore replay` gives for these records: (sales_ready JSON values, lead table, engine).
pub fn reference(records: &[GenRecord]) -> (Vec<Value>, LeadTable, Engine) {
    let engine = Engine::new(std::sync::Arc::new(
        leadscore::rules_file::load(&rules_path()).unwrap(),
    ));
    let mut out = Vec::new();
    let (leads, _) = replay(
        &engine,
        ndjson(records).as_bytes(),
        &mut out,
        std::io::sink(),
        false,
    )
    .unwrap();
    let emitted = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (emitted, leads, engine)
}

/// End offsets (last offset + 1) per partition of what a test produced.
pub type Ends = BTreeMap<i32, i64>;

/// Produces keyed records in order; returns the end offsets from the delivery reports.
pub fn produce(topic: &str, records: impl IntoIterator<Item = (String, Vec<u8>)>) -> Ends {
    leadscore::kafka::produce_all(&brokers(), &BTreeMap::new(), topic, records, None, |_| {})
        .expect("produce")
        .1
}

/// Merges end offsets of two produce calls.
pub fn merge(mut a: Ends, b: Ends) -> Ends {
    for (p, e) in b {
        let x = a.entry(p).or_insert(0);
        *x = (*x).max(e);
    }
    a
}

pub fn produce_records(topic: &str, records: &[GenRecord]) -> Ends {
    produce(
        topic,
        records
            .iter()
            .map(|r| (r.lead_id.clone(), r.json_line().into_bytes())),
    )
}

/// Polls `done` every 50 ms until it holds; after `within`, fails with the message `why()`.
pub fn wait_until(within: Duration, mut done: impl FnMut() -> bool, why: impl Fn() -> String) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{}", why());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `leadscore run`.
pub struct Service {
    pub child: Child,
    pub http: String,
    pub log: PathBuf,
    /// The bearer token of `/v1/*`, when the test set one.
    pub token: Option<String>,
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Service {
    pub fn start(n: &Names, extra_env: &[(&str, &str)]) -> Service {
        let http = format!("127.0.0.1:{}", free_port());
        let instance = free_port();
        let log = std::env::temp_dir().join(format!("{}-{instance}.log", n.group));
        // Each instance has its own disk, like a pod (tests that share one pass it in extra_env).
        let state = std::env::temp_dir().join(format!("{}-{instance}-state", n.group));
        let logf = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_leadscore"));
        cmd.arg("run")
            .env("LEADSCORE_BROKERS", brokers())
            .env("LEADSCORE_GROUP_ID", &n.group)
            .env("LEADSCORE_INPUT_TOPICS", &n.input)
            .env("LEADSCORE_OUTPUT_TOPIC", &n.output)
            .env("LEADSCORE_DLQ_TOPIC", &n.dlq)
            .env("LEADSCORE_RULES", rules_path())
            .env("LEADSCORE_HTTP_ADDR", &http)
            .env("LEADSCORE_COMMIT_INTERVAL", "200ms")
            .env("LEADSCORE_STATE_DIR", &state)
            .env(
                "RUST_LOG",
                std::env::var("LEADSCORE_TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(logf);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn leadscore run");
        let token = extra_env
            .iter()
            .find(|(k, _)| *k == "LEADSCORE_HTTP_TOKEN")
            .map(|(_, v)| v.to_string());
        Service {
            child,
            http,
            log,
            token,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET a path: (status, body).
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let auth = self
            .token
            .as_ref()
            .map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        http_request(&self.http, "GET", path, &auth)
    }

    /// GET, retried while the answer is 503 "busy" (the pipeline held the state: a checkpoint's
    /// store commit), as a client honouring `Retry-After` does; at most 20 tries.
    pub fn get_retrying_busy(&self, path: &str) -> Option<(u16, String)> {
        for _ in 0..20 {
            match self.get(path) {
                Some((503, body)) if body.starts_with("busy") => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                other => return other,
            }
        }
        self.get(path)
    }

    /// Sum of a metric's samples (all label sets) on /metrics; 0 when absent.
    pub fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.get("/metrics").unwrap_or_default();
        body.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Waits until /readyz answers 200.
    pub fn wait_ready(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("service exited early ({status}); log:\n{}", self.log_text());
            }
            if let Some((200, _)) = self.get("/readyz") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "service not ready within {within:?}; log:\n{}",
            self.log_text()
        );
    }

    /// kill -9: no shutdown, no commit, no flush.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a signal (`TERM`, `HUP`, ...) to the service; false if it could not be sent.
    pub fn signal(&self, name: &str) -> bool {
        Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .is_ok_and(|st| st.success())
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let _ = self.signal("TERM");
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!(
            "service did not exit within {within:?} of SIGTERM; log:\n{}",
            self.log_text()
        );
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts that every lead of the reference has, on whichever instance owns it, the score
/// `replay` gives (within 1e-9 relative) and the same qualification count.
pub fn assert_scores_match(services: &[&Service], leads: &LeadTable, engine: &Engine) {
    let mut checked = 0;
    for lead in leads.sorted() {
        let want = engine.lead_score(&lead.id, &lead.state);
        let path = format!("/v1/leads/{}", percent_encode(&lead.id));
        let found = services
            .iter()
            .find_map(|s| match s.get_retrying_busy(&path) {
                Some((200, body)) => Some(serde_json::from_str::<Value>(&body).unwrap()),
                _ => None,
            });
        let v = found.unwrap_or_else(|| {
            let answers: Vec<_> = services.iter().map(|s| s.get(&path)).collect();
            panic!("lead {} is owned by no instance: {answers:?}", lead.id)
        });
        let g = v["score"].as_f64().unwrap();
        assert!(
            (g - want.score).abs() <= 1e-9 * want.score.abs().max(1e-12),
            "lead {}: score {g} vs replay {}",
            lead.id,
            want.score
        );
        assert_eq!(v["as_of"], want.as_of.as_str(), "lead {}", lead.id);
        assert_eq!(v["sequence"], lead.state.sequence(), "lead {}", lead.id);
        checked += 1;
    }
    assert!(checked > 0);
}

/// Partitions an instance reports as owned on /readyz (empty while not ready).
pub fn owned(s: &Service) -> Vec<i32> {
    match s.get("/readyz") {
        Some((200, body)) => body
            .split_once('[')
            .and_then(|(_, r)| r.split_once(']'))
            .map(|(l, _)| l.split(',').filter_map(|x| x.trim().parse().ok()).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Outputs deduplicated by event_id (a re-sent sales_ready keeps its id), first occurrence kept.
pub fn unique_outputs(topic: &str) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    outputs(topic)
        .into_iter()
        .filter(|v| seen.insert(v["event_id"].as_str().unwrap().to_string()))
        .collect()
}

pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    http_request(addr, "GET", path, "")
}

/// A path segment percent-encoded (everything but unreserved characters).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An HTTP/1.0 request with extra header lines (each ending in \r\n): (status, body).
pub fn http_request(addr: &str, method: &str, path: &str, headers: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{headers}\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|x| x.1.to_string())?;
    Some((status, body))
}

fn plain_consumer(group: Option<&str>) -> BaseConsumer {
    let mut c = leadscore::kafka::client_config(&brokers(), &BTreeMap::new());
    c.set(
        "group.id",
        group
            .map(str::to_string)
            .unwrap_or_else(|| unique("reader")),
    )
    .set("enable.auto.commit", "false");
    c.create().unwrap()
}

/// High watermarks of every partition of a topic (ListOffsets).
pub fn high_watermarks(topic: &str) -> BTreeMap<i32, i64> {
    let c = plain_consumer(None);
    partitions(topic)
        .into_iter()
        .map(|p| {
            let (_, high) = c
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap();
            (p, high)
        })
        .collect()
}

fn partitions(topic: &str) -> Vec<i32> {
    let c = plain_consumer(None);
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    md.topics()[0].partitions().iter().map(|p| p.id()).collect()
}

/// Committed offsets of a group on a topic (missing = nothing committed). A broker just killed
/// by the test can time the lookup out: it is retried (6 tries of up to 10 s) before failing.
pub fn committed(group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let mut last = String::new();
    for _ in 0..6 {
        match try_committed(group, topic) {
            Ok(c) => return c,
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("committed offsets of {group} on {topic} not readable: {last}")
}

fn try_committed(group: &str, topic: &str) -> rdkafka::error::KafkaResult<BTreeMap<i32, i64>> {
    let c = plain_consumer(Some(group));
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition(topic, p.id());
    }
    Ok(c.committed_offsets(tpl, Duration::from_secs(10))?
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect())
}

/// Waits until the group has committed every input message (`want`: end offsets of what was
/// produced): since offsets are committed only after outputs are acknowledged, every output is
/// then in the output topic.
pub fn wait_all_committed(
    group: &str,
    topic: &str,
    want: &Ends,
    within: Duration,
    svc: &[&Service],
) {
    let deadline = Instant::now() + within;
    loop {
        let got = committed(group, topic);
        if want
            .iter()
            .all(|(p, hw)| *hw == 0 || got.get(p) == Some(hw))
        {
            return;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = svc.iter().map(|s| s.log_text()).collect();
            panic!(
                "group {group} did not commit all of {topic} within {within:?}: want {want:?}, got {got:?}\nlogs:\n{}",
                logs.join("\n----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A consumed record.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: HashMap<String, String>,
    /// Every header, byte for byte, in order.
    pub raw_headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    pub partition: i32,
    pub offset: i64,
}

/// Reads a topic from the beginning to its end (partition EOF on every partition), aborted
/// transactions included (read_uncommitted, librdkafka's default).
pub fn read_all(topic: &str) -> Vec<Record> {
    read_all_as(topic, "read_uncommitted")
}

/// Reads a topic as a read_committed subscriber does: to the last stable offset, committed
/// transactions only.
pub fn read_committed(topic: &str) -> Vec<Record> {
    read_all_as(topic, "read_committed")
}

fn read_all_as(topic: &str, isolation: &str) -> Vec<Record> {
    let parts = partitions(topic);
    let mut c = leadscore::kafka::client_config(&brokers(), &BTreeMap::new());
    c.set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .set("enable.partition.eof", "true");
    let c: BaseConsumer = c.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in &parts {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut at_end: std::collections::BTreeSet<i32> = Default::default();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while at_end.len() < parts.len() {
        assert!(Instant::now() < deadline, "timed out reading {topic}");
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                // Natively: rust-rdkafka's header getter panics on a non-UTF-8 key.
                let raw_headers = leadscore::kafka::raw_headers(&m);
                let headers = raw_headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            String::from_utf8_lossy(k).to_string(),
                            String::from_utf8_lossy(v.as_deref().unwrap_or_default()).to_string(),
                        )
                    })
                    .collect();
                out.push(Record {
                    key: m.key().map(|k| k.to_vec()),
                    payload: m.payload().map(|p| p.to_vec()),
                    headers,
                    raw_headers,
                    partition: m.partition(),
                    offset: m.offset(),
                });
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            // A broker of a cluster may be down (the three-broker test): librdkafka retries.
            Some(Err(e)) => eprintln!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// sales_ready values of an output topic.
pub fn outputs(topic: &str) -> Vec<Value> {
    values(&read_all(topic))
}

/// sales_ready values of an output topic as a read_committed subscriber sees them, duplicates
/// kept.
pub fn committed_outputs(topic: &str) -> Vec<Value> {
    values(&read_committed(topic))
}

fn values(records: &[Record]) -> Vec<Value> {
    records
        .iter()
        .map(|r| serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap())
        .collect()
}

/// A private Apache Kafka (one node or three) started with scripts/start-kafka.sh in its own
/// run dir, for tests that kill brokers. Stopped and wiped on drop.
pub struct OwnKafka {
    pub port: u16,
    pub nodes: u16,
    run_dir: PathBuf,
}

impl OwnKafka {
    /// Starts `nodes` nodes (1 or 3) on client ports `port..port + nodes`.
    pub fn start(nodes: u16) -> OwnKafka {
        Self::start_with(nodes, &[])
    }

    /// As [`OwnKafka::start`], with environment for start-kafka.sh (`KAFKA_EXTRA_PROPS`,
    /// `KAFKA_FORMAT_ARGS`).
    pub fn start_with(nodes: u16, env: &[(&str, &str)]) -> OwnKafka {
        let port = free_port_block(nodes);
        let k = OwnKafka {
            port,
            nodes,
            run_dir: std::env::temp_dir().join(unique("own-kafka")),
        };
        k.script_env("start-kafka.sh", &["--nodes", &nodes.to_string()], env);
        k
    }

    /// One node with properties made from its client and controller ports
    /// (`KAFKA_EXTRA_PROPS`) and extra storage-format arguments (`KAFKA_FORMAT_ARGS`).
    pub fn start_with_props(
        nodes: u16,
        props: impl Fn(u16, u16) -> String,
        format_args: &str,
    ) -> OwnKafka {
        let port = free_port_block(nodes);
        let k = OwnKafka {
            port,
            nodes,
            run_dir: std::env::temp_dir().join(unique("own-kafka")),
        };
        let extra = props(port, port + 1000);
        k.script_env(
            "start-kafka.sh",
            &["--nodes", &nodes.to_string()],
            &[
                ("KAFKA_EXTRA_PROPS", &extra),
                ("KAFKA_FORMAT_ARGS", format_args),
            ],
        );
        k
    }

    /// The first node's client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Bootstrap servers of every node.
    pub fn bootstrap(&self) -> String {
        (0..self.nodes)
            .map(|i| format!("127.0.0.1:{}", self.port + i))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn script(&self, name: &str, args: &[&str]) {
        self.script_env(name, args, &[]);
    }

    fn script_env(&self, name: &str, args: &[&str], env: &[(&str, &str)]) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("scripts")
            .join(name);
        let out = Command::new(&script)
            .args(args)
            .arg(self.port.to_string())
            .env("LEADSCORE_RUN_DIR", &self.run_dir)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name} {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// kill -9 of node `i` (1-based): no controlled shutdown, nothing flushed.
    pub fn kill9(&self, i: u16) {
        let pidfile = self
            .run_dir
            .join(format!("kafka-{}-node-{i}.pid", self.port));
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .unwrap();
        let _ = std::fs::remove_file(pidfile);
        // The port is free once the process is gone.
        wait_until(
            Duration::from_secs(30),
            || TcpStream::connect(("127.0.0.1", self.port + i - 1)).is_err(),
            || format!("node {i} still answers after kill -9"),
        );
    }

    /// Starts node `i` again on its log dir.
    pub fn restart(&self, i: u16) {
        self.script(
            "start-kafka.sh",
            &["--nodes", &self.nodes.to_string(), "--only", &i.to_string()],
        );
    }
}

impl Drop for OwnKafka {
    fn drop(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/stop-kafka.sh");
        let _ = Command::new(script)
            .args(["--wipe", &self.port.to_string()])
            .env("LEADSCORE_RUN_DIR", &self.run_dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

/// A free block of `n` client ports whose controller ports (+1000) are free too.
fn free_port_block(n: u16) -> u16 {
    loop {
        let base = free_port();
        if base > 60_000 {
            continue;
        }
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if (0..n).all(|i| free(base + i) && free(base + 1000 + i)) {
            return base;
        }
    }
}

/// Per lead, the sequence of (event_id, score, trigger) — the order that matters.
pub fn by_lead(values: &[Value]) -> BTreeMap<String, Vec<(String, f64, String)>> {
    let mut m: BTreeMap<String, Vec<(String, f64, String)>> = BTreeMap::new();
    for v in values {
        m.entry(v["lead_id"].as_str().unwrap().to_string())
            .or_default()
            .push((
                v["event_id"].as_str().unwrap().to_string(),
                v["score"].as_f64().unwrap(),
                v["trigger_event_id"].as_str().unwrap().to_string(),
            ));
    }
    m
}

/// Asserts two per-lead sequences are equal: same ids and triggers, scores within 1e-9.
pub fn assert_same_sequences(
    got: &BTreeMap<String, Vec<(String, f64, String)>>,
    want: &BTreeMap<String, Vec<(String, f64, String)>>,
) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "qualified leads differ"
    );
    for (lead, w) in want {
        let g = &got[lead];
        assert_eq!(g.len(), w.len(), "lead {lead}: {g:?} vs {w:?}");
        for (a, b) in g.iter().zip(w) {
            assert_eq!(a.0, b.0, "lead {lead}");
            assert_eq!(a.2, b.2, "lead {lead}: trigger");
            assert!(
                (a.1 - b.1).abs() <= 1e-9 * b.1.abs(),
                "lead {lead}: score {} vs {}",
                a.1,
                b.1
            );
        }
    }
}

/// A state directory of its own for one instance.
pub fn state_dir(name: &str) -> String {
    std::env::temp_dir()
        .join(unique(name))
        .to_string_lossy()
        .to_string()
}

/// Produces records (idempotent producer) in a background thread at `rate` per second; the
/// thread returns the end offsets.
pub fn produce_in_background(
    topic: &str,
    records: &[GenRecord],
    rate: f64,
) -> std::thread::JoinHandle<Ends> {
    let (topic, brokers) = (topic.to_string(), brokers());
    let lines: Vec<(String, Vec<u8>)> = records
        .iter()
        .map(|r| (r.lead_id.clone(), r.json_line().into_bytes()))
        .collect();
    std::thread::spawn(move || {
        // Retries outlast a broker restart or a leader change.
        let settings = [("message.timeout.ms".to_string(), "120000".to_string())].into();
        leadscore::kafka::produce_all(&brokers, &settings, &topic, lines, Some(rate), |_| {})
            .expect("produce")
            .1
    })
}

/// at_least_once: per lead, the sales_ready sequence of `replay` (a re-sent event, same id, is
/// allowed), and every lead's score.
pub fn assert_replay_at_least_once(n: &Names, records: &[GenRecord], services: &[&Service]) {
    let (want, leads, engine) = reference(records);
    let got = unique_outputs(&n.output);
    assert_same_sequences(&by_lead(&got), &by_lead(&want));
    assert_scores_match(services, &leads, &engine);
}

/// Exactly the sales_ready events of `replay`, duplicates counted (read as a read_committed
/// subscriber does), and every lead's score.
pub fn assert_replay_exactly(n: &Names, records: &[GenRecord], services: &[&Service]) {
    let (want, leads, engine) = reference(records);
    let got = committed_outputs(&n.output);
    assert_eq!(
        got.len(),
        want.len(),
        "sales_ready count (duplicates counted) vs replay"
    );
    assert_same_sequences(&by_lead(&got), &by_lead(&want));
    assert_scores_match(services, &leads, &engine);
}
