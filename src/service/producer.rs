//! The output producer: `sales_ready`, dead letters and changelog records, idempotent (and
//! transactional under exactly_once), with delivery failures counted so that no checkpoint
//! commits past them, and librdkafka's transactional errors sorted into retry, abort or exit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use metrics::counter;
use prost::Message as _;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};

use crate::config::{Config, Guarantee, OutputFormat};
use crate::kafka::{client_config, DeliveryTracker, TrackedProducer};
use crate::output::SalesReady;
use crate::time::{format_rfc3339, now_micros};

/// Default `transaction.timeout.ms` under exactly_once (Kafka's default is 60 s).
pub const TRANSACTION_TIMEOUT_MS: &str = "20000";

/// The producer type of the service.
pub type OutputProducer = TrackedProducer;

/// The output producer: idempotent, acks from all replicas. Under exactly_once it is
/// transactional and its first transaction is open on return.
pub fn make_producer(cfg: &Config) -> Result<Arc<OutputProducer>> {
    let mut config = client_config(&cfg.brokers, &cfg.kafka);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5");
    if !cfg.kafka.contains_key("message.max.bytes") {
        // Room for a dead letter or changelog record of max_message_bytes plus framing.
        let max = (cfg.limits.max_message_bytes + 65_536).max(1_000_000);
        config.set("message.max.bytes", max.to_string());
    }
    if cfg.guarantee == Guarantee::ExactlyOnce {
        config.set("transactional.id", transactional_id(cfg));
        if !cfg.kafka.contains_key("transaction.timeout.ms") {
            // As Kafka Streams does (10 s there): a dead owner's open transaction blocks the
            // next owner's read of committed offsets, and read_committed subscribers, this long.
            config.set("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS);
        }
    }
    let producer: OutputProducer = config
        .create_with_context(DeliveryTracker::default())
        .context("cannot create Kafka producer")?;
    // Fails fast (and says why) on wrong brokers, TLS or credentials, rather than after the
    // transactional initialisation's minute.
    producer
        .client()
        .fetch_metadata(None, Duration::from_secs(20))
        .with_context(|| {
            format!(
                "cannot reach Kafka at {} (check brokers, security.protocol, SASL credentials, TLS)",
                cfg.brokers
            )
        })?;
    if cfg.guarantee == Guarantee::ExactlyOnce {
        producer
            .init_transactions(Duration::from_secs(60))
            .context(
                "exactly_once: cannot initialise transactions (does the broker support them?)",
            )?;
        producer
            .begin_transaction()
            .context("exactly_once: cannot begin a transaction")?;
    }
    Ok(Arc::new(producer))
}

/// Stable per instance when `instance_id` is set (a restart fences its predecessor's open
/// transaction at once); otherwise unique per process, and consumer-group fencing (KIP-447)
/// protects, while the predecessor's open transaction holds back read_committed readers until
/// it times out.
fn transactional_id(cfg: &Config) -> String {
    match &cfg.instance_id {
        Some(id) => format!("{}-{id}", cfg.group_id),
        None => format!("{}-{}-{}", cfg.group_id, std::process::id(), now_micros()),
    }
}

/// What to do after a failed transactional call (librdkafka's transactional API contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnErrorClass {
    /// Call the same function again (e.g. a commit that timed out).
    Retry,
    /// Abort the transaction and rewind to the last durable checkpoint.
    Abort,
    /// Fenced or fatal: the producer is unusable; exit.
    Fatal,
}

/// Sorts a transactional error per librdkafka: fatal first, then abortable, then retriable.
pub fn classify_txn_error(e: &KafkaError) -> TxnErrorClass {
    match e {
        KafkaError::Transaction(r) if r.is_fatal() => TxnErrorClass::Fatal,
        KafkaError::Transaction(r) if r.txn_requires_abort() => TxnErrorClass::Abort,
        KafkaError::Transaction(r) if r.is_retriable() => TxnErrorClass::Retry,
        _ => match e.rdkafka_error_code() {
            Some(
                RDKafkaErrorCode::Fenced
                | RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::Fatal,
            ) => TxnErrorClass::Fatal,
            _ => TxnErrorClass::Abort,
        },
    }
}

