//! Erasure on the real broker: `leadscore forget --lead` and `DELETE /v1/leads/{id}` (behind
//! the bearer token) remove a lead's state, write a changelog tombstone and an erasure record;
//! re-published old events of the lead never bring it back, across a restart that restores
//! from the changelog; a newer event starts a new lead; every other lead equals replay.

mod support;

use std::process::Command;
use std::time::Duration;

use leadscore::gen::GenRecord;
use support::*;

const TOKEN: &str = "0123456789abcdef-test-token";

fn lead_status(svc: &Service, lead: &str) -> u16 {
    svc.get(&format!("/v1/leads/{}", percent_encode(lead)))
        .map_or(0, |r| r.0)
}

fn delete(svc: &Service, lead: &str, auth: &str) -> (u16, String) {
    http_request(
        &svc.http,
        "DELETE",
        &format!("/v1/leads/{}", percent_encode(lead)),
        auth,
    )
    .unwrap()
}

fn events_of(records: &[GenRecord], lead: &str) -> Vec<GenRecord> {
    records
        .iter()
        .filter(|r| r.lead_id == lead && r.event.is_some())
        .cloned()
        .collect()
}

/// Produces and waits until the group has consumed everything in the input topic.
fn produce_and_catch_up(n: &Names, records: &[GenRecord], svc: &Service) {
    produce_records(&n.input, records);
    wait_all_committed(
        &n.group,
        &n.input,
        &high_watermarks(&n.input),
        Duration::from_secs(120),
        &[svc],
    );
}

#[test]
fn a_forgotten_lead_stays_forgotten_across_replays_of_old_input_and_restores() {
    let n = Names::new("erase");
    create_topics(&n, 3);
    let records = stream(200, 31);
    let state = state_dir("erase-state");
    let env = [
        ("LEADSCORE_HTTP_TOKEN", TOKEN),
        ("LEADSCORE_STATE_DIR", state.as_str()),
    ];
    let mut svc = Service::start(&n, &env);
    svc.wait_ready(Duration::from_secs(60));
    produce_and_catch_up(&n, &records, &svc);
    let (_, leads, engine) = reference(&records);
    let ids: Vec<String> = leads.sorted().iter().map(|l| l.id.to_string()).collect();
    let (a, b) = (ids[0].clone(), ids[1].clone());
    assert_eq!((lead_status(&svc, &a), lead_status(&svc, &b)), (200, 200));

    // The CLI, then HTTP: no token, a wrong one, the right one.
    let out = Command::new(env!("CARGO_BIN_EXE_leadscore"))
        .args(["forget", "--lead", &a])
        .env("LEADSCORE_BROKERS", brokers())
        .env("LEADSCORE_INPUT_TOPICS", &n.input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("forget command published"));
    assert_eq!(delete(&svc, &b, "").0, 401);
    assert_eq!(
        http_get(&svc.http, &format!("/v1/leads/{}", percent_encode(&b)))
            .unwrap()
            .0,
        401
    );
    assert_eq!(
        delete(
            &svc,
            &b,
            "Authorization: Bearer wrong-token-wrong-token\r\n"
        )
        .0,
        401
    );
    let (status, body) = delete(&svc, &b, &format!("Authorization: Bearer {TOKEN}\r\n"));
    assert_eq!(status, 202, "{body}");
    wait_all_committed(
        &n.group,
        &n.input,
        &high_watermarks(&n.input),
        Duration::from_secs(60),
        &[&svc],
    );
    assert_eq!((lead_status(&svc, &a), lead_status(&svc, &b)), (404, 404));
    assert_eq!(svc.metric("leadscore_erasures_total"), 2.0);
    assert!(!svc.log_text().contains(&a), "no lead id in the log");

    // The changelog: the lead's last record is a tombstone; an erasure record by hash.
    let changelog = read_all(&format!("{}-state-changelog", n.group));
    let last_of_a = changelog
        .iter()
        .rev()
        .find(|r| r.key.as_deref() == Some(a.as_bytes()))
        .unwrap();
    assert!(last_of_a.payload.is_none(), "tombstone for the erased lead");
    let erasure_key = leadscore::erasure::changelog_key(&leadscore::erasure::hash(&a));
    assert!(changelog
        .iter()
        .any(|r| r.key.as_deref() == Some(&erasure_key[..]) && r.payload.is_some()));

    // Old events of the lead, published again, are refused.
    let old_a = events_of(&records, &a);
    produce_and_catch_up(&n, &old_a, &svc);
    assert_eq!(lead_status(&svc, &a), 404);
    assert_eq!(
        svc.metric("leadscore_erased_events_total"),
        old_a.len() as f64
    );

    // A restart that restores from the changelog (the local state is gone) remembers.
    svc.kill9();
    std::fs::remove_dir_all(&state).unwrap();
    let mut svc = Service::start(&n, &env);
    svc.wait_ready(Duration::from_secs(60));
    assert!(
        svc.log_text().contains("source=\"changelog\""),
        "{}",
        svc.log_text()
    );
    let old_b = events_of(&records, &b);
    produce_and_catch_up(&n, &old_b, &svc);
    assert_eq!((lead_status(&svc, &a), lead_status(&svc, &b)), (404, 404));
    assert_eq!(
        svc.metric("leadscore_erased_events_total"),
        old_b.len() as f64
    );

    // New activity after the erasure starts a new lead.
    let now = leadscore::time::format_rfc3339(leadscore::time::now_micros() + 60_000_000);
    let fresh = serde_json::json!({"event_id": "after-erasure", "type": "page_view",
        "lead_id": a, "ts": now, "url": "https://example.com/pricing"})
    .to_string();
    produce(&n.input, [(a.clone(), fresh.into_bytes())]);
    wait_all_committed(
        &n.group,
        &n.input,
        &high_watermarks(&n.input),
        Duration::from_secs(60),
        &[&svc],
    );
    assert_eq!(lead_status(&svc, &a), 200);

    // Every other lead equals replay.
    let others: Vec<GenRecord> = records
        .iter()
        .filter(|r| r.lead_id != a && r.lead_id != b)
        .cloned()
        .collect();
    let (_, others_leads, _) = reference(&others);
    assert_scores_match(&[&svc], &others_leads, &engine);
}
