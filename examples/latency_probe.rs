//! End-to-end latency of `leadscore run` for scripts/bench-latency.sh: produces events at a
//! fixed rate and measures, for every `sales_ready` they cause, the time from producing the
//! triggering event to receiving the alert, in an HDR histogram (µs precision).
//!
//! `latency_probe BROKERS INPUT_TOPIC SALES_READY_TOPIC RATE SECONDS`
//!
//! Every lead gets five events a few hundred ms apart, dated now: a bottom-of-the-funnel form
//! with a fitting profile, a pricing, a demo and a pricing page view (the fourth event crosses
//! `examples/rules.toml`'s threshold of 120: 45 fit + 30 + 15 + 20 + 15) and a blog view, so
//! one event in five triggers an alert. The first 2 s are a warm-up and not recorded. The alert consumer reads
//! `read_committed` (under exactly_once an alert counts when its transaction commits).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::Message;

const WARMUP: Duration = Duration::from_secs(2);
/// Events per lead (one of them triggers the lead's alert).
const PER_LEAD: u64 = 5;

/// Trigger event id → when it was handed to the producer (recorded ones only).
type Sent = Arc<Mutex<HashMap<String, Instant>>>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, input, output, rate, secs] = args.as_slice() else {
        eprintln!("usage: latency_probe BROKERS INPUT_TOPIC SALES_READY_TOPIC RATE SECONDS");
        std::process::exit(2);
    };
    let rate: f64 = rate.parse().expect("RATE is events per second");
    let secs: f64 = secs.parse().expect("SECONDS is a number");
    let run = std::process::id();
    let sent: Sent = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let consumer = alert_consumer(brokers, output);
    let receiver = {
        let (sent, done) = (sent.clone(), done.clone());
        std::thread::spawn(move || receive(&consumer, &sent, &done))
    };
    let (produced, expected) = produce(brokers, input, rate, secs, run, &sent);
    // Alerts still in flight arrive within a few commit intervals.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sent.lock().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    done.store(true, Ordering::Release);
    let (hist, unexpected) = receiver.join().expect("receiver thread");
    let missing = sent.lock().unwrap().len();
    report(rate, produced, expected, &hist, missing, unexpected);
}

/// A consumer positioned at the current end of the alert topic.
fn alert_consumer(brokers: &str, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("latency-probe-{}", std::process::id()))
        .set("auto.offset.reset", "latest")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "5")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    // Join and get positions before anything is produced.
    let start = Instant::now();
    while consumer.assignment().map_or(0, |a| a.count()) == 0 {
        consumer.poll(Duration::from_millis(50));
        assert!(start.elapsed() < Duration::from_secs(30), "no assignment");
    }
    consumer
}

/// Records produce → receive for every alert whose trigger the producer recorded.
fn receive(consumer: &BaseConsumer, sent: &Sent, done: &AtomicBool) -> (Histogram<u64>, u64) {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("histogram");
    let mut unexpected = 0;
    while !done.load(Ordering::Acquire) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(20)) else {
            continue;
        };
        let at = Instant::now();
        let v: serde_json::Value =
            serde_json::from_slice(m.payload().unwrap_or_default()).expect("sales_ready is JSON");
        let trigger = v["trigger_event_id"].as_str().unwrap_or_default();
        match sent.lock().unwrap().remove(trigger) {
            Some(t) => hist.saturating_record(at.duration_since(t).as_micros() as u64),
            None => unexpected += 1,
        }
    }
    (hist, unexpected)
}

/// Produces `rate` events/s for `secs` seconds; returns events produced and alerts expected.
fn produce(brokers: &str, topic: &str, rate: f64, secs: f64, run: u32, sent: &Sent) -> (u64, u64) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        // librdkafka's default linger, as a tracking pipeline's producer would run.
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let total = (rate * secs) as u64;
    let start = Instant::now();
    let mut expected = 0;
    for k in 0..total {
        let due = start + Duration::from_secs_f64(k as f64 / rate);
        // Sleep only when a millisecond ahead: at most a thousand wake-ups a second.
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            if wait >= Duration::from_millis(1) {
                std::thread::sleep(wait);
            }
        }
        let (lead, step) = lead_step(k, rate);
        let lead_id = format!("lat-{run}-{lead}");
        let id = format!("e-{run}-{k}");
        let body = event(&id, &lead_id, step);
        let record = BaseRecord::to(topic).key(&lead_id).payload(&body);
        let recorded = step == 3 && start.elapsed() >= WARMUP;
        if recorded {
            sent.lock().unwrap().insert(id, Instant::now());
            expected += 1;
        }
        producer.send(record).map_err(|(e, _)| e).expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    (total, expected)
}

/// Which lead the `k`-th event belongs to and which of its events it is: waves of 200 ms of
/// events, each wave one step of as many leads, so a lead's events are 200 ms apart.
fn lead_step(k: u64, rate: f64) -> (u64, u64) {
    let wave = ((rate * 0.2) as u64).max(1);
    let (w, i) = (k / wave, k % wave);
    ((w / PER_LEAD) * wave + i, w % PER_LEAD)
}

/// The JSON event of a lead's `step`-th event, dated now.
fn event(id: &str, lead: &str, step: u64) -> Vec<u8> {
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let v = match step {
        0 => serde_json::json!({"event_id": id, "type": "form_conversion", "lead_id": lead,
            "ts": ts, "form_id": "pricing-quote", "offer_stage": "bofu",
            "fields": {"job_title": "VP Sales", "industry": "software", "company_size": 200}}),
        1 | 3 => serde_json::json!({"event_id": id, "type": "page_view", "lead_id": lead,
            "ts": ts, "url": "https://example.com/pricing"}),
        2 => serde_json::json!({"event_id": id, "type": "page_view", "lead_id": lead,
            "ts": ts, "url": "https://example.com/demo"}),
        _ => serde_json::json!({"event_id": id, "type": "page_view", "lead_id": lead,
            "ts": ts, "url": "https://example.com/blog/post"}),
    };
    serde_json::to_vec(&v).expect("JSON")
}

fn report(rate: f64, produced: u64, expected: u64, h: &Histogram<u64>, missing: usize, odd: u64) {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "rate {rate:.0} events/s: {produced} events, {} alerts measured of {expected} expected \
         ({missing} not received, {odd} unexpected); produce -> alert received: \
         p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        h.len(),
        ms(0.5),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0
    );
}
