//! Input events (SPEC §2): JSON and Protobuf decoding into one validated [`Event`] value, with a
//! precise, human-readable reason for every kind of bad input (these become dead-letter headers).

use std::borrow::Cow;
use std::fmt;

use prost::Message as _;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::proto;
use crate::time::{format_rfc3339, parse_rfc3339, Micros};

/// The four kinds of lead activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// A web page was viewed.
    PageView,
    /// A marketing email was opened.
    EmailOpen,
    /// A link in an email (or ad) was clicked.
    Click,
    /// A form was submitted; carries profile fields.
    FormConversion,
}

impl EventType {
    /// All event types, in index order.
    pub const ALL: [EventType; 4] = [
        EventType::PageView,
        EventType::EmailOpen,
        EventType::Click,
        EventType::FormConversion,
    ];

    /// Parses the wire name (`page_view`, ...).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "page_view" => Some(Self::PageView),
            "email_open" => Some(Self::EmailOpen),
            "click" => Some(Self::Click),
            "form_conversion" => Some(Self::FormConversion),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PageView => "page_view",
            Self::EmailOpen => "email_open",
            Self::Click => "click",
            Self::FormConversion => "form_conversion",
        }
    }

    /// Dense index (0..4) for per-type tables.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Funnel stage of a form's content offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfferStage {
    /// Top of funnel.
    Tofu,
    /// Middle of funnel.
    Mofu,
    /// Bottom of funnel.
    Bofu,
}

impl OfferStage {
    /// Parses `tofu` | `mofu` | `bofu`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "tofu" => Some(Self::Tofu),
            "mofu" => Some(Self::Mofu),
            "bofu" => Some(Self::Bofu),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tofu => "tofu",
            Self::Mofu => "mofu",
            Self::Bofu => "bofu",
        }
    }
}

/// A profile field value from a form: a string or a number.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    /// A string value.
    Str(Cow<'a, str>),
    /// A numeric value.
    Num(f64),
}

impl FieldValue<'_> {
    /// The value as rules read it: strings as they are, numbers in their JSON form
    /// (integral values without a fraction: `250`, others shortest round-trip: `2.5`).
    pub fn as_text(&self) -> Cow<'_, str> {
        match self {
            FieldValue::Str(s) => Cow::Borrowed(s.as_ref()),
            FieldValue::Num(n) => Cow::Owned(number_text(*n)),
        }
    }

    fn into_owned(self) -> FieldValue<'static> {
        match self {
            FieldValue::Str(s) => FieldValue::Str(Cow::Owned(s.into_owned())),
            FieldValue::Num(n) => FieldValue::Num(n),
        }
    }
}

/// Canonical text of a number as profile fields store it.
pub fn number_text(n: f64) -> String {
    match crate::numeric::exact_integer(n) {
        Some(i) => i.to_string(),
        None => format!("{n}"),
    }
}

/// A validated input event. Strings borrow from the payload where possible.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    /// Unique id of the event (1–128 chars).
    pub event_id: Cow<'a, str>,
    /// What happened.
    pub kind: EventType,
    /// The lead (1–256 chars).
    pub lead_id: Cow<'a, str>,
    /// Event time.
    pub ts: Micros,
    /// Full URL (page_view, click).
    pub url: Option<Cow<'a, str>>,
    /// Seconds on page (page_view).
    pub duration_s: Option<f64>,
    /// Email campaign (email_open, click).
    pub campaign_id: Option<Cow<'a, str>>,
    /// When the email was sent (email_open, click).
    pub sent_at: Option<Micros>,
    /// Client user agent (email_open, click).
    pub user_agent: Option<Cow<'a, str>>,
    /// Form (form_conversion).
    pub form_id: Option<Cow<'a, str>>,
    /// Funnel stage (form_conversion).
    pub offer_stage: Option<OfferStage>,
    /// Profile fields (form_conversion), sorted by field name.
    pub fields: Vec<(Cow<'a, str>, FieldValue<'a>)>,
}

