//! Durable partitioned state on the real broker: kill -9 at random moments, a lost state
//! directory, instances coming and going, a broker restart. Every run ends with every lead's
//! score and qualification sequence equal to `replay`.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use support::*;

const READY: Duration = Duration::from_secs(90);
const DONE: Duration = Duration::from_secs(300);

/// Fast failure detection, so a killed member leaves the group in seconds.
const GROUP_ENV: [(&str, &str); 2] = [
    ("LEADSCORE_KAFKA_SESSION_TIMEOUT_MS", "6000"),
    ("LEADSCORE_KAFKA_HEARTBEAT_INTERVAL_MS", "500"),
];

fn env_with<'a>(state: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = GROUP_ENV.to_vec();
    v.push(("LEADSCORE_STATE_DIR", state));
    v.extend_from_slice(extra);
    v
}

fn state_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(unique(name))
}

/// Produces records in a background thread at `rate` per second.
fn produce_in_background(
    topic: String,
    records: Vec<leadscore::gen::GenRecord>,
    rate: f64,
    brokers: String,
) -> std::thread::JoinHandle<Ends> {
    std::thread::spawn(move || {
        // Not idempotent: tansu forgets producer ids across a restart, which fails an
        // idempotent producer; plain retries may duplicate input, which the engine ignores.
        let passthrough = [("enable.idempotence".to_string(), "false".to_string())].into();
        leadscore::kafka::produce_all(
            &brokers,
            &passthrough,
            &topic,
            records
                .iter()
                .map(|r| (r.lead_id.clone(), r.json_line().into_bytes())),
            Some(rate),
            |_| {},
        )
        .expect("produce")
        .1
    })
}

fn check(n: &Names, records: &[leadscore::gen::GenRecord], services: &[&Service]) {
    let (want, leads, engine) = reference(records);
    let got = unique_outputs(&n.output);
    assert_same_sequences(&by_lead(&got), &by_lead(&want));
    assert_scores_match(services, &leads, &engine);
}

#[test]
fn kill_9_at_random_moments_loses_and_doubles_nothing() {
    let n = Names::new("kill9");
    create_topics(&n, 8);
    let records = stream(21_000, 21);
    assert!(records.len() >= 200_000, "{} events", records.len());
    let dir = state_dir("kill9-state");
    let dir_s = dir.to_string_lossy().to_string();
    let env = env_with(&dir_s, &[]);
    let mut svc = Service::start(&n, &env);
    svc.wait_ready(READY);
    // ~40 s of stream; each restart takes the group's session timeout (6 s) to get the
    // partitions back, so the five kills fall inside the stream.
    let producer = produce_in_background(n.input.clone(), records.clone(), 5_000.0, brokers());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for _ in 0..5 {
        wait_owns(&svc, 8);
        std::thread::sleep(Duration::from_millis(rng.random_range(300..3000)));
        svc.kill9();
        svc = Service::start(&n, &env);
    }
    let ends = producer.join().unwrap();
    wait_all_committed(&n.group, &n.input, &ends, DONE, &[&svc]);
    wait_owns(&svc, 8);
    let log = svc.log_text();
    assert!(
        log.contains("source=\"local\""),
        "restarts restore from the local store:\n{log}"
    );
    check(&n, &records, &[&svc]);
}

/// Waits until an instance is ready and owns `n` partitions (a killed member has left the group).
fn wait_owns(s: &Service, n: usize) {
    wait_until(
        READY,
        || owned(s).len() == n,
        || format!("never owned {n} partitions:\n{}", s.log_text()),
    );
}

#[test]
fn a_lost_state_directory_is_restored_from_the_changelog() {
    let n = Names::new("lostdir");
    create_topics(&n, 8);
    let records = stream(4000, 22);
    let half = records.len() / 2;
    let dir = state_dir("lostdir-state");
    let dir_s = dir.to_string_lossy().to_string();
    let env = env_with(&dir_s, &[]);
    let mut svc = Service::start(&n, &env);
    svc.wait_ready(READY);
    let first = produce_records(&n.input, &records[..half]);
    wait_all_committed(&n.group, &n.input, &first, DONE, &[&svc]);
    svc.kill9();
    std::fs::remove_dir_all(&dir).unwrap();
    let mut svc = Service::start(&n, &env);
    svc.wait_ready(READY);
    let log = svc.log_text();
    assert!(
        log.contains("source=\"changelog\""),
        "restored from the changelog:\n{log}"
    );
    assert!(!log.contains("source=\"input\""), "{log}");
    let ends = merge(first, produce_records(&n.input, &records[half..]));
    wait_all_committed(&n.group, &n.input, &ends, DONE, &[&svc]);
    check(&n, &records, &[&svc]);
}

