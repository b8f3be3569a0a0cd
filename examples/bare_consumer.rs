//! Baseline for scripts/bench-service.sh: a bare rdkafka consumer that reads N messages of a
//! topic (new group, from the beginning) and does nothing with them.
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
    let mut first: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen < n && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            bytes += m.payload().map_or(0, <[u8]>::len);
            seen += 1;
        }
    }
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    println!(
        "bare consumer: {seen} messages ({:.1} MB) in {secs:.2}s = {:.0} msg/s",
        bytes as f64 / 1e6,
        seen as f64 / secs.max(1e-9)
    );
}