impl Event<'_> {
    /// Detaches the event from the payload it was decoded from.
    pub fn into_owned(self) -> Event<'static> {
        fn own(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        Event {
            event_id: own(self.event_id),
            kind: self.kind,
            lead_id: own(self.lead_id),
            ts: self.ts,
            url: self.url.map(own),
            duration_s: self.duration_s,
            campaign_id: self.campaign_id.map(own),
            sent_at: self.sent_at,
            user_agent: self.user_agent.map(own),
            form_id: self.form_id.map(own),
            offer_stage: self.offer_stage,
            fields: self
                .fields
                .into_iter()
                .map(|(k, v)| (own(k), v.into_owned()))
                .collect(),
        }
    }

    /// The event as Protobuf (`leadscore.v1.LeadEvent`).
    pub fn to_proto(&self) -> proto::LeadEvent {
        proto::LeadEvent {
            event_id: self.event_id.to_string(),
            r#type: self.kind.as_str().to_string(),
            lead_id: self.lead_id.to_string(),
            ts: format_rfc3339(self.ts),
            url: self.url.as_ref().map(|s| s.to_string()),
            duration_s: self.duration_s,
            campaign_id: self.campaign_id.as_ref().map(|s| s.to_string()),
            sent_at: self.sent_at.map(format_rfc3339),
            user_agent: self.user_agent.as_ref().map(|s| s.to_string()),
            form_id: self.form_id.as_ref().map(|s| s.to_string()),
            offer_stage: self.offer_stage.map(|s| s.as_str().to_string()),
            fields: self
                .fields
                .iter()
                .map(|(k, v)| {
                    let kind = match v {
                        FieldValue::Str(s) => proto::field_value::Kind::StringValue(s.to_string()),
                        FieldValue::Num(n) => proto::field_value::Kind::NumberValue(*n),
                    };
                    (k.to_string(), proto::FieldValue { kind: Some(kind) })
                })
                .collect(),
        }
    }

    /// The event as one line of JSON (SPEC §2 field names).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events always serialize")
    }
}

impl Serialize for Event<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("event_id", &self.event_id)?;
        m.serialize_entry("type", self.kind.as_str())?;
        m.serialize_entry("lead_id", &self.lead_id)?;
        m.serialize_entry("ts", &format_rfc3339(self.ts))?;
        if let Some(v) = &self.url {
            m.serialize_entry("url", v)?;
        }
        if let Some(v) = self.duration_s {
            m.serialize_entry("duration_s", &v)?;
        }
        if let Some(v) = &self.campaign_id {
            m.serialize_entry("campaign_id", v)?;
        }
        if let Some(v) = self.sent_at {
            m.serialize_entry("sent_at", &format_rfc3339(v))?;
        }
        if let Some(v) = &self.user_agent {
            m.serialize_entry("user_agent", v)?;
        }
        if let Some(v) = &self.form_id {
            m.serialize_entry("form_id", v)?;
        }
        if let Some(v) = self.offer_stage {
            m.serialize_entry("offer_stage", v.as_str())?;
        }
        if !self.fields.is_empty() {
            m.serialize_entry("fields", &FieldsOut(&self.fields))?;
        }
        m.end()
    }
}

struct FieldsOut<'x, 'a>(&'x [(Cow<'a, str>, FieldValue<'a>)]);

impl Serialize for FieldsOut<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            match v {
                FieldValue::Str(x) => m.serialize_entry(k, x)?,
                FieldValue::Num(n) => match crate::numeric::exact_integer(*n) {
                    Some(i) => m.serialize_entry(k, &i)?,
                    None => m.serialize_entry(k, n)?,
                },
            }
        }
        m.end()
    }
}

