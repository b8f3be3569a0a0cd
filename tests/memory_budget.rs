//! `max_leads_in_memory` on the real broker: with a budget far below the number of leads, the
//! service sheds leads to its local store at every checkpoint and reads them back on their next
//! event, across a restart, and nothing it computes changes: outputs and every lead's score
//! equal `replay`.

mod support;

use std::time::Duration;

use support::*;

const READY: Duration = Duration::from_secs(90);
const DONE: Duration = Duration::from_secs(180);

#[test]
fn a_tiny_memory_budget_changes_no_output_and_no_score() {
    let n = Names::new("budget");
    create_topics(&n, 8);
    let records = stream(3000, 17);
    let (want, _, _) = reference(&records);
    assert!(want.len() > 50, "the stream must qualify leads");
    let state = state_dir("budget-state");
    // One lead per partition: nearly every event reads its lead back from the store.
    let env = [
        ("LEADSCORE_STATE_DIR", state.as_str()),
        ("LEADSCORE_MAX_LEADS_IN_MEMORY", "8"),
        ("LEADSCORE_COMMIT_INTERVAL", "50ms"),
    ];
    let (first, second) = records.split_at(records.len() / 2);

    // Paced over ~3 s, so that many checkpoints (each shedding) fall inside the stream.
    let mut svc = Service::start(&n, &env);
    svc.wait_ready(READY);
    let ends = produce_in_background(&n.input, first, 5_000.0)
        .join()
        .unwrap();
    wait_all_committed(&n.group, &n.input, &ends, DONE, &[&svc]);
    let (shed, read_back) = (
        svc.metric("leadscore_leads_shed_total"),
        svc.metric("leadscore_leads_read_back_total"),
    );
    assert!(shed > 1000.0, "leads shed: {shed}");
    assert!(read_back > 100.0, "leads read back: {read_back}");
    assert!(svc.terminate(DONE).success());

    // A restart loads at most the budget and reads the rest back as events come.
    let mut svc = Service::start(&n, &env);
    svc.wait_ready(READY);
    let loaded = svc.metric("leadscore_leads");
    assert!(loaded <= 8.0, "leads in memory after the restore: {loaded}");
    let ends = merge(
        ends,
        produce_in_background(&n.input, second, 5_000.0)
            .join()
            .unwrap(),
    );
    wait_all_committed(&n.group, &n.input, &ends, DONE, &[&svc]);
    assert!(svc.metric("leadscore_leads_read_back_total") > 100.0);
    // The checkpoint after the last event sheds everything beyond one lead per partition.
    wait_until(
        Duration::from_secs(10),
        || svc.metric("leadscore_leads") <= 8.0,
        || format!("leads in memory: {}", svc.metric("leadscore_leads")),
    );

    // Every output of replay, once each (a clean stop re-sends nothing), every field that
    // identifies it, and every lead's score read through the store by the lookup API.
    let got = outputs(&n.output);
    assert_eq!(
        got.len(),
        want.len(),
        "sales_ready count, duplicates counted"
    );
    assert_same_sequences(&by_lead(&got), &by_lead(&want));
    let (_, leads, engine) = reference(&records);
    assert_scores_match(&[&svc], &leads, &engine);
}
