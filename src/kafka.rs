//! Kafka plumbing shared by the service and the CLI tools: client settings, topic creation,
//! producing a generated stream, and watching the `sales_ready` topic.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use metrics::counter;
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
/// replication factor and the given topic settings; existing ones are left alone.
pub async fn ensure_topics(
    brokers: &str,
    passthrough: &BTreeMap<String, String>,
    topics: &[(String, i32)],
    settings: &[(&str, &str)],
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(brokers, passthrough)
        .create()
        .context("cannot create Kafka admin client")?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, parts)| {
            settings.iter().fold(
                NewTopic::new(name, *parts, TopicReplication::Fixed(-1)),
                |t, (k, v)| t.set(k, v),
            )
        })
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

/// Delivery reports of a producer: the number of failed deliveries (logged and counted per
/// topic) and, when asked for ([`DeliveryTracker::with_ends`]), the end offset (last offset + 1)
/// of every partition written. Messages purged by an abort or a rewind of our own are not
/// failures.
#[derive(Default)]
pub struct DeliveryTracker {
    /// Partition → end offset; `None`: not tracked (the service's producer, which writes to
    /// several topics and needs no ends).
    ends: Option<Mutex<BTreeMap<i32, i64>>>,
    failures: AtomicU64,
    fatal: std::sync::OnceLock<String>,
    /// The epoch new messages are stamped with ([`DeliveryTracker::next_epoch`]).
    epoch: AtomicUsize,
    /// Messages not yet settled (delivered, failed or purged), by epoch parity.
    pending: [AtomicU64; 2],
}

impl DeliveryTracker {
    /// A tracker that also records end offsets (for a producer writing one topic).
    pub fn with_ends() -> Self {
        DeliveryTracker {
            ends: Some(Mutex::new(BTreeMap::new())),
            ..Self::default()
        }
    }

    /// Starts a new delivery epoch and returns the one that ended: a checkpoint waits for the
    /// messages of that epoch only ([`DeliveryTracker::unsettled`]), while messages sent after
    /// it carry the new one. At most two epochs may be unsettled at once.
    pub fn next_epoch(&self) -> usize {
        self.epoch.fetch_add(1, Ordering::AcqRel)
    }

    /// Messages of `epoch` not yet settled (delivered, failed or purged).
    pub fn unsettled(&self, epoch: usize) -> u64 {
        self.pending[epoch & 1].load(Ordering::Acquire)
    }

    /// Stamps a message about to be enqueued with the current epoch.
    fn stamp(&self) -> usize {
        let epoch = self.epoch.load(Ordering::Acquire);
        self.pending[epoch & 1].fetch_add(1, Ordering::AcqRel);
        epoch
    }

    fn settle(&self, epoch: usize) {
        self.pending[epoch & 1].fetch_sub(1, Ordering::AcqRel);
    }

    /// The producer's fatal error, if librdkafka reported one: it can produce nothing more.
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.get().map(String::as_str)
    }

    /// Failed deliveries so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Acquire)
    }

    /// Forgets failures (after the producer's pending messages were purged).
    pub fn reset_failures(&self) {
        self.failures.store(0, Ordering::Release);
    }

    /// Counts a message that could not even be enqueued like a failed delivery.
    pub fn record_refused(&self, topic: &str, e: &KafkaError) {
        self.failures.fetch_add(1, Ordering::AcqRel);
        counter!(crate::service::metrics::PRODUCE_ERRORS_TOTAL.name, "topic" => topic.to_string())
            .increment(1);
        tracing::error!(topic, "cannot enqueue output: {e}");
    }

    /// End offsets per partition (empty when not tracked).
    pub fn ends(&self) -> BTreeMap<i32, i64> {
        self.ends
            .as_ref()
            .map(|e| e.lock().unwrap().clone())
            .unwrap_or_default()
    }
}

impl ClientContext for DeliveryTracker {
    fn error(&self, error: KafkaError, reason: &str) {
        counter!(crate::service::metrics::CLIENT_ERRORS_TOTAL.name, "client" => "producer")
            .increment(1);
        tracing::error!("producer: {error}: {reason}");
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            let _ = self.fatal.set(format!("producer: {error}: {reason}"));
        }
    }
}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, epoch: usize) {
        self.settle(epoch);
        match result {
            Ok(m) => {
                if let Some(ends) = &self.ends {
                    let mut ends = ends.lock().unwrap();
                    let end = ends.entry(m.partition()).or_insert(0);
                    *end = (*end).max(m.offset() + 1);
                }
            }
            Err((e, _))
                if matches!(
                    e.rdkafka_error_code(),
                    Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)
                ) => {}
            Err((e, msg)) => {
                self.failures.fetch_add(1, Ordering::AcqRel);
                counter!(crate::service::metrics::PRODUCE_ERRORS_TOTAL.name, "topic" => msg.topic().to_string())
                    .increment(1);
                tracing::error!(topic = msg.topic(), "output could not be delivered: {e}");
            }
        }
    }
}

/// A producer whose deliveries are tracked.
pub type TrackedProducer = ThreadedProducer<DeliveryTracker>;