/// Why an input message is not a valid event. `Display` is the human-readable reason that goes
/// into the `leadscore.error` dead-letter header and replay's stderr; [`InvalidEvent::code`] is
/// the short label used in metrics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidEvent {
    /// The payload is not JSON (or not one JSON object).
    #[error("invalid JSON: {0}")]
    BadJson(String),
    /// The payload is not a valid Protobuf `LeadEvent`.
    #[error("invalid Protobuf leadscore.v1.LeadEvent: {0}")]
    BadProtobuf(String),
    /// A required field is absent.
    #[error("missing required field `{0}`")]
    Missing(&'static str),
    /// A field is required for this event type.
    #[error("missing field `{field}`, required for {kind} events")]
    MissingForType {
        /// The field.
        field: &'static str,
        /// The event type.
        kind: EventType,
    },
    /// A field has the wrong JSON type.
    #[error("field `{field}` must be {expected}, got {got}")]
    WrongType {
        /// The field (dotted for `fields.x`).
        field: String,
        /// What it must be.
        expected: &'static str,
        /// What it was.
        got: &'static str,
    },
    /// `type` is not one of the four event types.
    #[error("unknown event type `{0}` (expected page_view, email_open, click or form_conversion)")]
    UnknownType(String),
    /// A string is too short or too long.
    #[error("field `{field}` must be {min}–{max} characters, got {got}")]
    Length {
        /// The field.
        field: &'static str,
        /// Minimum length.
        min: usize,
        /// Maximum length.
        max: usize,
        /// Actual length.
        got: usize,
    },
    /// A timestamp does not parse.
    #[error("field `{field}` is not an RFC 3339 timestamp with offset (e.g. 2026-11-28T10:00:00Z): `{value}`")]
    BadTime {
        /// The field.
        field: &'static str,
        /// The offending value (truncated).
        value: String,
    },
    /// A value is out of its allowed range or set.
    #[error("field `{field}` {problem}")]
    BadValue {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The Kafka message key differs from `lead_id`.
    #[error("message key `{key}` does not match lead_id `{lead_id}`")]
    KeyMismatch {
        /// The key (truncated).
        key: String,
        /// The lead id (truncated).
        lead_id: String,
    },
    /// The Kafka message key is not UTF-8.
    #[error("message key is not valid UTF-8")]
    KeyNotUtf8,
    /// The message, or a part of it, is over one of the configured [`Limits`].
    #[error("{what} is {got}, over {limit} {max}")]
    OverLimit {
        /// What was measured (e.g. "the message (key, payload and headers) in bytes").
        what: String,
        /// The configuration key of the limit.
        limit: &'static str,
        /// The limit.
        max: u64,
        /// The measurement.
        got: u64,
    },
    /// The event time is outside the window the service accepts.
    #[error("field `ts` {0}")]
    Untimely(String),
}

impl InvalidEvent {
    /// Short, stable label for metrics (`reason` label).
    pub fn code(&self) -> &'static str {
        match self {
            InvalidEvent::BadJson(_) => "bad_json",
            InvalidEvent::BadProtobuf(_) => "bad_protobuf",
            InvalidEvent::Missing(_) | InvalidEvent::MissingForType { .. } => "missing_field",
            InvalidEvent::WrongType { .. } => "wrong_type",
            InvalidEvent::UnknownType(_) => "unknown_type",
            InvalidEvent::Length { .. } => "bad_length",
            InvalidEvent::BadTime { .. } => "bad_timestamp",
            InvalidEvent::BadValue { .. } => "bad_value",
            InvalidEvent::KeyMismatch { .. } | InvalidEvent::KeyNotUtf8 => "key_mismatch",
            InvalidEvent::OverLimit { .. } => "over_limit",
            InvalidEvent::Untimely(_) => "untimely",
        }
    }
}

/// Truncates user input quoted in an error message.
pub(crate) fn preview(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        s.to_string()
    } else {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}

/// Bounds on one input message (SPEC §2 "Limits"); [`Limits::default`] holds the defaults of
/// the configuration keys of the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message: key, payload and headers, in bytes.
    pub max_message_bytes: usize,
    /// Most headers on one message.
    pub max_headers: usize,
    /// Longest string field in characters (url, user_agent, campaign_id, form_id, profile
    /// field names and values; event_id and lead_id have their own fixed limits).
    pub max_string_chars: usize,
    /// Most profile fields on one form_conversion.
    pub max_profile_fields: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 1_000_000,
            max_headers: 64,
            max_string_chars: 2048,
            max_profile_fields: 100,
        }
    }
}

/// Event times the engine accepts at all, whatever the wall clock (SPEC §2): from
/// 2000-01-01T00:00:00Z to before 2100-01-01T00:00:00Z. Deterministic, so replay agrees.
pub const PLAUSIBLE_TIME: std::ops::Range<Micros> = 946_684_800_000_000..4_102_444_800_000_000;

