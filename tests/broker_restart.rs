//! A broker restart mid-stream (kill -9, then a start on the same log dir): the service
//! recovers without operator action and every result equals `replay`. The broker is the test's
//! own Apache Kafka node, so only this test runs in this binary.

mod support;

use std::time::Duration;

use support::*;

#[test]
fn a_broker_killed_and_restarted_mid_stream_is_survived_without_operator_action() {
    let kafka = OwnKafka::start(1);
    // Only this test runs in this binary: every helper now talks to the test's own broker.
    std::env::set_var("LEADSCORE_TEST_BROKERS", kafka.bootstrap());
    let n = Names::new("restart");
    create_topics(&n, 4);
    let records = stream(6_000, 31);
    let env = [
        ("LEADSCORE_KAFKA_SESSION_TIMEOUT_MS", "6000"),
        ("LEADSCORE_KAFKA_HEARTBEAT_INTERVAL_MS", "500"),
    ];
    let mut svc = Service::start(&n, &env);
    svc.wait_ready(Duration::from_secs(90));

    // The stream flows at 4,000 events/s for ~14 s. Once the service has committed a tenth of
    // it, the broker dies (kill -9) and comes back; the idempotent producer retries through the
    // outage (Apache Kafka keeps producer state across a restart), and nobody touches the
    // service.
    let producer = produce_in_background(&n.input, &records, 4_000.0);
    wait_until(
        Duration::from_secs(120),
        || committed(&n.group, &n.input).values().sum::<i64>() >= (records.len() / 10) as i64,
        || format!("nothing committed before the restart:\n{}", svc.log_text()),
    );
    kafka.kill9(1);
    std::thread::sleep(Duration::from_secs(2));
    kafka.restart(1);
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
    assert_eq!(
        high_watermarks(&n.input).values().sum::<i64>(),
        records.len() as i64,
        "the idempotent producer wrote every event once"
    );
    // at_least_once: a rewind after the outage may re-send a sales_ready (same event_id).
    assert_replay_at_least_once(&n, &records, &[&svc]);
}
