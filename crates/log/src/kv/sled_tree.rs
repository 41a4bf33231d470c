//! The sled backend of the projection store ([`crate::ProjectionBackend::Sled`]):
//! one sled tree in the sled database in `DIR/index`.
//!
//! Layout inside the tree: user key `k` is stored as `d | k`; the checkpoint is
//! stored under the one-byte key `c` as a u64 BE. Keeping both in one tree is
//! what makes `apply` atomic with a single `sled::Batch`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::LogError;

const DATA_TAG: u8 = b'd';
const CHECKPOINT_KEY: &[u8] = b"c";

/// The projection store in a sled tree. Writes are atomic per `apply` but
/// durable only after `flush` (sled also flushes on its own about every 500 ms).
#[derive(Clone)]
pub(crate) struct SledKv {
    db: sled::Db,
    name: &'static str,
    /// Replaced by `clear` (which drops the whole tree); shared by clones.
    tree: Arc<RwLock<sled::Tree>>,
    /// Whether anything was written through this store (or a clone) since open.
    written: Arc<AtomicBool>,
}

impl std::fmt::Debug for SledKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledKv").finish_non_exhaustive()
    }
}

/// The puts (`Some`) and deletes (`None`) as one sled batch, under their data keys.
fn batch_of(writes: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>) -> sled::Batch {
    let mut batch = sled::Batch::default();
    for (key, value) in writes {
        let key = data_key(&key);
        match value {
            Some(v) => batch.insert(key, v),
            None => batch.remove(key),
        }
    }
    batch
}

fn data_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.push(DATA_TAG);
    out.extend_from_slice(key);
    out
}

impl SledKv {
    pub(crate) fn new(db: sled::Db, name: &'static str, tree: sled::Tree) -> SledKv {
        SledKv {
            db,
            name,
            tree: Arc::new(RwLock::new(tree)),
            written: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether anything was written through this store since the log was opened.
    pub(crate) fn was_written(&self) -> bool {
        self.written.load(Ordering::Relaxed)
    }

    /// The current tree (a cheap handle).
    fn tree(&self) -> sled::Tree {
        self.tree
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The value stored under `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, LogError> {
        Ok(self.tree().get(data_key(key))?.map(|v| v.to_vec()))
    }

    /// All (key, value) pairs whose key starts with `prefix`, in key order.
    pub(crate) fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), LogError>> + '_ {
        self.tree().scan_prefix(data_key(prefix)).map(|item| {
            let (k, v) = item?;
            let key = k.get(1..).unwrap_or_default().to_vec();
            Ok((key, v.to_vec()))
        })
    }

    /// Applies all puts (`Some`) and deletes (`None`) and sets the checkpoint,
    /// atomically: after a crash either all of it is there or none.
    pub(crate) fn apply(
        &self,
        writes: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
        checkpoint: u64,
    ) -> Result<(), LogError> {
        let mut batch = batch_of(writes);
        batch.insert(CHECKPOINT_KEY, &checkpoint.to_be_bytes()[..]);
        self.written.store(true, Ordering::Relaxed);
        self.tree().apply_batch(batch)?;
        Ok(())
    }

    /// Like [`SledKv::apply`], atomic, but leaving the checkpoint as it is: for writing a large
    /// state in several batches, the last of which sets the checkpoint.
    pub(crate) fn apply_without_checkpoint(
        &self,
        writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<(), LogError> {
        let batch = batch_of(writes);
        self.written.store(true, Ordering::Relaxed);
        self.tree().apply_batch(batch)?;
        Ok(())
    }

    /// The exclusive end position up to which projections are built; `None`
    /// if they were never built (or were cleared).
    pub(crate) fn checkpoint(&self) -> Result<Option<u64>, LogError> {
        match self.tree().get(CHECKPOINT_KEY)? {
            None => Ok(None),
            Some(v) => {
                let bytes: [u8; 8] = v.as_ref().try_into().map_err(|_| {
                    LogError::Index(format!(
                        "projection checkpoint has {} bytes, expected 8",
                        v.len()
                    ))
                })?;
                Ok(Some(u64::from_be_bytes(bytes)))
            }
        }
    }

    /// Drops all projection data and the checkpoint. The checkpoint goes
    /// first, so a crash part-way leaves no checkpoint and the next start
    /// rebuilds (and clears again). The data goes by dropping the whole sled
    /// tree and opening an empty one (sled's `Tree::clear` removes key by key,
    /// which was most of the time of a rebuild).
    pub(crate) fn clear(&self) -> Result<(), LogError> {
        let mut tree = self.tree.write().unwrap_or_else(PoisonError::into_inner);
        self.written.store(true, Ordering::Relaxed);
        tree.remove(CHECKPOINT_KEY)?;
        self.db.drop_tree(self.name)?;
        *tree = self.db.open_tree(self.name)?;
        Ok(())
    }

    /// Makes every earlier write durable.
    pub(crate) fn flush(&self) -> Result<(), LogError> {
        self.db.flush()?;
        Ok(())
    }
}