/// The wall-clock window (SPEC §2): an event dated more than `max_skew` after `now`, or more
/// than `max_age` (when set) before it, is refused. Only the service applies it: replay has
/// no wall clock.
pub fn check_time(
    ts: Micros,
    now: Micros,
    max_skew: Micros,
    max_age: Option<Micros>,
) -> Result<(), InvalidEvent> {
    let hours = |us: Micros| us as f64 / 3.6e9;
    if ts > now.saturating_add(max_skew) {
        return Err(InvalidEvent::Untimely(format!(
            "is {:.1}h ahead of the wall clock (max_clock_skew {:.1}h)",
            hours(ts - now),
            hours(max_skew)
        )));
    }
    match max_age {
        Some(age) if ts < now.saturating_sub(age) => Err(InvalidEvent::Untimely(format!(
            "is {:.1}h behind the wall clock (max_event_age {:.1}h)",
            hours(now - ts),
            hours(age)
        ))),
        _ => Ok(()),
    }
}

/// `content-type` of a CloudEvent in structured mode (Kafka protocol binding).
pub const CLOUDEVENT_JSON: &str = "application/cloudevents+json";

/// The event inside a structured-mode CloudEvent: the envelope's `data`, which must be a JSON
/// object (the event, as in the table of SPEC §2). Binary-mode CloudEvents need nothing: their
/// payload is the event.
pub fn cloudevent_data(payload: &[u8]) -> Result<Vec<u8>, InvalidEvent> {
    let envelope: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| InvalidEvent::BadJson(format!("CloudEvent envelope: {e}")))?;
    if envelope.get("specversion").and_then(|v| v.as_str()) != Some("1.0") {
        return Err(InvalidEvent::BadValue {
            field: "specversion",
            problem: "must be \"1.0\" in a structured CloudEvent".into(),
        });
    }
    match envelope.get("data") {
        Some(data @ serde_json::Value::Object(_)) => Ok(data.to_string().into_bytes()),
        _ => Err(InvalidEvent::WrongType {
            field: "data".into(),
            expected: "the event as a JSON object (data_base64 is not read)",
            got: envelope.get("data").map_or("nothing", json_kind),
        }),
    }
}

/// Checks the size and header count of a message before it is decoded.
pub fn check_envelope(
    key: usize,
    payload: usize,
    headers: impl ExactSizeIterator<Item = usize>,
    limits: &Limits,
) -> Result<(), InvalidEvent> {
    let count = headers.len();
    if count > limits.max_headers {
        return Err(InvalidEvent::OverLimit {
            what: "the number of headers".into(),
            limit: "max_headers",
            max: limits.max_headers as u64,
            got: count as u64,
        });
    }
    let bytes = key + payload + headers.sum::<usize>();
    if bytes > limits.max_message_bytes {
        return Err(InvalidEvent::OverLimit {
            what: "the message (key, payload and headers) in bytes".into(),
            limit: "max_message_bytes",
            max: limits.max_message_bytes as u64,
            got: bytes as u64,
        });
    }
    Ok(())
}

/// Payload encoding of input messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// JSON if the payload starts with `{` or `[` (after whitespace), else Protobuf. Unambiguous:
    /// a `LeadEvent` can never start with those bytes (deprecated group wire type). Text that is
    /// not Protobuf either is reported as bad JSON.
    #[default]
    Auto,
    /// Always JSON.
    Json,
    /// Always Protobuf.
    Protobuf,
}

/// Decodes and validates one payload; `key` is the Kafka message key when there is one.
pub fn decode<'a>(
    payload: &'a [u8],
    key: Option<&[u8]>,
    format: PayloadFormat,
    limits: &Limits,
) -> Result<Event<'a>, InvalidEvent> {
    let ev = match format {
        PayloadFormat::Json => decode_json_with(payload, limits)?,
        PayloadFormat::Protobuf => decode_protobuf_with(payload, limits)?,
        PayloadFormat::Auto => {
            match payload.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'{') | Some(b'[') | None => decode_json_with(payload, limits)?,
                Some(_) => match decode_protobuf_with(payload, limits) {
                    Ok(ev) => ev,
                    // Not Protobuf either: text is far more likely meant as JSON.
                    Err(InvalidEvent::BadProtobuf(pb)) => match std::str::from_utf8(payload) {
                        Ok(text)
                            if !text
                                .chars()
                                .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') =>
                        {
                            return Err(explain_json_error(payload, None))
                        }
                        _ => return Err(InvalidEvent::BadProtobuf(pb)),
                    },
                    Err(other) => return Err(other),
                },
            }
        }
    };
    check_key(&ev, key)?;
    Ok(ev)
}

