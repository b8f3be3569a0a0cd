//! Durable partitioned state on the real broker: kill -9 at random moments, a lost state
//! directory, instances coming and going, a broker restart. Every run ends with every lead's
//! score and qualification sequence equal to `replay`.

mod support;

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

#[test]
fn kill_9_at_random_moments_loses_and_doubles_nothing() {
    let n = Names::new("kill9");
    create_topics(&n, 8);
    let records = stream(21_000, 21);
    assert!(records.len() >= 200_000, "{} events", records.len());
    let dir_s = state_dir("kill9-state");
    let env = env_with(&dir_s, &[]);
    let mut svc = Service::start(&n, &env);
    svc.wait_ready(READY);
    // ~40 s of stream; each restart takes the group's session timeout (6 s) to get the
    // partitions back, so the five kills fall inside the stream.
    let producer = produce_in_background(&n.input, &records, 5_000.0);
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
    assert_replay_at_least_once(&n, &records, &[&svc]);
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
    let dir_s = state_dir("lostdir-state");
    let env = env_with(&dir_s, &[]);
    let mut svc = Service::start(&n, &env);
    svc.wait_ready(READY);
    let first = produce_records(&n.input, &records[..half]);
    wait_all_committed(&n.group, &n.input, &first, DONE, &[&svc]);
    svc.kill9();
    std::fs::remove_dir_all(&dir_s).unwrap();
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
    assert_replay_at_least_once(&n, &records, &[&svc]);
}

#[test]
fn retention_evicts_idle_negligible_leads_with_a_changelog_tombstone() {
    let n = Names::new("retention");
    create_topics(&n, 1);
    let dir_s = state_dir("retention-state");
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

#[test]
fn corrupt_store_files_are_quarantined_and_restored_from_the_changelog() {
    let n = Names::new("corrupt");
    create_topics(&n, 4);
    let records = stream(3000, 27);
    let half = records.len() / 2;
    let dir_s = state_dir("corrupt-state");
    let env = env_with(&dir_s, &[]);
    let mut svc = Service::start(&n, &env);
    svc.wait_ready(READY);
    let first = produce_records(&n.input, &records[..half]);
    wait_all_committed(&n.group, &n.input, &first, DONE, &[&svc]);
    svc.kill9();
    let file = |p: i32| {
        std::path::Path::new(&dir_s)
            .join(&n.group)
            .join(format!("partition-{p}.redb"))
    };
    // Truncated to half, bytes flipped across the file, overwritten with noise, emptied.
    let bytes = std::fs::read(file(0)).unwrap();
    std::fs::write(file(0), &bytes[..bytes.len() / 2]).unwrap();
    let mut flipped = std::fs::read(file(1)).unwrap();
    for i in (0..flipped.len()).step_by(97) {
        flipped[i] ^= 0x5a;
    }
    std::fs::write(file(1), &flipped).unwrap();
    let noise: Vec<u8> = (0..bytes.len() as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(file(2), noise).unwrap();
    std::fs::write(file(3), b"").unwrap();
    let mut svc = Service::start(&n, &env);
    svc.wait_ready(READY);
    let log = svc.log_text();
    assert!(log.contains("state store unreadable"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    let ends = merge(first, produce_records(&n.input, &records[half..]));
    wait_all_committed(&n.group, &n.input, &ends, DONE, &[&svc]);
    assert!(
        svc.child.try_wait().unwrap().is_none(),
        "{}",
        svc.log_text()
    );
    assert!(
        svc.metric("leadscore_store_corrupt_total") >= 3.0,
        "{}",
        svc.log_text()
    );
    let aside = std::fs::read_dir(std::path::Path::new(&dir_s).join(&n.group))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".corrupt-")
        })
        .count();
    assert!(aside >= 3, "corrupt files kept aside for a post-mortem");
    assert_replay_at_least_once(&n, &records, &[&svc]);
}