/// Runs a transactional call, retrying it while librdkafka calls the error retriable and
/// `within` has not passed. Returns the class of the final error.
pub fn txn_call(
    what: &str,
    within: Duration,
    mut call: impl FnMut() -> KafkaResult<()>,
) -> Result<(), (TxnErrorClass, String)> {
    let deadline = Instant::now() + within;
    loop {
        match call() {
            Ok(()) => return Ok(()),
            Err(e) => {
                let class = classify_txn_error(&e);
                counter!(crate::service::metrics::TRANSACTION_ERRORS_TOTAL.name, "call" => what.to_string(), "class" => format!("{class:?}").to_lowercase()).increment(1);
                if class == TxnErrorClass::Retry && Instant::now() < deadline {
                    tracing::warn!("{what}: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
                let class = if class == TxnErrorClass::Retry {
                    // Still failing at the deadline: the outcome is unknown, and only a new
                    // producer with the same transactional.id can resolve it.
                    TxnErrorClass::Fatal
                } else {
                    class
                };
                return Err((class, format!("{what}: {e}")));
            }
        }
    }
}

/// Runs a blocking librdkafka call on a helper thread and waits at most `limit` for it.
/// `send_offsets_to_transaction` can block past its own timeout when the group coordinator
/// disappears (confluentinc/librdkafka#5456 and #5511, open in librdkafka 2.12); a call that
/// does not return is abandoned with its thread, and the caller replaces the producer.
pub fn bounded<T: Send + 'static>(
    what: &'static str,
    limit: Duration,
    call: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name(format!("bounded-{what}"))
        .spawn(move || {
            let _ = tx.send(call());
        })
        .map_err(|e| format!("{what}: cannot start a thread: {e}"))?;
    rx.recv_timeout(limit).map_err(|_| {
        counter!(crate::service::metrics::PRODUCER_STUCK_TOTAL.name, "call" => what).increment(1);
        format!("{what} did not return within {limit:?} (librdkafka#5456); abandoning the producer")
    })
}

/// Enqueues a record; one that cannot be enqueued is counted like a failed delivery, so the
/// next checkpoint refuses to commit.
pub fn send(producer: &OutputProducer, record: BaseRecord<'_, [u8], [u8]>) {
    let _ = crate::kafka::send(producer, record);
}

/// Number of outputs that could not be delivered since the producer was made or reset.
pub fn failures(producer: &OutputProducer) -> u64 {
    producer.context().failures()
}

/// Sends one `sales_ready`, keyed by lead id, in the configured format.
pub fn send_sales_ready(
    producer: &OutputProducer,
    topic: &str,
    format: OutputFormat,
    sr: &SalesReady,
    buf: &mut Vec<u8>,
    source: &str,
) {
    buf.clear();
    let content_type = match format {
        OutputFormat::Json => {
            buf.extend_from_slice(sr.to_json().as_bytes());
            "application/json"
        }
        OutputFormat::Protobuf => {
            sr.to_proto().encode(buf).expect("a Vec grows as needed");
            "application/protobuf"
        }
    };
    let time = format_rfc3339(sr.qualified_at);
    let headers = cloudevent(
        OwnedHeaders::new_with_capacity(7),
        &CloudEvent {
            id: &sr.event_id,
            source,
            kind: SALES_READY_TYPE,
            time: &time,
            subject: &sr.lead_id,
            content_type,
        },
    );
    let record = BaseRecord::to(topic)
        .key(sr.lead_id.as_bytes())
        .payload(buf.as_slice())
        .headers(headers);
    send(producer, record);
}

/// CloudEvents `type` of a `sales_ready` event.
pub const SALES_READY_TYPE: &str = "com.leadscore.sales_ready.v1";
/// CloudEvents `type` of a dead letter.
pub const DEAD_LETTER_TYPE: &str = "com.leadscore.dead_letter.v1";

/// The CloudEvents 1.0 context attributes of a record (Kafka protocol binding, binary mode).
pub struct CloudEvent<'a> {
    /// `ce_id`.
    pub id: &'a str,
    /// `ce_source`: `/leadscore/<group_id>`.
    pub source: &'a str,
    /// `ce_type`.
    pub kind: &'a str,
    /// `ce_time` (RFC 3339).
    pub time: &'a str,
    /// `ce_subject`.
    pub subject: &'a str,
    /// `content-type` of the payload.
    pub content_type: &'a str,
}