/// Checks SPEC §2: the lead id must equal the message key when the key is set.
pub fn check_key(ev: &Event<'_>, key: Option<&[u8]>) -> Result<(), InvalidEvent> {
    check_key_is(&ev.lead_id, key)
}

/// The message key, when set, must be UTF-8 and equal to `lead_id` (events and verdicts).
pub fn check_key_is(lead_id: &str, key: Option<&[u8]>) -> Result<(), InvalidEvent> {
    match key {
        None => Ok(()),
        Some(k) => {
            let k = std::str::from_utf8(k).map_err(|_| InvalidEvent::KeyNotUtf8)?;
            if k == lead_id {
                Ok(())
            } else {
                Err(InvalidEvent::KeyMismatch {
                    key: preview(k),
                    lead_id: preview(lead_id),
                })
            }
        }
    }
}

/// Decoded but not yet validated fields, common to both encodings: JSON deserializes straight
/// into it (borrowing from the payload), Protobuf is converted into it.
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow, default)]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    lead_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    ts: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    url: Option<Cow<'a, str>>,
    #[serde(default)]
    duration_s: Option<f64>,
    #[serde(borrow, default)]
    campaign_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sent_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    form_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    offer_stage: Option<Cow<'a, str>>,
    /// `null` or absent: no fields.
    #[serde(borrow, default, deserialize_with = "optional_fields")]
    fields: Vec<(Cow<'a, str>, FieldValue<'a>)>,
}

fn optional_fields<'de: 'a, 'a, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<(Cow<'a, str>, FieldValue<'a>)>, D::Error> {
    Ok(Option::<RawFields<'a>>::deserialize(d)?
        .map(|f| f.0)
        .unwrap_or_default())
}

struct RawFields<'a>(Vec<(Cow<'a, str>, FieldValue<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for RawFields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawFields<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of string or number values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<CowStr<'a>>()? {
                    let v = map.next_value::<RawFieldValue<'a>>()?;
                    out.push((k.0, v.0));
                }
                Ok(RawFields(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A string that borrows from the input when it has no escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct W<'a>(#[serde(borrow)] Cow<'a, str>);
        W::deserialize(d).map(|w| CowStr(w.0))
    }
}

struct RawFieldValue<'a>(FieldValue<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for RawFieldValue<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawFieldValue<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RawFieldValue(FieldValue::Str(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawFieldValue(FieldValue::Str(Cow::Owned(v.to_string()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(RawFieldValue(FieldValue::Str(Cow::Owned(v))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RawFieldValue(FieldValue::Num(v as f64)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RawFieldValue(FieldValue::Num(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(RawFieldValue(FieldValue::Num(v)))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Decodes and validates a JSON payload under the default [`Limits`].
pub fn decode_json(payload: &[u8]) -> Result<Event<'_>, InvalidEvent> {
    decode_json_with(payload, &Limits::default())
}

/// Decodes and validates a JSON payload.
pub fn decode_json_with<'a>(payload: &'a [u8], limits: &Limits) -> Result<Event<'a>, InvalidEvent> {
    match serde_json::from_slice::<Fields<'_>>(payload) {
        Ok(fields) => validate(fields, limits),
        Err(e) => Err(explain_json_error(payload, Some(e))),
    }
}

