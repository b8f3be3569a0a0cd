//! The durable local store: one redb database per input partition under
//! `<state_dir>/<group>/partition-<p>.redb`, holding every lead's encoded state and the input
//! offsets that state reflects, written together in one atomic, fsynced transaction.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::erasure::{Erasures, LeadHash};
use crate::leads::LeadTable;
use crate::rules::Rules;
use crate::state::LeadState;
use crate::time::Micros;

const LEADS: TableDefinition<&str, &[u8]> = TableDefinition::new("leads");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const OFFSETS_KEY: &str = "input_offsets";
/// Erasures: lead hash → time up to which its events are refused.
const ERASED: TableDefinition<&[u8], i64> = TableDefinition::new("erased");

/// Input topic → next offset to process.
pub type Offsets = BTreeMap<String, i64>;

thread_local! {
    static UNTRUSTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Is this thread reading a store file that may be corrupt? The process's panic hook lets
/// such a panic unwind (redb 2.6 asserts on some truncated files instead of returning an
/// error), and [`untrusted`] turns it into an error; every other panic exits at once.
pub fn opening_untrusted_file() -> bool {
    UNTRUSTED.with(|u| u.get())
}

/// Runs `f` on a store file that may be corrupt, a panic inside it becoming an error.
fn untrusted<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    UNTRUSTED.with(|u| u.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    UNTRUSTED.with(|u| u.set(false));
    r.unwrap_or_else(|p| {
        let why = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Err(anyhow::anyhow!(
            "the store library failed on the file: {why}"
        ))
    })
}

/// One partition's store.
pub struct PartitionStore {
    db: Database,
    path: PathBuf,
    cache_bytes: usize,
}

impl PartitionStore {
    /// The file of a partition's store.
    pub fn path_for(state_dir: &Path, group: &str, partition: i32) -> PathBuf {
        state_dir
            .join(group)
            .join(format!("partition-{partition}.redb"))
    }

    /// Opens a partition's store; one that cannot be opened or whose offsets cannot be read
    /// (truncated, overwritten, not a store) is quarantined ([`PartitionStore::quarantine`])
    /// and an empty one takes its place, so the partition restores from the changelog.
    pub fn open_or_quarantine(
        state_dir: &Path,
        group: &str,
        partition: i32,
        cache_bytes: usize,
    ) -> Result<Self> {
        let checked = untrusted(|| {
            let store = Self::open(state_dir, group, partition, cache_bytes)?;
            store.offsets()?;
            Ok(store)
        });
        match checked {
            Ok(store) => Ok(store),
            Err(e) => {
                let path = Self::path_for(state_dir, group, partition);
                quarantine_file(&path, &format!("{e:#}"))?;
                Self::open(state_dir, group, partition, cache_bytes)
            }
        }
    }

    /// Moves this store's file aside (`<file>.corrupt-<unix seconds>`, kept for a post-mortem)
    /// and opens an empty store in its place.
    pub fn quarantine(self, why: &str) -> Result<Self> {
        let (path, cache_bytes) = (self.path.clone(), self.cache_bytes);
        drop(self.db);
        quarantine_file(&path, why)?;
        Self::create(path, cache_bytes)
    }

    /// Opens (creating if needed) a partition's store, its page cache bounded to
    /// `cache_bytes`.
    pub fn open(state_dir: &Path, group: &str, partition: i32, cache_bytes: usize) -> Result<Self> {
        let path = Self::path_for(state_dir, group, partition);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "cannot create the state directory {} (state_dir / LEADSCORE_STATE_DIR)",
                    dir.display()
                )
            })?;
        }
        Self::create(path, cache_bytes)
    }

    fn create(path: PathBuf, cache_bytes: usize) -> Result<Self> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(&path)
            .with_context(|| format!("cannot open the state store {}", path.display()))?;
        let store = PartitionStore {
            db,
            path,
            cache_bytes,
        };
        store.create_tables()?;
        Ok(store)
    }

    fn create_tables(&self) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(LEADS)?;
        tx.open_table(META)?;
        tx.open_table(ERASED)?;
        tx.commit()?;
        Ok(())
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The input offsets the stored state reflects (empty for a new store).
    pub fn offsets(&self) -> Result<Offsets> {
        let tx = self.db.begin_read()?;
        let meta = tx.open_table(META)?;
        match meta.get(OFFSETS_KEY)? {
            Some(v) => serde_json::from_slice(v.value())
                .with_context(|| format!("corrupt offsets in {}", self.path.display())),
            None => Ok(Offsets::new()),
        }
    }

    /// Number of stored leads.
    pub fn len(&self) -> Result<u64> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(LEADS)?.len()?)
    }

    /// Is the store empty?
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Loads every erasure into `erasures` and stored leads into `into`, at most `limit` of
    /// them (the rest stay cold: read back by [`PartitionStore::get`]). Returns the leads
    /// loaded and whether some were left in the store.
    pub fn load(
        &self,
        rules: &Rules,
        into: &mut LeadTable,
        erasures: &mut Erasures,
        limit: usize,
    ) -> Result<(u64, bool)> {
        let tx = self.db.begin_read()?;
        for entry in tx.open_table(ERASED)?.iter()? {
            let (k, v) = entry?;
            let h: LeadHash = k
                .value()
                .try_into()
                .with_context(|| format!("erasure record in {}", self.path.display()))?;
            erasures.restore(h, Some(v.value()));
        }
        let leads = tx.open_table(LEADS)?;
        let mut n = 0;
        for entry in leads.iter()? {
            if n as usize >= limit {
                return Ok((n, true));
            }
            let (k, v) = entry?;
            let state = LeadState::decode(rules, v.value())
                .with_context(|| format!("lead {} in {}", k.value(), self.path.display()))?;
            into.insert(k.value(), state);
            n += 1;
        }
        Ok((n, false))
    }

    /// One stored lead's state, decoded against `rules` (`None`: not stored).
    pub fn get(&self, rules: &Rules, id: &str) -> Result<Option<LeadState>> {
        let tx = self.db.begin_read()?;
        let leads = tx.open_table(LEADS)?;
        let Some(v) = leads.get(id)? else {
            return Ok(None);
        };
        let state = LeadState::decode(rules, v.value())
            .with_context(|| format!("a lead in {}", self.path.display()))?;
        Ok(Some(state))
    }

    /// Writes changed leads (already encoded), removes evicted ones, records erasures and the
    /// offsets, atomically.
    pub fn write(
        &self,
        changed: &[(Box<str>, Vec<u8>)],
        removed: &[Box<str>],
        erased: &[(LeadHash, Option<Micros>)],
        offsets: &Offsets,
    ) -> Result<u64> {
        let tx = self.db.begin_write()?;
        let mut n = 0;
        {
            let mut leads = tx.open_table(LEADS)?;
            for (id, bytes) in changed {
                leads.insert(&**id, bytes.as_slice())?;
                n += 1;
            }
            for id in removed {
                leads.remove(&**id)?;
            }
            let mut table = tx.open_table(ERASED)?;
            for (h, at) in erased {
                match at {
                    Some(at) => table.insert(h.as_slice(), *at)?,
                    None => table.remove(h.as_slice())?,
                };
            }
            let mut meta = tx.open_table(META)?;
            meta.insert(OFFSETS_KEY, serde_json::to_vec(offsets)?.as_slice())?;
        }
        tx.commit()
            .with_context(|| format!("cannot commit to {}", self.path.display()))?;
        Ok(n)
    }

    /// Replaces the whole content (after a restore from the changelog or the input).
    pub fn replace_all(
        &self,
        rules: &Rules,
        leads: &LeadTable,
        erasures: &Erasures,
        offsets: &Offsets,
    ) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.delete_table(LEADS)?;
        tx.delete_table(ERASED)?;
        {
            let mut table = tx.open_table(ERASED)?;
            for (h, at) in erasures.iter() {
                table.insert(h.as_slice(), *at)?;
            }
            let mut t = tx.open_table(LEADS)?;
            let mut buf = Vec::with_capacity(256);
            for l in leads.iter() {
                buf.clear();
                l.state.encode(rules, &mut buf);
                t.insert(&*l.id, buf.as_slice())?;
            }
            let mut meta = tx.open_table(META)?;
            meta.insert(OFFSETS_KEY, serde_json::to_vec(offsets)?.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Renames a corrupt store file aside, with a warning and a metric.
fn quarantine_file(path: &Path, why: &str) -> Result<()> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let aside = path.with_extension(format!("redb.corrupt-{secs}"));
    std::fs::rename(path, &aside).with_context(|| {
        format!(
            "cannot move the corrupt state store {} aside",
            path.display()
        )
    })?;
    metrics::counter!(crate::service::metrics::STORE_CORRUPT_TOTAL.name).increment(1);
    tracing::warn!(
        store = %path.display(),
        moved_to = %aside.display(),
        "state store unreadable ({why}); restoring the partition from the changelog"
    );
    Ok(())
}