/// Adds the CloudEvents headers of `ce` to `headers`.
pub fn cloudevent(headers: OwnedHeaders, ce: &CloudEvent<'_>) -> OwnedHeaders {
    [
        ("ce_specversion", "1.0"),
        ("ce_id", ce.id),
        ("ce_source", ce.source),
        ("ce_type", ce.kind),
        ("ce_time", ce.time),
        ("ce_subject", ce.subject),
        ("content-type", ce.content_type),
    ]
    .into_iter()
    .fold(headers, |h, (key, value)| {
        h.insert(Header {
            key,
            value: Some(value),
        })
    })
}

/// Room left in a dead letter for its record framing, the `leadscore.*` and CloudEvents headers.
const DEAD_LETTER_OVERHEAD: usize = 2048;

/// Sends an invalid input message to the dead-letter topic: key, payload and headers copied
/// byte for byte (librdkafka copies the headers natively, so non-UTF-8 keys pass through), plus
/// `leadscore.error` (the reason) and `leadscore.source` (topic/partition/offset). A message
/// that would not fit in `max_message_bytes` is cut to fit and marked with
/// `leadscore.truncated` (the original payload length; `+headers` when its headers had to
/// go too): it never blocks the partition.
pub fn send_dead_letter(
    producer: &OutputProducer,
    topic: &str,
    msg: &BorrowedMessage<'_>,
    reason: &str,
    max_message_bytes: usize,
    ce_source: &str,
) {
    let source = format!("{}/{}/{}", msg.topic(), msg.partition(), msg.offset());
    let original = crate::kafka::raw_headers(msg);
    let fit = DeadLetterFit::of(
        msg,
        &original,
        reason.len() + source.len(),
        max_message_bytes,
    );
    let mut headers = match msg.headers() {
        Some(h) if fit.keep_headers => h.detach(),
        _ => OwnedHeaders::new(),
    };
    headers = headers
        .insert(Header {
            key: "leadscore.error",
            value: Some(reason),
        })
        .insert(Header {
            key: "leadscore.source",
            value: Some(&source),
        });
    // An input that is a CloudEvent already keeps its own attributes (no duplicate headers).
    let is_cloudevent = original
        .iter()
        .any(|(k, _)| k.starts_with(b"ce_") || k.eq_ignore_ascii_case(b"content-type"));
    if !is_cloudevent {
        let (id, time) = (format!("dlq:{source}"), format_rfc3339(now_micros()));
        let ce = CloudEvent {
            id: &id,
            source: ce_source,
            kind: DEAD_LETTER_TYPE,
            time: &time,
            subject: &source,
            content_type: "application/octet-stream",
        };
        headers = cloudevent(headers, &ce);
    }
    if let Some(mark) = &fit.truncated {
        headers = headers.insert(Header {
            key: "leadscore.truncated",
            value: Some(mark),
        });
    }
    let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).headers(headers);
    if let Some(k) = msg.key() {
        record = record.key(&k[..fit.key_len]);
    }
    if let Some(p) = msg.payload() {
        record = record.payload(&p[..fit.payload_len]);
    }
    send(producer, record);
}

/// How much of an invalid message its dead letter keeps to fit `max_message_bytes`.
struct DeadLetterFit {
    key_len: usize,
    payload_len: usize,
    keep_headers: bool,
    /// `leadscore.truncated`: the original payload length, `+headers`, `+key`.
    truncated: Option<String>,
}

