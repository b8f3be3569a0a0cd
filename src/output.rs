//! What leadscore emits: the `sales_ready` event (SPEC §5) and per-lead score views
//! (`replay --scores`, `GET /v1/leads/{id}`).

use serde::Serialize;

use crate::proto;
use crate::time::{format_rfc3339, Micros};

/// One rule's share of a lead's current score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    /// Rule name.
    pub rule: String,
    /// Current contribution (fit points, or decayed engagement).
    pub points: f64,
}

/// Emitted when a lead crosses the sales-ready threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct SalesReady {
    /// `sr:<lead_id>:<sequence>`, deterministic.
    pub event_id: String,
    /// The lead.
    pub lead_id: String,
    /// This lead's qualification count (1, 2, ...).
    pub sequence: u32,
    /// Lead clock at the crossing.
    pub qualified_at: Micros,
    /// Score after the triggering event.
    pub score: f64,
    /// Fit part.
    pub fit_score: f64,
    /// Engagement part.
    pub engagement_score: f64,
    /// The sales_ready threshold.
    pub threshold: f64,
    /// The event that crossed it.
    pub trigger_event_id: String,
    /// `<name>+<sha8>` of the rules.
    pub rules_version: String,
    /// Up to 5 rules by current contribution, descending.
    pub top_signals: Vec<Signal>,
    /// With a predictive model loaded.
    pub conversion_probability: Option<f64>,
}

#[derive(Serialize)]
struct SalesReadyJson<'a> {
    event_id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    lead_id: &'a str,
    sequence: u32,
    qualified_at: String,
    score: f64,
    fit_score: f64,
    engagement_score: f64,
    threshold: f64,
    trigger_event_id: &'a str,
    rules_version: &'a str,
    top_signals: &'a [Signal],
    #[serde(skip_serializing_if = "Option::is_none")]
    conversion_probability: Option<f64>,
}

impl SalesReady {
    /// The SPEC §5 JSON payload.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&SalesReadyJson {
            event_id: &self.event_id,
            kind: "sales_ready",
            lead_id: &self.lead_id,
            sequence: self.sequence,
            qualified_at: format_rfc3339(self.qualified_at),
            score: self.score,
            fit_score: self.fit_score,
            engagement_score: self.engagement_score,
            threshold: self.threshold,
            trigger_event_id: &self.trigger_event_id,
            rules_version: &self.rules_version,
            top_signals: &self.top_signals,
            conversion_probability: self.conversion_probability,
        })
        .expect("sales_ready always serializes")
    }

    /// The Protobuf payload (`leadscore.v1.SalesReady`).
    pub fn to_proto(&self) -> proto::SalesReady {
        proto::SalesReady {
            event_id: self.event_id.clone(),
            r#type: "sales_ready".into(),
            lead_id: self.lead_id.clone(),
            sequence: self.sequence,
            qualified_at: format_rfc3339(self.qualified_at),
            score: self.score,
            fit_score: self.fit_score,
            engagement_score: self.engagement_score,
            threshold: self.threshold,
            trigger_event_id: self.trigger_event_id.clone(),
            rules_version: self.rules_version.clone(),
            top_signals: self
                .top_signals
                .iter()
                .map(|s| proto::Signal {
                    rule: s.rule.clone(),
                    points: s.points,
                })
                .collect(),
            conversion_probability: self.conversion_probability,
        }
    }
}

/// A lead's score at its lead clock, as `replay --scores` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeadScore {
    /// The lead.
    pub lead_id: String,
    /// `fit_score + engagement_score` at `as_of`.
    pub score: f64,
    /// Fit part.
    pub fit_score: f64,
    /// Engagement part at `as_of`.
    pub engagement_score: f64,
    /// The lead clock, RFC 3339.
    pub as_of: String,
    /// With a predictive model loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversion_probability: Option<f64>,
}
