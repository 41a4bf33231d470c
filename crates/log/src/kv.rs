//! The projection key-value store ([`Kv`]): one front over two backends,
//! chosen by [`LogOptions::projections`](crate::LogOptions::projections).
//!
//! * [`ProjectionBackend::Runs`] (`runs`): immutable sorted run files of this
//!   crate's own in `DIR/index/projections/` (`run_file`, on the shared
//!   `crate::sorted_run`), listed by a manifest (`manifest`).
//! * [`ProjectionBackend::Sled`] (`sled_tree`): a tree in the sled database in
//!   `DIR/index`, as up to the runs store.
//! * A read-only log's store (`overlay`): the runs store opened without writing, under a
//!   layer in memory that takes the writes of the reader's catch-up.
//! * A store outside the log's directory ([`Kv::external`], `external`): any
//!   [`ProjectionStore`], such as the projections `gongji-log-pg` keeps in PostgreSQL beside
//!   the log of record. `Log::open` never makes one; a caller that opens the log some other
//!   way hands it to the projection layer with the log.
//!
//! Each backend keeps its own checkpoint, so switching between opens is
//! harmless: the projection layer folds from whatever checkpoint the chosen
//! store has, or rebuilds when it has none.
//!
//! With the feature `kv-compare` (never in normal builds), [`Kv::open_for_comparison`] also
//! opens fjall (`fjall_store`) and redb (`redb_store`) behind this API, for
//! `tests/kv_open.rs` to measure them on the same workload; `Log::open` never uses them.

pub(crate) mod external;
#[cfg(feature = "kv-compare")]
mod fjall_store;
mod manifest;
pub(crate) mod overlay;
#[cfg(feature = "kv-compare")]
mod redb_store;
mod run_file;
pub(crate) mod runs;
pub(crate) mod sled_tree;

use std::sync::Arc;

use crate::LogError;

use external::KvScan;
pub use external::ProjectionStore;
use overlay::OverlayKv;
use runs::{RunsKv, RunsScan};
use sled_tree::SledKv;

/// Where [`Kv`] keeps the projections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProjectionBackend {
    /// Sorted run files of the log's own in `DIR/index/projections/`: no
    /// database to open, every `apply` durable when it returns.
    #[default]
    Runs,
    /// A sled tree in `DIR/index` (about 20 µs per key written, 55–100 ms to
    /// open a store of a few hundred MB); durable after [`Kv::flush`].
    Sled,
}

/// The store the projection layer keeps its projections and checkpoint in.
///
/// Everything in it can be rebuilt from the log; it lives in `DIR/index` and is
/// lost (and rebuilt by the projection layer) if that directory is deleted.
/// Writes are atomic per `apply`. With [`ProjectionBackend::Runs`] they are
/// durable when `apply` returns; with [`ProjectionBackend::Sled`] only after
/// `flush`. Clones share the store.
#[derive(Clone, Debug)]
pub struct Kv {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    Runs(RunsKv),
    Sled(SledKv),
    /// A read-only log's store: the runs store under a layer in memory (`overlay`).
    Overlay(OverlayKv),
    /// A store outside the log's directory (`external`).
    External(Arc<dyn ProjectionStore>),
    #[cfg(feature = "kv-compare")]
    Fjall(fjall_store::FjallKv),
    #[cfg(feature = "kv-compare")]
    Redb(redb_store::RedbKv),
}

/// The stores [`Kv::open_for_comparison`] opens (feature `kv-compare`).
#[cfg(feature = "kv-compare")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComparedStore {
    /// The run files of the default backend.
    Runs,
    /// A fjall database; every `apply` persisted (`fdatasync`) before it returns.
    Fjall,
    /// A redb database; every `apply` one transaction of durability `Immediate`.
    Redb,
}

/// The iterator of [`Kv::scan_prefix`], whichever the backend.
enum Scan<'a, R, S> {
    Runs(R),
    Sled(S),
    Overlay(Box<overlay::OverlayScan>),
    /// An external store's scan, or a compared store's (feature `kv-compare`).
    Boxed(KvScan<'a>),
}

impl<R, S> Iterator for Scan<'_, R, S>
where
    R: Iterator<Item = Result<(Vec<u8>, Vec<u8>), LogError>>,
    S: Iterator<Item = Result<(Vec<u8>, Vec<u8>), LogError>>,
{
    type Item = Result<(Vec<u8>, Vec<u8>), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Scan::Runs(r) => r.next(),
            Scan::Sled(s) => s.next(),
            Scan::Overlay(o) => o.next(),
            Scan::Boxed(b) => b.next(),
        }
    }
}

