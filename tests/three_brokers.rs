//! Three Apache Kafka brokers (replication factor 3, min.insync.replicas 2): the group
//! coordinator, also leader of input and output partitions, is killed mid-stream under
//! exactly_once. Nothing is lost,
//! nothing is duplicated for a read_committed subscriber, and the service keeps running.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use support::*;

/// The node coordinating `group`: the leader of its `__consumer_offsets` partition (Kafka
/// places a group by the Java hash code of its id, over the 8 partitions start-kafka.sh sets).
fn coordinator_of(group: &str) -> i32 {
    let hash = group
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
    leader_of("__consumer_offsets", (hash & 0x7fff_ffff) % 8)
}

fn leader_of(topic: &str, partition: i32) -> i32 {
    let c: BaseConsumer = leadscore::kafka::client_config(&brokers(), &BTreeMap::new())
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    md.topics()[0]
        .partitions()
        .iter()
        .find(|p| p.id() == partition)
        .unwrap()
        .leader()
}

#[test]
fn killing_a_partition_leader_of_three_brokers_loses_and_duplicates_nothing() {
    let kafka = OwnKafka::start(3);
    // Only this test runs in this binary: every helper now talks to the test's own cluster.
    std::env::set_var("LEADSCORE_TEST_BROKERS", kafka.bootstrap());
    let n = Names::new("three");
    create_topics(&n, 6);
    let records = stream(4_000, 81);
    // Dynamic membership: with a static group.instance.id, Apache Kafka 4.4 can fence a
    // member by its own instance id when the group coordinator fails over (apache/kafka#23542);
    // librdkafka makes that fatal and the service exits for its supervisor to restart it
    // (docs/ARCHITECTURE.md, "Group membership").
    let env = [
        ("LEADSCORE_GUARANTEE", "exactly_once"),
        ("LEADSCORE_KAFKA_SESSION_TIMEOUT_MS", "10000"),
    ];
    let mut svc = Service::start(&n, &env);
    svc.wait_ready(Duration::from_secs(120));
    let producer = produce_in_background(&n.input, &records, 3_000.0);
    wait_until(
        Duration::from_secs(120),
        || committed(&n.group, &n.input).values().sum::<i64>() >= (records.len() / 5) as i64,
        || format!("nothing committed:\n{}", svc.log_text()),
    );
    // The hardest node to lose: the group coordinator, which also leads input and output
    // partitions (leaders spread evenly over three nodes).
    let victim = coordinator_of(&n.group);
    let input_leaders: Vec<i32> = (0..6).map(|p| leader_of(&n.input, p)).collect();
    let output_leaders: Vec<i32> = (0..4).map(|p| leader_of(&n.output, p)).collect();
    assert!(
        input_leaders.contains(&victim) && output_leaders.contains(&victim),
        "node {victim} coordinates the group and leads input and output partitions: \
         {input_leaders:?} {output_leaders:?}"
    );
    kafka.kill9(victim as u16);
    let ends = producer.join().unwrap();
    assert!(
        committed(&n.group, &n.input).values().sum::<i64>() < records.len() as i64,
        "the stream was over before the kill"
    );
    wait_all_committed(&n.group, &n.input, &ends, Duration::from_secs(300), &[&svc]);
    assert!(
        svc.child.try_wait().unwrap().is_none(),
        "the service kept running:\n{}",
        svc.log_text()
    );
    let moved: Vec<i32> = (0..6).map(|p| leader_of(&n.input, p)).collect();
    assert!(!moved.contains(&victim), "leadership moved: {moved:?}");
    assert_replay_exactly(&n, &records, &[&svc]);
    kafka.restart(victim as u16);
}
