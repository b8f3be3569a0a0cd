//! `leadscore run`: the Kafka service. An imperative shell around the pure engine:
//! [`pipeline`] (the consume → score → publish loop), [`assignment`] (the partition lifecycle),
//! [`checkpoint`] (durability and recovery), [`group`] (the consumer and its callbacks),
//! [`producer`] (outputs and transactions), [`restore`] and [`changelog`] (partition state on
//! assignment), [`store`] (the local store), [`http`] (metrics, health, lead lookup),
//! [`metrics`].

pub mod assignment;
pub mod changelog;
pub mod checkpoint;
pub mod group;
pub mod http;
pub mod metrics;
pub mod partition;
pub mod pipeline;
pub mod producer;
pub mod restore;
pub mod screen;
pub mod shared;
pub mod store;
pub mod topics;
pub mod upkeep;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{Context, Result};
use tracing::{error, info, warn};

use crate::config::{Config, Guarantee, LogFormat};
use crate::engine::Engine;
use crate::rules::Rules;

/// Validates configuration and rules; returns them ready to run.
pub fn check(cfg: &Config) -> Result<Rules> {
    let rules = crate::rules_file::load(&cfg.rules)?;
    if cfg.guarantee == Guarantee::ExactlyOnce && cfg.instance_id.is_none() {
        tracing::warn!(
            "exactly_once without instance_id: the transactional.id is unique per process, so a \
             restarted instance cannot fence its predecessor's open transaction by id (consumer \
             group fencing still applies); set LEADSCORE_INSTANCE_ID"
        );
    }
    Ok(rules)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The poll loop's longest legitimate pause, well past every bounded wait in it (a revoke
/// waits ≤ 90 s for offsets, a checkpoint's transactional calls ≤ 120 s each).
const WATCHDOG_MS: i64 = 600_000;

/// Exits the process (code 70) when the poll loop has not turned for [`WATCHDOG_MS`]: a
/// process that is alive but does nothing is worse than a restart, which resumes from the
/// last durable checkpoint. `/healthz` turns red after a minute already.
async fn watchdog(shared: Arc<shared::Shared>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        let idle = crate::time::now_micros() / 1000 - shared.heartbeat_ms.load(Ordering::Relaxed);
        if idle > WATCHDOG_MS {
            error!(
                idle_s = idle / 1000,
                "watchdog: the poll loop is stuck; exiting for a restart"
            );
            std::process::exit(70);
        }
    }
}

/// What the HTTP handlers share: the pipeline state, the metrics, the token, and a producer
/// for `forget` commands when a token allows erasure.
fn http_state(
    cfg: &Config,
    shared: Arc<shared::Shared>,
    prometheus: metrics_exporter_prometheus::PrometheusHandle,
) -> Result<http::AppState> {
    let eraser = match &cfg.http_token {
        Some(_) => Some(Arc::new(http::Eraser {
            producer: crate::kafka::command_producer(&cfg.brokers, &cfg.kafka)?,
            topic: cfg.input_topics[0].clone(),
        })),
        None => None,
    };
    Ok(http::AppState {
        shared,
        prometheus,
        token: cfg.http_token.as_deref().map(Arc::from),
        eraser,
    })
}

/// Runs the service until SIGTERM/SIGINT.
pub fn run(cfg: Config) -> Result<()> {
    let rules = check(&cfg)?;
    init_logging(cfg.log_format);
    let prometheus = metrics::install()?;
    for topic in [
        &cfg.output_topic,
        &cfg.dlq_topic,
        &changelog::topic(&cfg.group_id),
    ] {
        ::metrics::counter!(metrics::PRODUCE_ERRORS_TOTAL.name, "topic" => topic.clone())
            .absolute(0);
    }
    let shared = Arc::new(shared::Shared::new(Engine::new(Arc::new(rules))));
    let addr = cfg.http_addr;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("leadscore-http")
        .build()
        .context("cannot start the async runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .with_context(|| {
            format!(
                "cannot listen on {addr} (http_addr / LEADSCORE_HTTP_ADDR): is the port in use?"
            )
        })?;
    info!(%addr, "HTTP listening: /metrics /healthz /readyz /v1/leads/{{id}}");
    if !addr.ip().is_loopback() && cfg.http_token.is_none() {
        warn!(
            %addr,
            "NO TOKEN: /v1/leads serves per-person scores to anyone who can reach this address; \
             set http_token (LEADSCORE_HTTP_TOKEN or LEADSCORE_HTTP_TOKEN_FILE)"
        );
    }
    let app = http::router(http_state(&cfg, shared.clone(), prometheus)?);
    runtime.spawn(http::serve(listener, app));
    let sig_shared = shared.clone();
    runtime.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            error!("cannot install signal handlers");
            return;
        };
        let which = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        info!("{which}: stopping after in-flight work");
        sig_shared.shutdown.store(true, Ordering::Release);
    });

    let hup_shared = shared.clone();
    runtime.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            error!("cannot install the SIGHUP handler: rules reload is unavailable");
            return;
        };
        while hup.recv().await.is_some() {
            info!("SIGHUP: reloading the rules file");
            hup_shared.reload.store(true, Ordering::Release);
        }
    });

    runtime.spawn(watchdog(shared.clone()));
    let result = pipeline::run(&cfg, shared);
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}
