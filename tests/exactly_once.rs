//! `exactly_once` on Apache Kafka: kill -9 at random moments, and a zombie (an instance frozen
//! until its partitions move, then thawed). A read_committed subscriber must see every
//! `sales_ready` of `replay` exactly once — duplicates are counted, never removed — and the
//! final scores must equal `replay`.

mod support;

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use support::*;

const READY: Duration = Duration::from_secs(90);
const DONE: Duration = Duration::from_secs(300);

#[test]
fn kill_9_ten_times_under_exactly_once_duplicates_and_loses_nothing() {
    let n = Names::new("eos-kill9");
    create_topics(&n, 8);
    let records = stream(21_000, 41);
    assert!(records.len() >= 200_000, "{} events", records.len());
    let dir = state_dir("eos-kill9-state");
    // A stable instance id: static membership gives the restart its partitions back at once,
    // and the stable transactional.id fences the killed instance's open transaction.
    let env = [
        ("LEADSCORE_GUARANTEE", "exactly_once"),
        ("LEADSCORE_INSTANCE_ID", "eos-kill9-a"),
        ("LEADSCORE_STATE_DIR", dir.as_str()),
        ("LEADSCORE_KAFKA_SESSION_TIMEOUT_MS", "10000"),
    ];
    let mut svc = Service::start(&n, &env);
    svc.wait_ready(READY);
    // ~60 s of stream; every kill falls inside it (each restart is ready in about a second).
    let producer = produce_in_background(&n.input, &records, 3_500.0);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let started = Instant::now();
    for kill in 0..10 {
        svc.wait_ready(READY);
        std::thread::sleep(Duration::from_millis(rng.random_range(200..2000)));
        assert!(
            !producer.is_finished(),
            "the stream was over before kill {kill} ({:?})",
            started.elapsed()
        );
        eprintln!("kill {kill} at {:?}", started.elapsed());
        svc.kill9();
        svc = Service::start(&n, &env);
    }
    let ends = producer.join().unwrap();
    wait_all_committed(&n.group, &n.input, &ends, DONE, &[&svc]);
    svc.wait_ready(READY);
    assert_replay_exactly(&n, &records, &[&svc]);
}

#[test]
fn a_zombie_thawed_after_its_partitions_moved_changes_nothing_visible() {
    let n = Names::new("eos-zombie");
    create_topics(&n, 4);
    let records = stream(4_000, 43);
    let (first, rest) = records.split_at(records.len() / 3);
    let (second, third) = rest.split_at(rest.len() / 2);
    let (dir_a, dir_b) = (state_dir("zombie-a"), state_dir("zombie-b"));
    let env = |dir: &'static str, id: &'static str| {
        [
            ("LEADSCORE_GUARANTEE", "exactly_once"),
            ("LEADSCORE_INSTANCE_ID", id),
            ("LEADSCORE_STATE_DIR", dir),
            ("LEADSCORE_KAFKA_SESSION_TIMEOUT_MS", "6000"),
            ("LEADSCORE_KAFKA_HEARTBEAT_INTERVAL_MS", "500"),
        ]
    };
    let (dir_a, dir_b): (&'static str, &'static str) = (
        Box::leak(dir_a.into_boxed_str()),
        Box::leak(dir_b.into_boxed_str()),
    );
    let mut a = Service::start(&n, &env(dir_a, "zombie-a"));
    a.wait_ready(READY);
    let ends = produce_records(&n.input, first);
    wait_all_committed(&n.group, &n.input, &ends, DONE, &[&a]);

    // Freeze A in the middle of a stream: it holds scored, uncommitted work.
    let producer = produce_in_background(&n.input, second, 3_000.0);
    std::thread::sleep(Duration::from_millis(700));
    assert!(a.signal("STOP"));
    let frozen = Instant::now();
    let b = Service::start(&n, &env(dir_b, "zombie-b"));
    let ends = merge(ends, producer.join().unwrap());
    wait_until(
        READY,
        || owned(&b).len() == 4,
        || format!("B never took over:\n{}", b.log_text()),
    );
    eprintln!(
        "B owned every partition {:?} after A froze",
        frozen.elapsed()
    );
    wait_all_committed(&n.group, &n.input, &ends, DONE, &[&b]);

    // Thaw A: whatever it sends now belongs to a fenced generation.
    assert!(a.signal("CONT"));
    let ends = merge(ends, produce_records(&n.input, third));
    wait_all_committed(&n.group, &n.input, &ends, DONE, &[&b]);
    // Let A act on its stale state (a checkpoint is due every 200 ms), then settle.
    std::thread::sleep(Duration::from_secs(3));
    let log_a = a.log_text();
    assert!(
        log_a.contains("lost")
            || log_a.contains("fenced")
            || log_a.contains("Fenced")
            || log_a.contains("revoked"),
        "the zombie noticed it lost its partitions:\n{log_a}"
    );
    let alive: Vec<&Service> = [&a, &b]
        .into_iter()
        .filter(|s| !owned(s).is_empty())
        .collect();
    wait_all_committed(&n.group, &n.input, &ends, DONE, &alive);
    assert_replay_exactly(&n, &records, &alive);
    drop(b);
}
