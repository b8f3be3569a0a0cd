//! HTTP endpoints (SPEC §7): `/metrics`, `/healthz`, `/readyz` (always open), and `/v1/*` —
//! `GET /v1/leads/{lead_id}` and `DELETE /v1/leads/{lead_id}` (erasure) — behind the bearer
//! `http_token`, with a concurrency limit that sheds load and a request timeout. No handler
//! waits on the pipeline: the state lock is tried for at most [`LOCK_WAIT`], then 503.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::BoxError;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use tower::ServiceBuilder;

use crate::output::Signal;
use crate::service::shared::Shared;
use crate::state::LeadState;
use crate::time::{format_rfc3339, now_micros};

/// The pipeline loop turns at least every ~100 ms; this long without a turn is unhealthy.
const STALL_MS: i64 = 60_000;

/// Longest a handler waits for the state lock (the pipeline holds it per poll batch).
const LOCK_WAIT: Duration = Duration::from_secs(1);
/// `/v1/*` requests served at once; more are refused with 503 at once.
const V1_CONCURRENCY: usize = 32;
/// Longest a `/v1/*` request may take.
const V1_TIMEOUT: Duration = Duration::from_secs(10);

/// What the handlers need.
#[derive(Clone)]
pub struct AppState {
    /// Pipeline state.
    pub shared: Arc<Shared>,
    /// Prometheus renderer.
    pub prometheus: PrometheusHandle,
    /// The bearer token of `/v1/*` (`None`: lookups open, erasure off).
    pub token: Option<Arc<str>>,
    /// Publishes `forget` commands; `None` when no token is set.
    pub eraser: Option<Arc<Eraser>>,
}

/// What `DELETE /v1/leads/{id}` needs.
pub struct Eraser {
    /// Producer of control messages.
    pub producer: rdkafka::producer::FutureProducer,
    /// Input topic the command goes to.
    pub topic: String,
}

/// The router: probes and metrics open; `/v1/*` behind the token, limited and timed out.
pub fn router(state: AppState) -> Router {
    let limits = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|e: BoxError| async move {
            let status = if e.is::<tower::timeout::error::Elapsed>() {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (status, format!("{e}\n"))
        }))
        .load_shed()
        .concurrency_limit(V1_CONCURRENCY)
        .timeout(V1_TIMEOUT);
    let v1 = Router::new()
        .route("/v1/leads/{lead_id}", get(lead).delete(forget))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(limits);
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(v1)
        .with_state(state)
}

/// `/v1/*` with a token configured: `Authorization: Bearer <token>` or 401.
async fn require_token(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some(token) = s.token.as_deref() else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if same_secret(given.as_bytes(), token.as_bytes()) {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
            "a valid bearer token is required (http_token)\n",
        )
            .into_response()
    }
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
    /// Sales verdicts, oldest first (SPEC §2b); absent when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    verdicts: Vec<VerdictView>,
    /// Alerts are withheld until then (after a rejection).
    #[serde(skip_serializing_if = "Option::is_none")]
    suppressed_until: Option<String>,
}

/// One sales verdict in the lead view.
#[derive(Debug, Serialize)]
pub struct VerdictView {
    ts: String,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sales_ready_event_id: Option<String>,
}

fn verdict_views(st: &LeadState) -> (Vec<VerdictView>, Option<String>) {
    let Some(f) = st.feedback() else {
        return (Vec::new(), None);
    };
    let views = f
        .verdicts
        .iter()
        .map(|v| VerdictView {
            ts: format_rfc3339(v.ts),
            outcome: v.outcome.as_str(),
            reason: v.reason.as_deref().map(String::from),
            sales_ready_event_id: v.sales_ready_event_id.as_deref().map(String::from),
        })
        .collect();
    (views, f.suppressed_until.map(format_rfc3339))
}

async fn lead(State(s): State<AppState>, Path(lead_id): Path<String>) -> Response {
    let started = std::time::Instant::now();
    loop {
        // Shards first, then the engine: a reload swaps both under the shards lock.
        if let Ok(shards) = s.shared.shards.try_lock() {
            return lead_view(&s, &shards, lead_id);
        }
        if started.elapsed() > LOCK_WAIT {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(axum::http::header::RETRY_AFTER, "1")],
                "busy: the pipeline holds the state (a checkpoint or a restore); retry\n",
            )
                .into_response();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn lead_view(
    s: &AppState,
    shards: &std::collections::BTreeMap<i32, crate::service::partition::Shard>,
    lead_id: String,
) -> Response {
    let engine = s.shared.engine();
    let mut found = None;
    for shard in shards.values() {
        match shard.lookup(engine.rules(), &lead_id) {
            Ok(None) => continue,
            Ok(Some(st)) => {
                found = Some(st);
                break;
            }
            Err(e) => {
                tracing::error!("lead lookup: cannot read the local store: {e:#}");
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot read the local store\n",
                )
                    .into_response();
            }
        }
    }
    match found.filter(|st| st.clock().is_some() || st.feedback().is_some()) {
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({
                "error": "lead not found: this instance does not own it (or has never seen it)",
                "lead_id": lead_id,
            })),
        )
            .into_response(),
        Some(st) => {
            let st = &*st;
            let now = now_micros();
            let score = engine.lead_score(&lead_id, st);
            let (verdicts, suppressed_until) = verdict_views(st);
            let view = LeadView {
                verdicts,
                suppressed_until,
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

/// Erasure (the token was checked by [`require_token`]): publishes a `forget` command keyed
/// by the lead and answers 202 once the broker has it; the owning instance erases when it
/// consumes it.
async fn forget(State(s): State<AppState>, Path(lead_id): Path<String>) -> Response {
    let Some(eraser) = s.eraser.as_ref() else {
        return (
            StatusCode::FORBIDDEN,
            "erasure over HTTP needs a token: set http_token (LEADSCORE_HTTP_TOKEN)\n",
        )
            .into_response();
    };
    if lead_id.is_empty() || lead_id.chars().count() > 256 {
        return (
            StatusCode::BAD_REQUEST,
            "lead id must be 1–256 characters\n",
        )
            .into_response();
    }
    match crate::kafka::send_forget(&eraser.producer, &eraser.topic, &lead_id).await {
        Ok((partition, offset)) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({
                "lead_id": lead_id,
                "status": "accepted",
                "topic": eraser.topic,
                "partition": partition,
                "offset": offset,
            })),
        )
            .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}\n")).into_response(),
    }
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A client must send its request headers within this: a slow client cannot hold a
/// connection forever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` (HTTP/1.1), each connection on its own task, with a header read
/// timeout — `axum::serve` sets none.
pub async fn serve(listener: tokio::net::TcpListener, app: Router) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("HTTP accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