/// Enqueues a record stamped with the producer's delivery epoch, waiting while the producer's
/// queue is full; any other refusal is counted as a failed delivery and returned.
pub fn send<K, P>(
    producer: &TrackedProducer,
    record: BaseRecord<'_, K, P>,
) -> Result<(), KafkaError>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    let tracker = producer.context();
    let epoch = tracker.stamp();
    let mut record = BaseRecord {
        topic: record.topic,
        partition: record.partition,
        payload: record.payload,
        key: record.key,
        timestamp: record.timestamp,
        headers: record.headers,
        delivery_opaque: epoch,
    };
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(2));
            }
            Err((e, r)) => {
                tracker.settle(epoch);
                tracker.record_refused(r.topic, &e);
                return Err(e);
            }
        }
    }
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
    let producer: TrackedProducer = config
        .set("linger.ms", "5")
        .create_with_context(DeliveryTracker::with_ends())
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
        send(&producer, BaseRecord::to(topic).key(&key).payload(&payload))
            .with_context(|| format!("cannot produce to {topic}"))?;
        sent += 1;
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            progress(sent);
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .with_context(|| format!("not all messages to {topic} were acknowledged"))?;
    let failed = producer.context().failures();
    if failed > 0 {
        bail!("{failed} message(s) to {topic} could not be delivered");
    }
    let ends = producer.context().ends();
    Ok((sent, ends))
}

/// Calls `each(key, value)` for every header of a consumed message, in order, with the bytes
/// librdkafka holds (no copy), through its C API: rust-rdkafka's `Headers::get` panics on a
/// header key that is not UTF-8. Keys end at a NUL byte (librdkafka keeps them as C strings).
pub fn for_each_header<'m>(
    msg: &'m rdkafka::message::BorrowedMessage<'_>,
    mut each: impl FnMut(&'m [u8], Option<&'m [u8]>),
) {
    use rdkafka::bindings as rd;
    let native = msg.ptr();
    let mut hdrs: *mut rd::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: `native` is the live message behind `msg`; librdkafka owns the headers it
    // returns, which live as long as the message (hence the `'m` slices); every pointer read
    // below is checked for null and its size comes from librdkafka.
    unsafe {
        if rd::rd_kafka_message_headers(native, &mut hdrs)
            != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
            || hdrs.is_null()
        {
            return;
        }
        for idx in 0..rd::rd_kafka_header_cnt(hdrs) {
            let (mut name, mut value, mut size) = (std::ptr::null(), std::ptr::null(), 0usize);
            if rd::rd_kafka_header_get_all(hdrs, idx, &mut name, &mut value, &mut size)
                != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                || name.is_null()
            {
                continue;
            }
            let key = std::ffi::CStr::from_ptr(name).to_bytes();
            let value =
                (!value.is_null()).then(|| std::slice::from_raw_parts(value as *const u8, size));
            each(key, value);
        }
    }
}

/// A message's headers as owned bytes, key and value, in order ([`for_each_header`]).
pub fn raw_headers(msg: &rdkafka::message::BorrowedMessage<'_>) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    for_each_header(msg, |k, v| out.push((k.to_vec(), v.map(<[u8]>::to_vec))));
    out
}

/// Publishes a `forget` command for `lead_id` to an input topic (keyed by the lead, so it
/// reaches the owning partition after the lead's earlier events) and waits for the broker's
/// acknowledgement. Returns (partition, offset).
pub async fn send_forget(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    lead_id: &str,
) -> Result<(i32, i64)> {
    use crate::erasure::{COMMAND_HEADER, FORGET};
    use rdkafka::message::{Header, OwnedHeaders};
    let headers = OwnedHeaders::new().insert(Header {
        key: COMMAND_HEADER,
        value: Some(FORGET),
    });
    let record = rdkafka::producer::FutureRecord::<str, [u8]>::to(topic)
        .key(lead_id)
        .payload(&[])
        .headers(headers);
    let delivery = producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(e, _)| anyhow::anyhow!("cannot publish the forget command to {topic}: {e}"))?;
    Ok((delivery.partition, delivery.offset))
}

/// An acknowledged, idempotent producer for control messages (`forget`).
pub fn command_producer(
    brokers: &str,
    passthrough: &BTreeMap<String, String>,
) -> Result<rdkafka::producer::FutureProducer> {
    client_config(brokers, passthrough)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .context("cannot create a Kafka producer")
}

/// Each topic's `max.message.bytes` (the largest record batch the broker accepts for it), read
/// with DescribeConfigs; topics the broker does not describe are left out.
pub async fn max_message_bytes(
    brokers: &str,
    passthrough: &BTreeMap<String, String>,
    topics: &[&str],
) -> Result<BTreeMap<String, usize>> {
    use rdkafka::admin::{ConfigResourceResult, ResourceSpecifier};
    let admin: AdminClient<DefaultClientContext> = client_config(brokers, passthrough)
        .create()
        .context("cannot create a Kafka admin client")?;
    let specs: Vec<ResourceSpecifier<'_>> =
        topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(15)));
    let results: Vec<ConfigResourceResult> = admin
        .describe_configs(&specs, &opts)
        .await
        .context("cannot describe the topics' configuration")?;
    let mut out = BTreeMap::new();
    for (topic, r) in topics.iter().zip(results) {
        let value = r
            .ok()
            .and_then(|c| c.get("max.message.bytes").and_then(|e| e.value.clone()));
        if let Some(n) = value.and_then(|v| v.parse().ok()) {
            out.insert(topic.to_string(), n);
        }
    }
    Ok(out)
}
