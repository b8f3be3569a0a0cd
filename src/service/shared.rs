//! State shared between the pipeline thread, the rebalance callbacks and the HTTP server.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};

use metrics::counter;
use tracing::error;

use crate::engine::Engine;
use crate::service::partition::Shard;
use crate::time::now_micros;

/// State shared between the pipeline thread, rebalance callbacks and the HTTP server.
pub struct Shared {
    /// The engine (rules) in force; swapped by a reload while `shards` is locked (lock `shards`
    /// first, then read the engine, to see states and rules that belong together).
    pub(crate) engine: RwLock<Engine>,
    /// Set by SIGHUP: reload the rules file at the next turn of the pipeline loop.
    pub reload: AtomicBool,
    /// Active input partition → its leads.
    pub shards: Mutex<BTreeMap<i32, Shard>>,
    /// Partitions assigned but not yet restored.
    pub pending: Mutex<Vec<i32>>,
    /// The group was joined at least once.
    pub joined: AtomicBool,
    /// Bumped on every rebalance callback.
    pub generation: AtomicU64,
    /// Wall-clock ms of the pipeline loop's last turn.
    pub heartbeat_ms: AtomicI64,
    /// Set by SIGTERM/SIGINT.
    pub shutdown: AtomicBool,
    /// The first failure the service must stop on (fenced, not authorised, undeliverable
    /// state, ...): `/healthz` turns red and the process exits non-zero.
    fatal: OnceLock<String>,
}

impl Shared {
    /// Fresh shared state for an engine.
    pub fn new(engine: Engine) -> Self {
        Shared {
            engine: RwLock::new(engine),
            reload: AtomicBool::new(false),
            shards: Mutex::new(BTreeMap::new()),
            pending: Mutex::new(Vec::new()),
            joined: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            heartbeat_ms: AtomicI64::new(now_micros() / 1000),
            shutdown: AtomicBool::new(false),
            fatal: OnceLock::new(),
        }
    }

    /// The engine in force (a cheap clone: the rules are shared).
    pub fn engine(&self) -> Engine {
        self.engine.read().unwrap().clone()
    }

    /// Joined the group and every assigned partition is restored.
    pub fn ready(&self) -> bool {
        self.joined.load(Ordering::Acquire) && self.pending.lock().unwrap().is_empty()
    }

    /// Records that the pipeline loop turned.
    pub fn beat(&self) {
        self.heartbeat_ms
            .store(now_micros() / 1000, Ordering::Relaxed);
    }

    /// Records a failure the service must stop on (the first one is kept).
    pub fn fail(&self, why: String) {
        error!("fatal: {why}");
        counter!(crate::service::metrics::FATAL_ERRORS_TOTAL.name).increment(1);
        let _ = self.fatal.set(why);
    }

    /// The failure the service must stop on, if any.
    pub fn failure(&self) -> Option<String> {
        self.fatal.get().cloned()
    }
}
