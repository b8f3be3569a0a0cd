//! Sales verdicts (SPEC §2b): what sales decided about a lead — accepted, rejected, won, lost —
//! as events on the optional `lead-outcomes` topic, or as lines of a replayed history. Pure
//! decoding and validation; the engine keeps them in the lead's state.

use prost::Message;
use serde::{Deserialize, Serialize};

use crate::event::{check_key_is, check_len, preview, time_field, InvalidEvent, Limits};
use crate::proto;
use crate::time::{format_rfc3339, Micros};

/// The `type` a verdict may carry (it is optional on the outcomes topic).
pub const VERDICT_TYPE: &str = "lead_outcome";

/// What sales decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SalesOutcome {
    /// Sales took the alert: the lead is worked.
    Accepted,
    /// Sales turned the alert down.
    Rejected,
    /// The lead became a customer.
    Won,
    /// The opportunity was lost or the lead disqualified.
    Lost,
}

impl SalesOutcome {
    /// All outcomes, in code order.
    pub const ALL: [SalesOutcome; 4] = [
        SalesOutcome::Accepted,
        SalesOutcome::Rejected,
        SalesOutcome::Won,
        SalesOutcome::Lost,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SalesOutcome::Accepted => "accepted",
            SalesOutcome::Rejected => "rejected",
            SalesOutcome::Won => "won",
            SalesOutcome::Lost => "lost",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// The one-byte code of the state encoding.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Inverse of [`SalesOutcome::code`].
    pub fn from_code(c: u8) -> Option<Self> {
        Self::ALL.get(c as usize).copied()
    }
}

/// One validated sales verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The lead (1–256 characters, equal to the message key when there is one).
    pub lead_id: String,
    /// When sales decided.
    pub ts: Micros,
    /// The decision.
    pub outcome: SalesOutcome,
    /// Free text from sales (≤ `max_string_chars`).
    pub reason: Option<String>,
    /// The alert the verdict answers, when sales knows it.
    pub sales_ready_event_id: Option<String>,
}

#[derive(Deserialize)]
struct VerdictJson {
    #[serde(rename = "type")]
    kind: Option<String>,
    lead_id: Option<String>,
    ts: Option<String>,
    outcome: Option<String>,
    reason: Option<String>,
    sales_ready_event_id: Option<String>,
}

#[derive(Serialize)]
struct VerdictOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    lead_id: &'a str,
    ts: String,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sales_ready_event_id: Option<&'a str>,
}

impl Verdict {
    /// The SPEC §2b JSON form (with `"type":"lead_outcome"`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&VerdictOut {
            kind: VERDICT_TYPE,
            lead_id: &self.lead_id,
            ts: format_rfc3339(self.ts),
            outcome: self.outcome.as_str(),
            reason: self.reason.as_deref(),
            sales_ready_event_id: self.sales_ready_event_id.as_deref(),
        })
        .expect("a verdict always serializes")
    }

    /// The Protobuf form (`leadscore.v1.LeadOutcome`).
    pub fn to_proto(&self) -> proto::LeadOutcome {
        proto::LeadOutcome {
            lead_id: self.lead_id.clone(),
            ts: format_rfc3339(self.ts),
            outcome: self.outcome.as_str().into(),
            reason: self.reason.clone(),
            sales_ready_event_id: self.sales_ready_event_id.clone(),
            r#type: VERDICT_TYPE.into(),
        }
    }
}

/// Decodes and validates a JSON verdict.
pub fn decode_json(payload: &[u8], limits: &Limits) -> Result<Verdict, InvalidEvent> {
    let raw: VerdictJson = serde_json::from_slice(payload)
        .map_err(|e| InvalidEvent::BadJson(format!("lead outcome: {e}")))?;
    validate(raw, limits)
}

/// Decodes and validates a Protobuf `leadscore.v1.LeadOutcome`.
pub fn decode_protobuf(payload: &[u8], limits: &Limits) -> Result<Verdict, InvalidEvent> {
    let p = proto::LeadOutcome::decode(payload)
        .map_err(|e| InvalidEvent::BadProtobuf(format!("LeadOutcome: {e}")))?;
    let nonempty = |s: String| (!s.is_empty()).then_some(s);
    validate(
        VerdictJson {
            kind: nonempty(p.r#type),
            lead_id: nonempty(p.lead_id),
            ts: nonempty(p.ts),
            outcome: nonempty(p.outcome),
            reason: p.reason,
            sales_ready_event_id: p.sales_ready_event_id,
        },
        limits,
    )
}

/// Decodes a verdict in either encoding (JSON when the payload starts with `{`), and checks
/// that the message key, when set, is the lead id.
pub fn decode(
    payload: &[u8],
    key: Option<&[u8]>,
    limits: &Limits,
) -> Result<Verdict, InvalidEvent> {
    let v = match payload.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | None => decode_json(payload, limits)?,
        Some(_) => decode_protobuf(payload, limits)?,
    };
    check_key_is(&v.lead_id, key)?;
    Ok(v)
}

