//! The seam for projection stores kept outside this crate ([`ProjectionStore`], behind
//! [`Kv::external`](crate::Kv::external)): a store in a database the log of record shares
//! (`gongji-log-pg`'s `PgProjections`), for a ledger whose log is not in a directory.
//!
//! What [`Kv`](crate::Kv) asks of a store is exactly what the projection layer uses: point
//! reads, prefix scans in key order, atomic batches of puts and deletes that may carry the
//! checkpoint, the checkpoint, clearing, and making writes durable. A store kept beside a
//! writer by a reader may also move the snapshot it reads ([`ProjectionStore::refresh`]), and
//! a store whose reads are round trips may read the keys a catch-up is about to read at once
//! ([`ProjectionStore::prefetch`]).
//!
//! Not for: anything that cannot be rebuilt from the log. Invariants every implementation
//! keeps (the tests of `gongji-log-pg` check them against the runs store): `apply` is atomic
//! (all of a batch and its checkpoint, or none of it), the last write of a key in a batch
//! counts, a scan yields keys in byte order, and a checkpoint is stored only with (or after)
//! the writes it covers.

use std::fmt::Debug;

use crate::LogError;

/// A key and its value, as a scan yields them.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// A put (`Some`) or a delete (`None`) of a key.
pub type KvWrite = (Vec<u8>, Option<Vec<u8>>);

/// The iterator of [`ProjectionStore::scan_prefix`].
pub type KvScan<'a> = Box<dyn Iterator<Item = Result<KvPair, LogError>> + 'a>;

/// A projection store kept outside the log's directory, as [`Kv`](crate::Kv) uses it. Shared
/// by clones of the `Kv` and by the ledger's background writer: every method takes `&self`.
pub trait ProjectionStore: Debug + Send + Sync {
    /// The value stored under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, LogError>;

    /// All (key, value) pairs whose key starts with `prefix`, in byte order of the keys.
    fn scan_prefix(&self, prefix: &[u8]) -> KvScan<'_>;

    /// Applies every put and delete (the last write of a key counts) and, if given, sets the
    /// checkpoint, atomically: after a crash or a lost connection either all of it is stored
    /// or none.
    fn apply(&self, writes: Vec<KvWrite>, checkpoint: Option<u64>) -> Result<(), LogError>;

    /// The exclusive end position up to which the projections are built; `None` if they were
    /// never built (or were cleared).
    fn checkpoint(&self) -> Result<Option<u64>, LogError>;

    /// Drops every projection and the checkpoint, atomically.
    fn clear(&self) -> Result<(), LogError>;

    /// Makes every earlier write durable (a store whose `apply` is durable when it returns
    /// has nothing to do).
    fn flush(&self) -> Result<(), LogError> {
        Ok(())
    }

    /// A hint that `keys` are about to be read one by one (a catch-up about to fold a chunk
    /// of records): a store whose reads are round trips may read them at once, and answer
    /// the `get`s that follow from what it read, until its snapshot or contents change. The
    /// default does nothing.
    fn prefetch(&self, keys: &[Vec<u8>]) -> Result<(), LogError> {
        let _ = keys;
        Ok(())
    }

    /// For a store read beside its writer, whose writer goes on storing: reads from a new
    /// snapshot of the store from now on. Returns `true` when what the reader had written
    /// over the old snapshot was dropped (the store moved somewhere the reader's writes
    /// cannot be kept over): the caller then drops whatever it derived from it and folds
    /// again from the new checkpoint. `false` when the writes were kept: the store did not
    /// move, or its new checkpoint lies within what the reader's writes already folded (past
    /// the old one, before the end the reader's writes set). A store whose snapshot never
    /// moves (the default) returns `false`.
    fn refresh(&self) -> Result<bool, LogError> {
        Ok(false)
    }

    /// For a store read beside its writer: whether the connection its snapshot was read on is
    /// lost, so that every read fails until [`refresh`](ProjectionStore::refresh) connects
    /// again. Cheap (no round trip). A store that cannot lose one (the default): `false`.
    fn snapshot_lost(&self) -> bool {
        false
    }
}
