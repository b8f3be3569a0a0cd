//! HTTP endpoints (SPEC §7): `/metrics`, `/healthz`, `/readyz`, `/v1/leads/{lead_id}`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

use crate::output::Signal;
use crate::service::shared::Shared;
use crate::time::{format_rfc3339, now_micros};

/// The pipeline loop turns at least every ~100 ms; this long without a turn is unhealthy.
const STALL_MS: i64 = 60_000;

/// What the handlers need.
#[derive(Clone)]
pub struct AppState {
    /// Pipeline state.
    pub shared: Arc<Shared>,
    /// Prometheus renderer.
    pub prometheus: PrometheusHandle,
}

/// The router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/leads/{lead_id}", get(lead))
        .with_state(state)
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.prometheus.render(),
    )
        .into_response()
}

async fn healthz(State(s): State<AppState>) -> Response {
    if let Some(why) = s.shared.failure() {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("failed: {why}\n")).into_response();
    }
    let idle = now_micros() / 1000 - s.shared.heartbeat_ms.load(Ordering::Relaxed);
    if idle > STALL_MS {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "stalled: the pipeline made no progress for {}s\n",
                idle / 1000
            ),
        )
            .into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}

async fn readyz(State(s): State<AppState>) -> Response {
    if !s.shared.joined.load(Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: joining the consumer group\n",
        )
            .into_response();
    }
    let pending = s.shared.pending.lock().unwrap().clone();
    if pending.is_empty() {
        let owned: Vec<i32> = s.shared.shards.lock().unwrap().keys().copied().collect();
        (StatusCode::OK, format!("ready: partitions {owned:?}\n")).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: restoring partitions {pending:?}\n"),
        )
            .into_response()
    }
}

/// `GET /v1/leads/{lead_id}`.
#[derive(Debug, Serialize)]
pub struct LeadView {
    lead_id: String,
    score: f64,
    fit_score: f64,
    engagement_score: f64,
    as_of: String,
    score_now: f64,
    armed: bool,
    sequence: u32,
    top_signals: Vec<Signal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conversion_probability: Option<f64>,
}

async fn lead(State(s): State<AppState>, Path(lead_id): Path<String>) -> Response {
    // Shards first, then the engine: a reload swaps both under the shards lock.
    let shards = s.shared.shards.lock().unwrap();
    let engine = s.shared.engine();
    let found = shards.values().find_map(|s| s.leads.get(&lead_id));
    match found.filter(|st| st.clock().is_some()) {
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({
                "error": "lead not found: this instance does not own it (or has never seen it)",
                "lead_id": lead_id,
            })),
        )
            .into_response(),
        Some(st) => {
            let now = now_micros();
            let score = engine.lead_score(&lead_id, st);
            let view = LeadView {
                score_now: st.fit() + engine.engagement_at(st, now),
                armed: st.armed(),
                sequence: st.sequence(),
                top_signals: engine.top_signals(st, None),
                as_of: st.clock().map(format_rfc3339).unwrap_or_default(),
                lead_id,
                score: score.score,
                fit_score: score.fit_score,
                engagement_score: score.engagement_score,
                conversion_probability: score.conversion_probability,
            };
            Json(view).into_response()
        }
    }
}