impl Kv {
    pub(crate) fn runs(store: RunsKv) -> Kv {
        Kv {
            backend: Backend::Runs(store),
        }
    }

    pub(crate) fn overlay(store: OverlayKv) -> Kv {
        Kv {
            backend: Backend::Overlay(store),
        }
    }

    pub(crate) fn sled(store: SledKv) -> Kv {
        Kv {
            backend: Backend::Sled(store),
        }
    }

    /// The projection store `store`, kept outside any log directory (see
    /// [`ProjectionStore`]): for a ledger whose log of record is not a [`crate::Log`].
    pub fn external(store: Arc<dyn ProjectionStore>) -> Kv {
        Kv {
            backend: Backend::External(store),
        }
    }

    /// Opens a store of `which` in `dir` by itself, without a log: for measuring fjall and
    /// redb against the run files on one workload (`tests/kv_open.rs`). A run store that
    /// was unusable starts empty, as at `Log::open`.
    #[cfg(feature = "kv-compare")]
    pub fn open_for_comparison(
        which: ComparedStore,
        dir: &std::path::Path,
    ) -> Result<Kv, LogError> {
        let backend = match which {
            ComparedStore::Runs => Backend::Runs(RunsKv::open(dir)?.0),
            ComparedStore::Fjall => Backend::Fjall(fjall_store::FjallKv::open(dir)?),
            ComparedStore::Redb => Backend::Redb(redb_store::RedbKv::open(dir)?),
        };
        Ok(Kv { backend })
    }

