//! Consumer group membership on Apache Kafka: static membership (a restart within the session
//! timeout takes its partitions back with no rebalance), and each assignment — classic eager
//! `range`, classic `cooperative-sticky` and Kafka 4's consumer protocol (KIP-848) — through a
//! 1 → 3 → 1 scaling run whose results equal `replay`.

mod support;

use std::time::{Duration, Instant};

use support::*;

const READY: Duration = Duration::from_secs(90);
const DONE: Duration = Duration::from_secs(300);

#[test]
fn a_static_member_restarted_within_the_session_timeout_gets_its_partitions_without_a_rebalance() {
    let n = Names::new("static");
    create_topics(&n, 8);
    let records = stream(3_000, 61);
    let half = records.len() / 2;
    let (dir_x, dir_y) = (state_dir("static-x"), state_dir("static-y"));
    let env = |id: &'static str, dir: &str| -> Vec<(String, String)> {
        [
            ("LEADSCORE_INSTANCE_ID", id),
            ("LEADSCORE_STATE_DIR", dir),
            ("LEADSCORE_KAFKA_SESSION_TIMEOUT_MS", "30000"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let (env_x, env_y) = (env("static-x", &dir_x), env("static-y", &dir_y));
    let refs = |v: &'_ [(String, String)]| -> Vec<(String, String)> { v.to_vec() };
    let start = |e: &[(String, String)]| {
        let pairs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Service::start(&n, &pairs)
    };
    let mut x = start(&refs(&env_x));
    x.wait_ready(READY);
    let y = start(&refs(&env_y));
    wait_until(
        READY,
        || owned(&x).len() + owned(&y).len() == 8 && !owned(&y).is_empty(),
        || format!("no split between x and y:\n{}", y.log_text()),
    );
    let x_parts = owned(&x);
    let mut ends = produce_records(&n.input, &records[..half]);
    wait_all_committed(&n.group, &n.input, &ends, DONE, &[&x, &y]);
    let y_rebalances = y.metric("leadscore_rebalances_total");

    let killed = Instant::now();
    x.kill9();
    let mut x = start(&refs(&env_x));
    x.wait_ready(READY);
    let ready_after = killed.elapsed();
    ends = merge(ends, produce_records(&n.input, &records[half..]));
    wait_all_committed(&n.group, &n.input, &ends, DONE, &[&x, &y]);
    let processing_after = killed.elapsed();
    eprintln!(
        "static membership: kill -9 → ready {ready_after:?}, → every new event committed {processing_after:?}"
    );
    assert_eq!(owned(&x), x_parts, "the same partitions came back");
    assert_eq!(
        y.metric("leadscore_rebalances_total"),
        y_rebalances,
        "the other member saw no rebalance"
    );
    assert!(
        ready_after < Duration::from_secs(30),
        "back before the session timeout"
    );
    assert_replay_at_least_once(&n, &records, &[&x, &y]);
}

/// 1 → 3 → 1 instances under an assignment, with the stream produced in three parts.
fn scale_1_3_1(assignment: &str, extra: &[(&str, &str)]) {
    let n = Names::new(&format!("scale-{assignment}"));
    create_topics(&n, 8);
    let records = stream(6_000, 63);
    let third = records.len() / 3;
    let dirs: Vec<String> = (0..3).map(|i| state_dir(&format!("scale-{i}"))).collect();
    let env = |dir: &str| -> Vec<(String, String)> {
        let mut v = vec![
            ("LEADSCORE_ASSIGNMENT".to_string(), assignment.to_string()),
            ("LEADSCORE_STATE_DIR".to_string(), dir.to_string()),
        ];
        v.extend(extra.iter().map(|(k, x)| (k.to_string(), x.to_string())));
        v
    };
    let start = |dir: &str| {
        let e = env(dir);
        let pairs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Service::start(&n, &pairs)
    };
    let mut a = start(&dirs[0]);
    a.wait_ready(READY);
    let mut ends = produce_records(&n.input, &records[..third]);
    let mut b = start(&dirs[1]);
    let mut c = start(&dirs[2]);
    let counts = || -> Vec<usize> { [&a, &b, &c].iter().map(|s| owned(s).len()).collect() };
    wait_until(
        READY,
        || {
            let o = counts();
            o.iter().all(|x| *x > 0) && o.iter().sum::<usize>() == 8
        },
        || format!("no 3-way split: {:?}\n{}", counts(), b.log_text()),
    );
    ends = merge(ends, produce_records(&n.input, &records[third..2 * third]));
    wait_all_committed(&n.group, &n.input, &ends, DONE, &[&a, &b, &c]);
    assert!(b.terminate(Duration::from_secs(60)).success());
    assert!(c.terminate(Duration::from_secs(60)).success());
    ends = merge(ends, produce_records(&n.input, &records[2 * third..]));
    wait_until(READY, || owned(&a).len() == 8, || a.log_text());
    wait_all_committed(&n.group, &n.input, &ends, DONE, &[&a]);
    let log = a.log_text();
    assert!(
        log.contains(&format!("assignment=\"{assignment}\"")),
        "ran under {assignment}:\n{log}"
    );
    assert_replay_at_least_once(&n, &records, &[&a]);
}

#[test]
fn eager_range_scales_1_to_3_to_1_with_every_result_kept() {
    scale_1_3_1(
        "range",
        &[
            ("LEADSCORE_KAFKA_SESSION_TIMEOUT_MS", "6000"),
            ("LEADSCORE_KAFKA_HEARTBEAT_INTERVAL_MS", "500"),
        ],
    );
}

#[test]
fn cooperative_sticky_scales_1_to_3_to_1_with_every_result_kept() {
    scale_1_3_1(
        "cooperative-sticky",
        &[
            ("LEADSCORE_KAFKA_SESSION_TIMEOUT_MS", "6000"),
            ("LEADSCORE_KAFKA_HEARTBEAT_INTERVAL_MS", "500"),
        ],
    );
}

#[test]
fn the_kip_848_consumer_protocol_scales_1_to_3_to_1_with_every_result_kept() {
    scale_1_3_1("consumer", &[]);
}