#[test]
fn scaling_1_to_3_to_1_instances_keeps_every_result() {
    let n = Names::new("scale");
    create_topics(&n, 8);
    let records = stream(6000, 23);
    let third = records.len() / 3;
    let dirs: Vec<String> = (0..3)
        .map(|i| {
            state_dir(&format!("scale-{i}"))
                .to_string_lossy()
                .to_string()
        })
        .collect();
    let mut a = Service::start(&n, &env_with(&dirs[0], &[]));
    a.wait_ready(READY);
    let mut ends = produce_records(&n.input, &records[..third]);
    let mut b = Service::start(&n, &env_with(&dirs[1], &[]));
    let mut c = Service::start(&n, &env_with(&dirs[2], &[]));
    b.wait_ready(READY);
    c.wait_ready(READY);
    // All three own partitions before the next part of the stream.
    let counts = || -> Vec<usize> { [&a, &b, &c].iter().map(|s| owned(s).len()).collect() };
    wait_until(
        READY,
        || {
            let o = counts();
            o.iter().all(|x| *x > 0) && o.iter().sum::<usize>() == 8
        },
        || format!("no 3-way split: {:?}", counts()),
    );
    ends = merge(ends, produce_records(&n.input, &records[third..2 * third]));
    wait_all_committed(&n.group, &n.input, &ends, DONE, &[&a, &b, &c]);
    assert!(b.terminate(Duration::from_secs(60)).success());
    assert!(c.terminate(Duration::from_secs(60)).success());
    ends = merge(ends, produce_records(&n.input, &records[2 * third..]));
    wait_owns(&a, 8);
    wait_all_committed(&n.group, &n.input, &ends, DONE, &[&a]);
    check(&n, &records, &[&a]);
}

#[test]
fn retention_evicts_idle_negligible_leads_with_a_changelog_tombstone() {
    let n = Names::new("retention");
    create_topics(&n, 1);
    let dir = state_dir("retention-state");
    let dir_s = dir.to_string_lossy().to_string();
    let env = env_with(
        &dir_s,
        &[
            ("LEADSCORE_RETENTION_TTL", "2d"),
            ("LEADSCORE_RETENTION_FLOOR", "5"),
            ("LEADSCORE_RETENTION_SWEEP", "100ms"),
        ],
    );
    let mut svc = Service::start(&n, &env);
    svc.wait_ready(READY);
    let line = |id: &str, lead: &str, ts: &str, path: &str| {
        (
            lead.to_string(),
            serde_json::json!({"event_id": id, "type": "page_view", "lead_id": lead, "ts": ts,
                "url": format!("https://x.io{path}")})
            .to_string()
            .into_bytes(),
        )
    };
    let form = (
        "fit".to_string(),
        serde_json::json!({"event_id": "f1", "type": "form_conversion", "lead_id": "fit",
            "ts": "2026-11-01T00:00:00Z", "form_id": "x",
            "fields": {"job_title": "VP Sales", "email": "a@b.com"}})
        .to_string()
        .into_bytes(),
    );
    produce(
        &n.input,
        vec![
            // 1 point, no fit, never qualified: evictable once 2 days idle.
            line("i1", "idle", "2026-11-01T00:00:00Z", "/blog/a"),
            // fit points: kept however idle.
            form,
            // 15 points: above the floor, kept.
            line("s1", "strong", "2026-11-01T00:00:00Z", "/pricing"),
            // moves the partition's newest lead clock 9 days ahead.
            line("a1", "active", "2026-11-10T00:00:00Z", "/blog/b"),
        ],
    );
    wait_until(
        READY,
        || svc.metric("leadscore_evicted_total") >= 1.0,
        || format!("nothing evicted:\n{}", svc.log_text()),
    );
    assert_eq!(svc.metric("leadscore_evicted_total"), 1.0);
    assert_eq!(svc.get("/v1/leads/idle").unwrap().0, 404);
    for kept in ["fit", "strong", "active"] {
        assert_eq!(
            svc.get(&format!("/v1/leads/{kept}")).unwrap().0,
            200,
            "{kept}"
        );
    }
    // The eviction reaches the changelog as a tombstone at the next checkpoint.
    let log_topic = format!("{}-state-changelog", n.group);
    wait_until(
        READY,
        || {
            read_all(&log_topic)
                .iter()
                .any(|r| r.key.as_deref() == Some(b"idle".as_slice()) && r.payload.is_none())
        },
        || "no tombstone for the evicted lead".into(),
    );
}
