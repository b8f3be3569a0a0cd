//! The checks an input message passes before it is scored (SPEC §2 "Limits"): size and
//! header count, decoding and validation, and the event time against the message's own
//! timestamp. The pipeline and a rebuild from input share them, so both score the same events.

use rdkafka::message::{BorrowedMessage, Message};

use crate::config::Config;
use crate::event::{check_envelope, check_time, decode, Event, InvalidEvent};
use crate::kafka::raw_headers;
use crate::time::{now_micros, Micros};

/// The event in a message, or why it goes to the dead-letter topic.
pub fn screen<'m>(cfg: &Config, msg: &'m BorrowedMessage<'_>) -> Result<Event<'m>, InvalidEvent> {
    let payload = msg.payload().unwrap_or_default();
    let headers = raw_headers(msg);
    check_envelope(
        msg.key().map_or(0, <[u8]>::len),
        payload.len(),
        headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len)),
        &cfg.limits,
    )?;
    let ev = decode(payload, msg.key(), cfg.input_format, &cfg.limits)?;
    check_time(
        ev.ts,
        reference_time(msg),
        cfg.max_clock_skew.as_micros() as Micros,
        cfg.max_event_age.map(|a| a.as_micros() as Micros),
    )?;
    Ok(ev)
}

/// The wall clock an event time is judged by: the message's Kafka timestamp, which the
/// broker bounds (`log.message.timestamp.after.max.ms`, 1 h by default since Kafka 3.6) and
/// which a rebuild from input reads again unchanged; the process clock for a message
/// without one.
fn reference_time(msg: &BorrowedMessage<'_>) -> Micros {
    match msg.timestamp().to_millis() {
        Some(ms) if ms > 0 => ms.saturating_mul(1000),
        _ => now_micros(),
    }
}
