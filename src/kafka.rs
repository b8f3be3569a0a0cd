//! Kafka plumbing shared by the service and the CLI tools: client settings, topic creation,
//! producing a generated stream, and watching the `sales_ready` topic.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode as Code;

/// A librdkafka client configuration for these brokers plus passthrough properties.
pub fn client_config(brokers: &str, passthrough: &BTreeMap<String, String>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in passthrough {
        c.set(k, v);
    }
    c
}

/// Creates topics that do not exist yet (`name:partitions`) with the broker's default
/// replication factor; existing ones are left alone.
pub async fn ensure_topics(
    brokers: &str,
    passthrough: &BTreeMap<String, String>,
    topics: &[(String, i32)],
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(brokers, passthrough)
        .create()
        .context("cannot create Kafka admin client")?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, parts)| NewTopic::new(name, *parts, TopicReplication::Fixed(-1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    // A request can fail as a whole while the client settles its broker connections (e.g.
    // `DestroyBroker` just after a cluster starts): retried; per-topic errors are not.
    let mut attempt = 1;
    let results = loop {
        match admin.create_topics(new.iter(), &opts).await {
            Ok(r) => break r,
            Err(e) if attempt < 3 => {
                tracing::warn!("creating topics on {brokers}: {e}; retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot create topics on {brokers}")),
        }
    };
    for r in results {
        match r {
            Ok(_) | Err((_, Code::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("cannot create topic {name}: {code}"),
        }
    }
    Ok(())
}

/// Records, from delivery reports, the end offset (last offset + 1) of every partition written
/// and the number of failed deliveries.
#[derive(Default)]
struct EndTracker {
    ends: std::sync::Mutex<BTreeMap<i32, i64>>,
    failed: std::sync::atomic::AtomicU64,
}

impl ClientContext for EndTracker {}

impl ProducerContext for EndTracker {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                let mut ends = self.ends.lock().unwrap();
                let e = ends.entry(m.partition()).or_insert(0);
                *e = (*e).max(m.offset() + 1);
            }
            Err(_) => {
                self.failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// Creates a compacted topic if it does not exist; fails if it exists with another partition
/// count than `partitions`.
pub async fn ensure_compacted_topic(
    brokers: &str,
    passthrough: &BTreeMap<String, String>,
    name: &str,
    partitions: i32,
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(brokers, passthrough)
        .create()
        .context("cannot create Kafka admin client")?;
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(-1))
        .set("cleanup.policy", "compact");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    for r in admin
        .create_topics([&topic], &opts)
        .await
        .with_context(|| format!("cannot create topic {name}"))?
    {
        match r {
            Ok(_) | Err((_, Code::TopicAlreadyExists)) => {}
            Err((n, code)) => bail!("cannot create topic {n}: {code}"),
        }
    }
    Ok(())
}

/// Produces keyed payloads in order, optionally paced to `rate` messages per second;
/// `progress` is called about every second with the number sent so far. Returns the number
/// sent and, per partition, the end offset (last written offset + 1) from delivery reports.
pub fn produce_all(
    brokers: &str,
    passthrough: &BTreeMap<String, String>,
    topic: &str,
    records: impl IntoIterator<Item = (String, Vec<u8>)>,
    rate: Option<f64>,
    mut progress: impl FnMut(u64),
) -> Result<(u64, BTreeMap<i32, i64>)> {
    let mut config = client_config(brokers, passthrough);
    if !passthrough.contains_key("enable.idempotence") {
        config.set("enable.idempotence", "true");
    }
    let producer: ThreadedProducer<EndTracker> = config
        .set("linger.ms", "5")
        .create_with_context(EndTracker::default())
        .context("cannot create Kafka producer")?;
    let started = Instant::now();
    let mut last_report = started;
    let mut sent = 0u64;
    for (key, payload) in records {
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64(sent as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let mut record = BaseRecord::to(topic).key(&key).payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => bail!("cannot produce to {topic}: {e}"),
            }
        }
        sent += 1;
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            progress(sent);
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .with_context(|| format!("not all messages to {topic} were acknowledged"))?;
    let failed = producer
        .context()
        .failed
        .load(std::sync::atomic::Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} message(s) to {topic} could not be delivered");
    }
    let ends = producer.context().ends.lock().unwrap().clone();
    Ok((sent, ends))
}
