//! The checks an input message passes before it is scored (SPEC §2 "Limits"): size and
//! header count, decoding and validation, and the event time against the message's own
//! timestamp; and what it holds, an event or a `forget` command (SPEC §7). The pipeline and a
//! rebuild from input share them, so both see the same inputs.

use rdkafka::message::{BorrowedMessage, Message};

use crate::config::Config;
use crate::erasure::{COMMAND_HEADER, FORGET};
use crate::event::{
    check_envelope, check_time, cloudevent_data, decode, Event, InvalidEvent, PayloadFormat,
    CLOUDEVENT_JSON,
};
use crate::kafka::for_each_header;
use crate::time::{now_micros, Micros};
use crate::verdict::{self, Verdict};

/// What an input message holds.
#[derive(Debug)]
pub enum Input<'m> {
    /// An event to score.
    Event(Event<'m>),
    /// A sales verdict (from the outcomes topic).
    Verdict(Verdict),
    /// Forget the lead named by the message key, as of the message's time.
    Forget {
        /// The lead.
        lead_id: &'m str,
        /// The time of the request.
        at: Micros,
    },
}

impl Input<'_> {
    /// The lead the input is about.
    pub fn lead_id(&self) -> &str {
        match self {
            Input::Event(ev) => &ev.lead_id,
            Input::Verdict(v) => &v.lead_id,
            Input::Forget { lead_id, .. } => lead_id,
        }
    }
}

/// The event or command in a message, or why it goes to the dead-letter topic.
pub fn screen<'m>(cfg: &Config, msg: &'m BorrowedMessage<'_>) -> Result<Input<'m>, InvalidEvent> {
    let payload = msg.payload().unwrap_or_default();
    let seen = SeenHeaders::of(msg);
    check_envelope(
        msg.key().map_or(0, <[u8]>::len),
        payload.len(),
        seen.sizes.iter().copied(),
        &cfg.limits,
    )?;
    if let Some(value) = seen.command {
        return command(msg, value);
    }
    if cfg.is_outcomes_topic(msg.topic()) {
        return verdict_of(cfg, msg, payload, seen.structured_cloudevent);
    }
    if seen.structured_cloudevent {
        let data = cloudevent_data(payload)?;
        let ev = decode(&data, msg.key(), PayloadFormat::Json, &cfg.limits)?.into_owned();
        return timely(cfg, msg, ev);
    }
    let ev = decode(payload, msg.key(), cfg.input_format, &cfg.limits)?;
    timely(cfg, msg, ev)
}

/// The event, unless it is dated outside the window around its message's time.
fn timely<'m>(
    cfg: &Config,
    msg: &BorrowedMessage<'_>,
    ev: Event<'m>,
) -> Result<Input<'m>, InvalidEvent> {
    in_window(cfg, msg, ev.ts)?;
    Ok(Input::Event(ev))
}

/// SPEC §2: a time within the window around the message's own timestamp.
fn in_window(cfg: &Config, msg: &BorrowedMessage<'_>, ts: Micros) -> Result<(), InvalidEvent> {
    check_time(
        ts,
        reference_time(msg),
        cfg.max_clock_skew.as_micros() as Micros,
        cfg.max_event_age.map(|a| a.as_micros() as Micros),
    )
}

/// A sales verdict, under the same time window as events.
fn verdict_of<'m>(
    cfg: &Config,
    msg: &BorrowedMessage<'_>,
    payload: &[u8],
    structured_cloudevent: bool,
) -> Result<Input<'m>, InvalidEvent> {
    let v = if structured_cloudevent {
        verdict::decode(&cloudevent_data(payload)?, msg.key(), &cfg.limits)?
    } else {
        verdict::decode(payload, msg.key(), &cfg.limits)?
    };
    in_window(cfg, msg, v.ts)?;
    Ok(Input::Verdict(v))
}

/// A control message: `forget`, keyed by the lead id.
fn command<'m>(msg: &'m BorrowedMessage<'_>, name: &[u8]) -> Result<Input<'m>, InvalidEvent> {
    if name != FORGET.as_bytes() {
        return Err(InvalidEvent::BadValue {
            field: COMMAND_HEADER,
            problem: format!(
                "must be `{FORGET}`, got `{}`",
                String::from_utf8_lossy(&name[..name.len().min(64)])
            ),
        });
    }
    let lead_id =
        std::str::from_utf8(msg.key().unwrap_or_default()).map_err(|_| InvalidEvent::KeyNotUtf8)?;
    if lead_id.is_empty() || lead_id.chars().count() > 256 {
        return Err(InvalidEvent::Length {
            field: "key (the lead id of a forget command)",
            min: 1,
            max: 256,
            got: lead_id.chars().count(),
        });
    }
    Ok(Input::Forget {
        lead_id,
        at: reference_time(msg),
    })
}

/// What screening needs from a message's headers, read without copying them.
struct SeenHeaders<'m> {
    /// Key + value bytes of each header.
    sizes: smallvec::SmallVec<[usize; 8]>,
    /// The value of `leadscore.command`, when present.
    command: Option<&'m [u8]>,
    /// `content-type: application/cloudevents+json…`?
    structured_cloudevent: bool,
}

impl<'m> SeenHeaders<'m> {
    fn of(msg: &'m BorrowedMessage<'_>) -> Self {
        let mut seen = SeenHeaders {
            sizes: smallvec::SmallVec::new(),
            command: None,
            structured_cloudevent: false,
        };
        for_each_header(msg, |k, v| {
            seen.sizes.push(k.len() + v.map_or(0, <[u8]>::len));
            if k == COMMAND_HEADER.as_bytes() && seen.command.is_none() {
                seen.command = Some(v.unwrap_or_default());
            }
            if k.eq_ignore_ascii_case(b"content-type")
                && v.is_some_and(|v| v.starts_with(CLOUDEVENT_JSON.as_bytes()))
            {
                seen.structured_cloudevent = true;
            }
        });
        seen
    }
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
