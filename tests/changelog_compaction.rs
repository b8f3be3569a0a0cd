//! Restore from a compacted changelog: the changelog topic is made to compact eagerly (segments
//! roll every 200 ms, any dirty ratio is cleanable), the first instance stops after the broker
//! has compacted it, and a second instance with an empty state directory restores from what
//! compaction left. Scores and the `sales_ready` sequence of the rest of the stream equal
//! `replay`.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use support::*;

const READY: Duration = Duration::from_secs(90);
const DONE: Duration = Duration::from_secs(300);

fn create_eager_changelog(name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        leadscore::kafka::client_config(&brokers(), &BTreeMap::new())
            .create()
            .unwrap();
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(-1))
        .set("cleanup.policy", "compact")
        .set("segment.ms", "200")
        .set("min.cleanable.dirty.ratio", "0.01")
        .set("min.compaction.lag.ms", "0");
    let r = rt()
        .block_on(admin.create_topics([&topic], &AdminOptions::new()))
        .unwrap();
    assert!(r.iter().all(|x| x.is_ok()), "{r:?}");
}

#[test]
fn a_lost_state_directory_is_restored_from_a_compacted_changelog() {
    let n = Names::new("compact");
    create_topics(&n, 4);
    let changelog = format!("{}-state-changelog", n.group);
    create_eager_changelog(&changelog, 4);
    let records = stream(2_000, 71);
    let (first, rest) = records.split_at(records.len() * 2 / 3);
    let dir_a = std::env::temp_dir().join(unique("compact-a"));
    let dir_a = dir_a.to_string_lossy().to_string();
    let mut a = Service::start(&n, &[("LEADSCORE_STATE_DIR", dir_a.as_str())]);
    a.wait_ready(READY);
    // Paced, so that leads change across many checkpoints and the changelog holds many
    // records per lead.
    let ends = leadscore::kafka::produce_all(
        &brokers(),
        &BTreeMap::new(),
        &n.input,
        first
            .iter()
            .map(|r| (r.lead_id.clone(), r.json_line().into_bytes())),
        Some(4_000.0),
        |_| {},
    )
    .unwrap()
    .1;
    wait_all_committed(&n.group, &n.input, &ends, DONE, &[&a]);
    assert!(a.terminate(Duration::from_secs(60)).success());

    let written: i64 = high_watermarks(&changelog).values().sum();
    let leads_written = read_all(&changelog)
        .iter()
        .filter_map(|r| r.key.clone())
        .collect::<std::collections::HashSet<_>>()
        .len() as i64;
    assert!(
        written > leads_written * 2,
        "{written} changelog records for {leads_written} leads: too few updates to compact"
    );
    wait_until(
        Duration::from_secs(120),
        || (read_all(&changelog).len() as i64) < written * 2 / 3,
        || format!("the changelog was not compacted: {written} records written"),
    );
    let kept = read_all(&changelog).len();
    eprintln!("changelog compacted: {written} records written, {kept} kept, {leads_written} leads");

    let dir_b = std::env::temp_dir().join(unique("compact-b"));
    let dir_b = dir_b.to_string_lossy().to_string();
    let mut b = Service::start(&n, &[("LEADSCORE_STATE_DIR", dir_b.as_str())]);
    b.wait_ready(READY);
    let log = b.log_text();
    assert_eq!(
        log.matches("source=\"changelog\"").count(),
        4,
        "every partition restored from the changelog:\n{log}"
    );
    let (_, leads, engine) = reference(first);
    assert_scores_match(&[&b], &leads, &engine);

    let ends = merge(ends, produce_records(&n.input, rest));
    wait_all_committed(&n.group, &n.input, &ends, DONE, &[&b]);
    let (want, leads, engine) = reference(&records);
    let got = unique_outputs(&n.output);
    assert_same_sequences(&by_lead(&got), &by_lead(&want));
    assert_scores_match(&[&b], &leads, &engine);
}
