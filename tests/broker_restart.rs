//! The broker restarts mid-stream (kill -9, then started again on the same port with the same
//! durable storage): the service reconnects by itself and finishes with replay's results.
//!
//! Durable broker storage: tansu's object-store engine (`s3://BUCKET/`, the same DynoStore code
//! as the `memory://` engine the other tests use) on a local S3 server (moto), which
//! scripts/test.sh starts. tansu's SQLite engine is not usable under load (docs/ARCHITECTURE.md).
//! Its own test binary, because it points every helper at its own broker.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use support::*;

/// A tansu broker owned by this test.
struct OwnBroker {
    child: Option<Child>,
    port: u16,
    cluster: String,
    log: PathBuf,
}

fn required(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: this test needs tansu and a local S3 store for durable broker \
             storage. Run scripts/test.sh (it starts both)."
        )
    })
}

impl OwnBroker {
    fn start(port: u16, cluster: &str) -> OwnBroker {
        let mut b = OwnBroker {
            child: None,
            port,
            cluster: cluster.to_string(),
            log: std::env::temp_dir().join(format!("{cluster}-tansu.log")),
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let endpoint = required("LEADSCORE_TEST_S3_ENDPOINT");
        let bucket = required("LEADSCORE_TEST_S3_BUCKET");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(required("LEADSCORE_TANSU_BIN"))
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", &format!("s3://{bucket}/")])
            .args(["--kafka-cluster-id", &self.cluster])
            .env("AWS_ENDPOINT", endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_REGION", "us-east-1")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn tansu");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {} within 20 s:\n{}",
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[test]
fn a_broker_restart_mid_stream_is_survived_without_operator_action() {
    let port = free_port();
    let mut broker = OwnBroker::start(port, &unique("restart"));
    // Only this test runs in this binary: every helper now talks to the test's own broker.
    std::env::set_var("LEADSCORE_TEST_BROKERS", format!("127.0.0.1:{port}"));
    let n = Names::new("restart");
    create_topics(&n, 4);
    let records = stream(6_000, 31);

    let env = [
        ("LEADSCORE_KAFKA_SESSION_TIMEOUT_MS", "6000"),
        ("LEADSCORE_KAFKA_HEARTBEAT_INTERVAL_MS", "500"),
    ];
    let mut svc = Service::start(&n, &env);
    svc.wait_ready(Duration::from_secs(90));

    // The stream flows at 4,000 events/s for ~14 s. Once the service has committed a tenth
    // of it, the broker dies (kill -9) and comes back 3 s later; the producer retries through
    // the outage, and nobody touches the service.
    let producer = {
        let (topic, records) = (n.input.clone(), records.clone());
        std::thread::spawn(move || produce_plain(&topic, &records, Some(4_000.0)))
    };
    wait_until(
        Duration::from_secs(120),
        || committed(&n.group, &n.input).values().sum::<i64>() >= (records.len() / 10) as i64,
        || format!("nothing committed before the restart:\n{}", svc.log_text()),
    );
    broker.kill9();
    std::thread::sleep(Duration::from_secs(3));
    broker.spawn();
    let ends = producer.join().unwrap();
    assert!(
        committed(&n.group, &n.input).values().sum::<i64>() < records.len() as i64,
        "the stream was over before the broker restarted"
    );
    wait_all_committed(&n.group, &n.input, &ends, Duration::from_secs(300), &[&svc]);
    wait_until(
        Duration::from_secs(90),
        || owned(&svc).len() == 4,
        || svc.log_text(),
    );
    assert!(
        svc.child.try_wait().unwrap().is_none(),
        "the service exited:\n{}",
        svc.log_text()
    );

    let (want, leads, engine) = reference(&records);
    let got = unique_outputs(&n.output);
    assert_same_sequences(&by_lead(&got), &by_lead(&want));
    assert_scores_match(&[&svc], &leads, &engine);
}

/// Produces with a plain (non-idempotent) producer: tansu forgets producer ids across a
/// restart. Retried input may be duplicated; the engine scores an event id once.
fn produce_plain(topic: &str, records: &[leadscore::gen::GenRecord], rate: Option<f64>) -> Ends {
    let passthrough = [("enable.idempotence".to_string(), "false".to_string())].into();
    leadscore::kafka::produce_all(
        &brokers(),
        &passthrough,
        topic,
        records
            .iter()
            .map(|r| (r.lead_id.clone(), r.json_line().into_bytes())),
        rate,
        |_| {},
    )
    .expect("produce")
    .1
}