    /// Whether anything was written through the sled backend since the log was
    /// opened (always false with the runs backend, which needs no settling).
    pub(crate) fn sled_was_written(&self) -> bool {
        match &self.backend {
            Backend::Runs(_) | Backend::Overlay(_) | Backend::External(_) => false,
            Backend::Sled(s) => s.was_written(),
            #[cfg(feature = "kv-compare")]
            Backend::Fjall(_) | Backend::Redb(_) => false,
        }
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, LogError> {
        match &self.backend {
            Backend::Runs(r) => r.get(key),
            Backend::Sled(s) => s.get(key),
            Backend::Overlay(o) => o.get(key),
            Backend::External(e) => e.get(key),
            #[cfg(feature = "kv-compare")]
            Backend::Fjall(f) => f.get(key),
            #[cfg(feature = "kv-compare")]
            Backend::Redb(r) => r.get(key),
        }
    }

    /// All (key, value) pairs whose key starts with `prefix`, in key order.
    pub fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), LogError>> + '_ {
        let scan: Scan<'_, RunsScan, _> = match &self.backend {
            Backend::Runs(r) => Scan::Runs(r.scan_prefix(prefix)),
            Backend::Sled(s) => Scan::Sled(s.scan_prefix(prefix)),
            Backend::Overlay(o) => Scan::Overlay(Box::new(o.scan_prefix(prefix))),
            Backend::External(e) => Scan::Boxed(e.scan_prefix(prefix)),
            #[cfg(feature = "kv-compare")]
            Backend::Fjall(f) => Scan::Boxed(Box::new(f.scan_prefix(prefix))),
            #[cfg(feature = "kv-compare")]
            Backend::Redb(r) => Scan::Boxed(Box::new(r.scan_prefix(prefix))),
        };
        scan
    }

    /// Applies all puts (`Some`) and deletes (`None`) and sets the checkpoint,
    /// atomically: after a crash either all of it is there or none. When a key
    /// is written more than once, the last write counts.
    pub fn apply(
        &self,
        writes: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
        checkpoint: u64,
    ) -> Result<(), LogError> {
        match &self.backend {
            Backend::Runs(r) => r.apply(writes.into_iter().collect(), Some(checkpoint)),
            Backend::Sled(s) => s.apply(writes, checkpoint),
            Backend::Overlay(o) => {
                o.apply(writes.into_iter().collect(), Some(checkpoint));
                Ok(())
            }
            Backend::External(e) => e.apply(writes.into_iter().collect(), Some(checkpoint)),
            #[cfg(feature = "kv-compare")]
            Backend::Fjall(f) => f.apply(writes, Some(checkpoint)),
            #[cfg(feature = "kv-compare")]
            Backend::Redb(r) => r.apply(writes, Some(checkpoint)),
        }
    }

    /// Like [`Kv::apply`], atomic, but leaving the checkpoint as it is: for writing a large
    /// state in several batches, the last of which sets the checkpoint.
    pub fn apply_without_checkpoint(
        &self,
        writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<(), LogError> {
        match &self.backend {
            Backend::Runs(r) => r.apply(writes, None),
            Backend::Sled(s) => s.apply_without_checkpoint(writes),
            Backend::Overlay(o) => {
                o.apply(writes, None);
                Ok(())
            }
            Backend::External(e) => e.apply(writes, None),
            #[cfg(feature = "kv-compare")]
            Backend::Fjall(f) => f.apply(writes, None),
            #[cfg(feature = "kv-compare")]
            Backend::Redb(r) => r.apply(writes, None),
        }
    }

    /// The exclusive end position up to which projections are built; `None`
    /// if they were never built (or were cleared).
    pub fn checkpoint(&self) -> Result<Option<u64>, LogError> {
        match &self.backend {
            Backend::Runs(r) => Ok(r.checkpoint()),
            Backend::Sled(s) => s.checkpoint(),
            Backend::Overlay(o) => Ok(o.checkpoint()),
            Backend::External(e) => e.checkpoint(),
            #[cfg(feature = "kv-compare")]
            Backend::Fjall(f) => f.checkpoint(),
            #[cfg(feature = "kv-compare")]
            Backend::Redb(r) => r.checkpoint(),
        }
    }

    /// Drops all projection data and the checkpoint. The checkpoint goes
    /// first, so a crash part-way leaves no checkpoint and the next start
    /// rebuilds (and clears again).
    pub fn clear(&self) -> Result<(), LogError> {
        match &self.backend {
            Backend::Runs(r) => r.clear(),
            Backend::Sled(s) => s.clear(),
            Backend::Overlay(o) => {
                o.clear();
                Ok(())
            }
            Backend::External(e) => e.clear(),
            #[cfg(feature = "kv-compare")]
            Backend::Fjall(f) => f.clear(),
            #[cfg(feature = "kv-compare")]
            Backend::Redb(r) => r.clear(),
        }
    }

    /// Makes every earlier write durable (with the runs backend they already are).
    pub fn flush(&self) -> Result<(), LogError> {
        match &self.backend {
            Backend::Runs(_) | Backend::Overlay(_) => Ok(()),
            Backend::Sled(s) => s.flush(),
            Backend::External(e) => e.flush(),
            #[cfg(feature = "kv-compare")]
            Backend::Fjall(f) => f.flush(),
            #[cfg(feature = "kv-compare")]
            Backend::Redb(_) => Ok(()),
        }
    }

    /// Whether [`Kv::prefetch`] does anything (a store outside the log's directory): a caller
    /// gathers the keys only then.
    pub fn prefetches(&self) -> bool {
        matches!(self.backend, Backend::External(_))
    }

    /// A hint that `keys` are about to be read (see [`ProjectionStore::prefetch`]): only a
    /// store outside the log's directory acts on it; the others read from local files.
    pub fn prefetch(&self, keys: &[Vec<u8>]) -> Result<(), LogError> {
        match &self.backend {
            Backend::External(e) => e.prefetch(keys),
            _ => Ok(()),
        }
    }

    /// For a reader's store over a database its writer goes on storing to (an external
    /// store opened read-only): reads from a new snapshot from now on, and returns `true`
    /// when the writes it had taken (the reader's catch-up) were dropped because the store's
    /// checkpoint moved; the caller then folds again from the new checkpoint (see
    /// [`ProjectionStore::refresh`]). Every other store reads one snapshot for its life (a
    /// read-only log's) or is its writer's: `false`.
    pub fn refresh_snapshot(&self) -> Result<bool, LogError> {
        match &self.backend {
            Backend::External(e) => e.refresh(),
            _ => Ok(false),
        }
    }

    /// Whether a reader's store over a database lost the connection of its snapshot (see
    /// [`ProjectionStore::snapshot_lost`]): its reads fail until `refresh_snapshot`.
    pub fn snapshot_lost(&self) -> bool {
        match &self.backend {
            Backend::External(e) => e.snapshot_lost(),
            _ => false,
        }
    }
}