impl DeadLetterFit {
    fn of(
        msg: &BorrowedMessage<'_>,
        headers: &[(Vec<u8>, Option<Vec<u8>>)],
        added: usize,
        max_message_bytes: usize,
    ) -> Self {
        let (key, payload) = (
            msg.key().unwrap_or_default(),
            msg.payload().unwrap_or_default(),
        );
        // A key is a lead id (≤ 256 characters when valid); a huge one is cut as well.
        let key_len = key.len().min(max_message_bytes / 4);
        let header_bytes: usize = headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
            .sum();
        let budget = max_message_bytes.saturating_sub(DEAD_LETTER_OVERHEAD + added + key_len);
        let keep_headers = header_bytes <= budget;
        let room = budget - if keep_headers { header_bytes } else { 0 };
        let cut_key = key_len < key.len();
        let truncated = (payload.len() > room || !keep_headers || cut_key).then(|| {
            let headers = if keep_headers { "" } else { "+headers" };
            let key = if cut_key { "+key" } else { "" };
            format!("{}{headers}{key}", payload.len())
        });
        DeadLetterFit {
            key_len,
            payload_len: payload.len().min(room),
            keep_headers,
            truncated,
        }
    }
}

/// Sends a changelog record: a lead's encoded state, or a tombstone (`None`), with the input
/// offsets it reflects in the offsets header, to the partition of its input partition.
pub fn send_changelog(
    producer: &OutputProducer,
    topic: &str,
    partition: i32,
    key: &[u8],
    state: Option<&[u8]>,
    offsets: &str,
) {
    let headers = OwnedHeaders::new().insert(Header {
        key: crate::service::changelog::OFFSETS_HEADER,
        value: Some(offsets),
    });
    let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
        .key(key)
        .partition(partition)
        .headers(headers);
    if let Some(bytes) = state {
        record = record.payload(bytes);
    }
    send(producer, record);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fencing_is_fatal_and_other_errors_abort() {
        let fenced = KafkaError::MessageProduction(RDKafkaErrorCode::ProducerFenced);
        assert_eq!(classify_txn_error(&fenced), TxnErrorClass::Fatal);
        let other = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert_eq!(classify_txn_error(&other), TxnErrorClass::Abort);
    }

    #[test]
    fn a_fatal_error_is_never_retried() {
        let mut calls = 0;
        let r = txn_call("test", Duration::ZERO, || {
            calls += 1;
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::Fatal))
        });
        assert_eq!(r.unwrap_err().0, TxnErrorClass::Fatal);
        assert_eq!(calls, 1);
    }

    /// librdkafka#5456 on librdkafka's mock cluster (a fault a real broker cannot be held in):
    /// with the group coordinator down, `send_offsets_to_transaction` may ignore its 2 s
    /// timeout; through [`bounded`] the caller gets an answer within the limit either way.
    #[test]
    fn a_send_offsets_call_returns_within_its_bound_when_the_coordinator_is_down() {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::mocking::{MockCluster, MockCoordinator};
        let cluster = MockCluster::new(3).unwrap();
        cluster.create_topic("out", 1, 3).unwrap();
        cluster
            .coordinator(MockCoordinator::Group("g".into()), 2)
            .unwrap();
        cluster
            .coordinator(MockCoordinator::Transaction("t".into()), 1)
            .unwrap();
        let brokers = cluster.bootstrap_servers();
        let producer: Arc<OutputProducer> = Arc::new(
            client_config(&brokers, &Default::default())
                .set("transactional.id", "t")
                .create_with_context(DeliveryTracker::default())
                .unwrap(),
        );
        producer.init_transactions(Duration::from_secs(10)).unwrap();
        producer.begin_transaction().unwrap();
        let consumer: BaseConsumer = client_config(&brokers, &Default::default())
            .set("group.id", "g")
            .create()
            .unwrap();
        let meta = consumer.group_metadata().unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset("out", 0, rdkafka::Offset::Offset(1))
            .unwrap();
        cluster.broker_down(2).unwrap();
        let started = Instant::now();
        let p = producer.clone();
        let answer = bounded(
            "send_offsets_to_transaction",
            Duration::from_secs(8),
            move || p.send_offsets_to_transaction(&tpl, &meta, Duration::from_secs(2)),
        );
        let took = started.elapsed();
        assert!(took < Duration::from_secs(9), "took {took:?}");
        // Either librdkafka honoured its timeout (an error) or the call was abandoned.
        assert!(!matches!(answer, Ok(Ok(()))), "{answer:?}");
        eprintln!("after {took:?}: {answer:?}");
    }
}
