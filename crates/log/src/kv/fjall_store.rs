//! fjall behind the [`Kv`](crate::Kv) API, for measuring it against the run files
//! (`tests/kv_open.rs`, feature `kv-compare`). Not a backend `Log::open` offers.
//!
//! Layout: the user's keys and values in the keyspace `data`; the checkpoint (u64 BE) under
//! the key `c` in the keyspace `meta`. A write batch spanning both keyspaces is atomic, and
//! every `apply` is persisted with `fdatasync` before it returns, as the run files are.

use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::LogError;

const CHECKPOINT_KEY: &[u8] = b"c";

fn err(e: impl std::fmt::Display) -> LogError {
    LogError::Index(format!("fjall: {e}"))
}

/// The projection store in a fjall database. Clones share it.
#[derive(Clone)]
pub(crate) struct FjallKv {
    db: Database,
    data: Keyspace,
    meta: Keyspace,
}

impl std::fmt::Debug for FjallKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallKv").finish_non_exhaustive()
    }
}

impl FjallKv {
    pub(crate) fn open(dir: &Path) -> Result<FjallKv, LogError> {
        let db = Database::builder(dir).open().map_err(err)?;
        let data = db
            .keyspace("data", KeyspaceCreateOptions::default)
            .map_err(err)?;
        let meta = db
            .keyspace("meta", KeyspaceCreateOptions::default)
            .map_err(err)?;
        Ok(FjallKv { db, data, meta })
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, LogError> {
        Ok(self.data.get(key).map_err(err)?.map(|v| v.to_vec()))
    }

    pub(crate) fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), LogError>> + '_ {
        self.data.prefix(prefix).map(|guard| {
            let (key, value) = guard.into_inner().map_err(err)?;
            Ok((key.to_vec(), value.to_vec()))
        })
    }

    /// One atomic batch of the writes and (if given) the checkpoint, persisted when it returns.
    pub(crate) fn apply(
        &self,
        writes: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
        checkpoint: Option<u64>,
    ) -> Result<(), LogError> {
        let mut batch = self.db.batch();
        for (key, value) in writes {
            match value {
                Some(value) => batch.insert(&self.data, key, value),
                None => batch.remove(&self.data, key),
            }
        }
        if let Some(checkpoint) = checkpoint {
            batch.insert(
                &self.meta,
                CHECKPOINT_KEY,
                checkpoint.to_be_bytes().to_vec(),
            );
        }
        batch.commit().map_err(err)?;
        self.flush()
    }

    pub(crate) fn checkpoint(&self) -> Result<Option<u64>, LogError> {
        let Some(bytes) = self.meta.get(CHECKPOINT_KEY).map_err(err)? else {
            return Ok(None);
        };
        let bytes: [u8; 8] = bytes
            .as_ref()
            .try_into()
            .map_err(|_| LogError::Index(format!("fjall: checkpoint has {} bytes", bytes.len())))?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }

    /// The checkpoint goes first (persisted), then the data.
    pub(crate) fn clear(&self) -> Result<(), LogError> {
        self.meta.remove(CHECKPOINT_KEY).map_err(err)?;
        self.flush()?;
        self.data.clear().map_err(err)?;
        self.flush()
    }

    pub(crate) fn flush(&self) -> Result<(), LogError> {
        self.db.persist(PersistMode::SyncData).map_err(err)
    }
}