/// The typed parse failed: find the precise reason on a generic parse of the same payload.
fn explain_json_error(payload: &[u8], err: Option<serde_json::Error>) -> InvalidEvent {
    let value: serde_json::Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => return InvalidEvent::BadJson(e.to_string()),
    };
    let obj = match value.as_object() {
        Some(o) => o,
        None => {
            return InvalidEvent::BadJson(format!(
                "payload must be one JSON object, got {}",
                json_kind(&value)
            ))
        }
    };
    const STRINGS: [&str; 10] = [
        "event_id",
        "type",
        "lead_id",
        "ts",
        "url",
        "campaign_id",
        "sent_at",
        "user_agent",
        "form_id",
        "offer_stage",
    ];
    for (name, v) in obj {
        let name = name.as_str();
        if STRINGS.contains(&name) && !(v.is_string() || v.is_null()) {
            return InvalidEvent::WrongType {
                field: name.to_string(),
                expected: "a string",
                got: json_kind(v),
            };
        }
        if name == "duration_s" && !(v.is_number() || v.is_null()) {
            return InvalidEvent::WrongType {
                field: name.to_string(),
                expected: "a number",
                got: json_kind(v),
            };
        }
        if name == "fields" && !v.is_null() {
            let Some(f) = v.as_object() else {
                return InvalidEvent::WrongType {
                    field: "fields".to_string(),
                    expected: "an object of string or number values",
                    got: json_kind(v),
                };
            };
            for (k, fv) in f {
                if !(fv.is_string() || fv.is_number()) {
                    return InvalidEvent::WrongType {
                        field: format!("fields.{}", preview(k)),
                        expected: "a string or a number",
                        got: json_kind(fv),
                    };
                }
            }
        }
    }
    match err {
        Some(e) => InvalidEvent::BadJson(e.to_string()),
        None => InvalidEvent::BadJson("payload must be one JSON object".into()),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Decodes and validates a Protobuf `leadscore.v1.LeadEvent` payload under the default
/// [`Limits`].
pub fn decode_protobuf(payload: &[u8]) -> Result<Event<'static>, InvalidEvent> {
    decode_protobuf_with(payload, &Limits::default())
}

/// Decodes and validates a Protobuf `leadscore.v1.LeadEvent` payload.
pub fn decode_protobuf_with(
    payload: &[u8],
    limits: &Limits,
) -> Result<Event<'static>, InvalidEvent> {
    let p =
        proto::LeadEvent::decode(payload).map_err(|e| InvalidEvent::BadProtobuf(e.to_string()))?;
    let nonempty = |s: String| {
        if s.is_empty() {
            None
        } else {
            Some(Cow::Owned(s))
        }
    };
    let mut fields = Vec::with_capacity(p.fields.len());
    for (k, v) in p.fields {
        let value = match v.kind {
            Some(proto::field_value::Kind::StringValue(s)) => FieldValue::Str(Cow::Owned(s)),
            Some(proto::field_value::Kind::NumberValue(n)) => FieldValue::Num(n),
            None => {
                return Err(InvalidEvent::WrongType {
                    field: format!("fields.{}", preview(&k)),
                    expected: "a string or a number",
                    got: "an empty value",
                })
            }
        };
        fields.push((Cow::Owned(k), value));
    }
    validate(
        Fields {
            event_id: nonempty(p.event_id),
            kind: nonempty(p.r#type),
            lead_id: nonempty(p.lead_id),
            ts: nonempty(p.ts),
            url: p.url.map(Cow::Owned),
            duration_s: p.duration_s,
            campaign_id: p.campaign_id.map(Cow::Owned),
            sent_at: p.sent_at.map(Cow::Owned),
            user_agent: p.user_agent.map(Cow::Owned),
            form_id: p.form_id.map(Cow::Owned),
            offer_stage: p.offer_stage.map(Cow::Owned),
            fields,
        },
        limits,
    )
}

pub(crate) fn check_len(field: &'static str, s: &str, max: usize) -> Result<(), InvalidEvent> {
    let n = s.chars().count();
    if n == 0 || n > max {
        return Err(InvalidEvent::Length {
            field,
            min: 1,
            max,
            got: n,
        });
    }
    Ok(())
}

pub(crate) fn time_field(field: &'static str, s: &str) -> Result<Micros, InvalidEvent> {
    let t = parse_rfc3339(s).ok_or_else(|| InvalidEvent::BadTime {
        field,
        value: preview(s),
    })?;
    if !PLAUSIBLE_TIME.contains(&t) {
        return Err(InvalidEvent::BadValue {
            field,
            problem: format!(
                "must be from 2000-01-01 to 2099-12-31, got `{}`",
                preview(s)
            ),
        });
    }
    Ok(t)
}

