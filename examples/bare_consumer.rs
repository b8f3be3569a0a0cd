//! Baseline for scripts/bench-service.sh: a bare rdkafka consumer that reads N messages of a
//! topic (new group, from the beginning) and does nothing with them; prints its rate and the CPU
//! seconds it used from the first message on.
//!
//! `cargo run --release --example bare_consumer -- BROKERS TOPIC N`

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, topic, n] = args.as_slice() else {
        eprintln!("usage: bare_consumer BROKERS TOPIC N");
        std::process::exit(2);
    };
    let n: u64 = n.parse().expect("N is a number");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("bare-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        // As the service reads its input.
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic.as_str()]).expect("subscribe");
    let mut seen = 0u64;
    let mut bytes = 0usize;
    let mut first: Option<(Instant, f64)> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen < n && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(|| (Instant::now(), cpu_seconds()));
            bytes += m.payload().map_or(0, <[u8]>::len);
            seen += 1;
        }
    }
    let (secs, cpu) = first.map_or((0.0, 0.0), |(t, c)| {
        (t.elapsed().as_secs_f64(), cpu_seconds() - c)
    });
    println!(
        "bare consumer: {seen} messages ({:.1} MB) in {secs:.2}s = {:.0} msg/s, {cpu:.2} CPU-s",
        bytes as f64 / 1e6,
        seen as f64 / secs.max(1e-9)
    );
}

/// User + system CPU seconds of this process so far, all threads (Linux `/proc/self/stat`,
/// in clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of stat(5) are the 12th and 13th after the name.
    (ticks(11) + ticks(12)) / 100.0
}