fn validate(raw: VerdictJson, limits: &Limits) -> Result<Verdict, InvalidEvent> {
    if let Some(kind) = raw.kind.as_deref().filter(|k| *k != VERDICT_TYPE) {
        return Err(InvalidEvent::UnknownType(format!(
            "{} (a lead outcome has type `{VERDICT_TYPE}` or none)",
            preview(kind)
        )));
    }
    let lead_id = raw.lead_id.ok_or(InvalidEvent::Missing("lead_id"))?;
    check_len("lead_id", &lead_id, 256)?;
    let ts = time_field("ts", &raw.ts.ok_or(InvalidEvent::Missing("ts"))?)?;
    let outcome_s = raw.outcome.ok_or(InvalidEvent::Missing("outcome"))?;
    let outcome = SalesOutcome::parse(&outcome_s).ok_or_else(|| InvalidEvent::BadValue {
        field: "outcome",
        problem: format!(
            "must be accepted, rejected, won or lost, got `{}`",
            preview(&outcome_s)
        ),
    })?;
    let over = |s: &Option<String>| {
        s.as_ref()
            .is_some_and(|s| s.chars().count() > limits.max_string_chars)
    };
    for (what, s) in [
        ("reason", &raw.reason),
        ("sales_ready_event_id", &raw.sales_ready_event_id),
    ] {
        if over(s) {
            return Err(InvalidEvent::OverLimit {
                what: format!("field `{what}` in characters"),
                limit: "max_string_chars",
                max: limits.max_string_chars as u64,
                got: s.as_ref().map_or(0, |s| s.chars().count()) as u64,
            });
        }
    }
    Ok(Verdict {
        lead_id,
        ts,
        outcome,
        reason: raw.reason.filter(|r| !r.is_empty()),
        sales_ready_event_id: raw.sales_ready_event_id.filter(|r| !r.is_empty()),
    })
}

/// What a lead's verdicts say for `train` and `backtest`: converted at its first `won`; not
/// converted when it has a `lost` or `rejected` and no `won`; still open (left out) with
/// `accepted` alone, unless `open_as_lost`. Sorted by lead id.
pub fn final_outcomes<'a>(
    verdicts: impl IntoIterator<Item = &'a Verdict>,
    open_as_lost: bool,
) -> std::collections::BTreeMap<String, (bool, Option<Micros>)> {
    let mut by_lead: std::collections::BTreeMap<String, (Option<Micros>, bool)> =
        Default::default();
    for v in verdicts {
        let (won_at, closed) = by_lead.entry(v.lead_id.clone()).or_default();
        match v.outcome {
            SalesOutcome::Won => *won_at = Some(won_at.map_or(v.ts, |t| t.min(v.ts))),
            SalesOutcome::Lost | SalesOutcome::Rejected => *closed = true,
            SalesOutcome::Accepted => {}
        }
    }
    by_lead
        .into_iter()
        .filter_map(|(id, (won_at, closed))| match won_at {
            Some(t) => Some((id, (true, Some(t)))),
            None if closed || open_as_lost => Some((id, (false, None))),
            None => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_protobuf_decode_to_the_same_verdict() {
        let line = br#"{"lead_id":"L-1","ts":"2026-11-28T10:00:00Z","outcome":"rejected","reason":"no budget","sales_ready_event_id":"sr:L-1:1"}"#;
        let v = decode(line, Some(b"L-1"), &Limits::default()).unwrap();
        assert_eq!(v.outcome, SalesOutcome::Rejected);
        assert_eq!(v.reason.as_deref(), Some("no budget"));
        let pb = v.to_proto().encode_to_vec();
        assert_eq!(decode(&pb, None, &Limits::default()).unwrap(), v);
        let again = decode_json(v.to_json().as_bytes(), &Limits::default()).unwrap();
        assert_eq!(again, v);
    }

    #[test]
    fn final_outcomes_follow_won_then_closed_then_open() {
        let v = |id: &str, day: i64, o: SalesOutcome| Verdict {
            lead_id: id.into(),
            ts: 1_790_000_000_000_000 + day * 86_400_000_000,
            outcome: o,
            reason: None,
            sales_ready_event_id: None,
        };
        use SalesOutcome::*;
        let all = [
            v("b", 1, Accepted),
            v("b", 9, Won),
            v("b", 5, Won),
            v("a", 2, Rejected),
            v("c", 3, Accepted),
            v("d", 4, Accepted),
            v("d", 8, Lost),
        ];
        let out = final_outcomes(&all, false);
        let rows: Vec<_> = out.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            rows,
            vec![
                ("a", (false, None)),
                ("b", (true, Some(all[2].ts))),
                ("d", (false, None)),
            ]
        );
        assert_eq!(final_outcomes(&all, true).get("c"), Some(&(false, None)));
    }

    #[test]
    fn bad_verdicts_say_what_is_wrong() {
        let l = Limits::default();
        let cases: [(&[u8], &str); 5] = [
            (br#"{"lead_id":"L-1","ts":"2026-11-28T10:00:00Z"}"#, "missing_field"),
            (br#"{"lead_id":"L-1","ts":"2026-11-28T10:00:00Z","outcome":"maybe"}"#, "bad_value"),
            (br#"{"lead_id":"L-1","ts":"soon","outcome":"won"}"#, "bad_timestamp"),
            (br#"{"type":"page_view","lead_id":"L-1","ts":"2026-11-28T10:00:00Z","outcome":"won"}"#, "unknown_type"),
            (br#"{"lead_id":7}"#, "bad_json"),
        ];
        for (payload, code) in cases {
            let e = decode(payload, None, &l).unwrap_err();
            assert_eq!(e.code(), code, "{e}");
        }
        let ok = br#"{"lead_id":"L-1","ts":"2026-11-28T10:00:00Z","outcome":"won"}"#;
        assert_eq!(
            decode(ok, Some(b"L-2"), &l).unwrap_err().code(),
            "key_mismatch"
        );
    }
}
