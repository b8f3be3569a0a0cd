//! Load for scripts/bench-memory.sh: `PASSES` passes over `LEADS` leads, one event per lead per
//! pass, produced as fast as the broker takes them. Pass 0 is a form conversion with a profile
//! (job title, industry, company size), later passes are pricing page views an hour apart, so
//! from the second pass on every event finds its lead last touched a whole pass earlier: with
//! a memory budget below `LEADS`, every such event reads its lead back from the store.
//!
//! `lead_load BROKERS TOPIC LEADS PASSES`

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

const TITLES: [&str; 4] = [
    "VP Sales",
    "Marketing Manager",
    "Engineer",
    "Head of Growth",
];
const INDUSTRIES: [&str; 3] = ["software", "retail", "saas"];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, topic, leads, passes] = args.as_slice() else {
        eprintln!("usage: lead_load BROKERS TOPIC LEADS PASSES");
        std::process::exit(2);
    };
    let leads: u64 = leads.parse().expect("LEADS is a number");
    let passes: u64 = passes.parse().expect("PASSES is a number");
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    // Event time: passes an hour apart, starting two hours before now (within any skew bound).
    let start = chrono::Utc::now() - chrono::Duration::hours(2 + passes as i64);
    let began = Instant::now();
    let mut sent = 0u64;
    for pass in 0..passes {
        for i in 0..leads {
            let lead = format!("M-{i:08}");
            let ts = start
                + chrono::Duration::hours(pass as i64)
                + chrono::Duration::milliseconds((i % 3_600_000) as i64);
            let body = event(
                pass,
                i,
                &lead,
                &ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            );
            let mut record = BaseRecord::to(topic).key(&lead).payload(&body);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
            sent += 1;
            if sent % 1_000_000 == 0 {
                eprintln!(
                    "lead_load: {sent} events ({:.0}/s)",
                    sent as f64 / began.elapsed().as_secs_f64()
                );
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
    println!(
        "lead_load: {sent} events for {leads} leads in {:.1}s",
        began.elapsed().as_secs_f64()
    );
}

fn event(pass: u64, i: u64, lead: &str, ts: &str) -> Vec<u8> {
    let id = format!("m-{pass}-{i}");
    let v = if pass == 0 {
        serde_json::json!({"event_id": id, "type": "form_conversion", "lead_id": lead, "ts": ts,
            "form_id": "ebook-download", "offer_stage": "tofu",
            "fields": {"job_title": TITLES[(i % 4) as usize],
                       "industry": INDUSTRIES[(i % 3) as usize], "company_size": 20 + i % 900}})
    } else {
        serde_json::json!({"event_id": id, "type": "page_view", "lead_id": lead, "ts": ts,
            "url": "https://example.com/pricing", "duration_s": 40})
    };
    serde_json::to_vec(&v).expect("JSON")
}