/// Every optional string and profile field within [`Limits`].
fn check_sizes(f: &Fields<'_>, limits: &Limits) -> Result<(), InvalidEvent> {
    let max = limits.max_string_chars;
    let over = |what: String, got: usize| InvalidEvent::OverLimit {
        what,
        limit: "max_string_chars",
        max: max as u64,
        got: got as u64,
    };
    let strings = [
        ("url", &f.url),
        ("user_agent", &f.user_agent),
        ("campaign_id", &f.campaign_id),
        ("form_id", &f.form_id),
    ];
    for (name, value) in strings {
        let n = value.as_deref().map_or(0, |v| v.chars().count());
        if n > max {
            return Err(over(format!("field `{name}` in characters"), n));
        }
    }
    if f.fields.len() > limits.max_profile_fields {
        return Err(InvalidEvent::OverLimit {
            what: "the number of profile fields".into(),
            limit: "max_profile_fields",
            max: limits.max_profile_fields as u64,
            got: f.fields.len() as u64,
        });
    }
    for (k, v) in &f.fields {
        let n = k.chars().count();
        if n > max {
            return Err(over("a profile field name in characters".into(), n));
        }
        if let FieldValue::Str(v) = v {
            let n = v.chars().count();
            if n > max {
                return Err(over(
                    format!("profile field `{}` in characters", preview(k)),
                    n,
                ));
            }
        }
    }
    Ok(())
}

fn validate<'a>(f: Fields<'a>, limits: &Limits) -> Result<Event<'a>, InvalidEvent> {
    check_sizes(&f, limits)?;
    let event_id = f.event_id.ok_or(InvalidEvent::Missing("event_id"))?;
    check_len("event_id", &event_id, 128)?;
    let kind_s = f.kind.ok_or(InvalidEvent::Missing("type"))?;
    let kind =
        EventType::parse(&kind_s).ok_or_else(|| InvalidEvent::UnknownType(preview(&kind_s)))?;
    let lead_id = f.lead_id.ok_or(InvalidEvent::Missing("lead_id"))?;
    check_len("lead_id", &lead_id, 256)?;
    let ts = time_field("ts", &f.ts.ok_or(InvalidEvent::Missing("ts"))?)?;
    if matches!(kind, EventType::PageView | EventType::Click) && f.url.is_none() {
        return Err(InvalidEvent::MissingForType { field: "url", kind });
    }
    if kind == EventType::FormConversion && f.form_id.is_none() {
        return Err(InvalidEvent::MissingForType {
            field: "form_id",
            kind,
        });
    }
    if let Some(d) = f.duration_s {
        if !(d.is_finite() && d >= 0.0) {
            return Err(InvalidEvent::BadValue {
                field: "duration_s",
                problem: format!("must be a number ≥ 0, got {d}"),
            });
        }
    }
    let sent_at = match &f.sent_at {
        Some(s) => Some(time_field("sent_at", s)?),
        None => None,
    };
    let offer_stage = match &f.offer_stage {
        Some(s) => Some(OfferStage::parse(s).ok_or_else(|| InvalidEvent::BadValue {
            field: "offer_stage",
            problem: format!("must be tofu, mofu or bofu, got `{}`", preview(s)),
        })?),
        None => None,
    };
    let mut fields = f.fields;
    // Canonical order (by name, stable): both encodings decode to the same value.
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in &fields {
        if let FieldValue::Num(n) = v {
            if !n.is_finite() {
                return Err(InvalidEvent::BadValue {
                    field: "fields",
                    problem: format!("`{}` must be a finite number", preview(k)),
                });
            }
        }
    }
    Ok(Event {
        event_id,
        kind,
        lead_id,
        ts,
        url: f.url,
        duration_s: f.duration_s,
        campaign_id: f.campaign_id,
        sent_at,
        user_agent: f.user_agent,
        form_id: f.form_id,
        offer_stage,
        fields,
    })
}
