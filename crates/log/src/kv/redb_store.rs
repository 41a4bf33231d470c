//! redb behind the [`Kv`](crate::Kv) API, for measuring it against the run files
//! (`tests/kv_open.rs`, feature `kv-compare`). Not a backend `Log::open` offers.
//!
//! Layout: one file `DIR/redb`; the user's keys and values in the table `data`, the
//! checkpoint in the table `meta` under `c`. Each `apply` is one write transaction with
//! redb's default durability (`Immediate`: durable when `commit` returns), as the run files are.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, TableDefinition};

use crate::LogError;

const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");
const META: TableDefinition<&[u8], u64> = TableDefinition::new("meta");
const CHECKPOINT_KEY: &[u8] = b"c";

fn err(e: impl std::fmt::Display) -> LogError {
    LogError::Index(format!("redb: {e}"))
}

/// The projection store in a redb database. Clones share it.
#[derive(Clone)]
pub(crate) struct RedbKv {
    db: Arc<Database>,
}

impl std::fmt::Debug for RedbKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbKv").finish_non_exhaustive()
    }
}

impl RedbKv {
    pub(crate) fn open(dir: &Path) -> Result<RedbKv, LogError> {
        std::fs::create_dir_all(dir).map_err(|e| crate::error::io_err("creating", dir, e))?;
        let db = Database::create(dir.join("redb")).map_err(err)?;
        // Both tables exist from the start, so readers never find one missing.
        let txn = db.begin_write().map_err(err)?;
        txn.open_table(DATA).map_err(err)?;
        txn.open_table(META).map_err(err)?;
        txn.commit().map_err(err)?;
        Ok(RedbKv { db: Arc::new(db) })
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, LogError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(DATA).map_err(err)?;
        Ok(table.get(key).map_err(err)?.map(|v| v.value().to_vec()))
    }

    pub(crate) fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), LogError>> + '_ {
        let range = self
            .db
            .begin_read()
            .map_err(err)
            .and_then(|txn| txn.open_table(DATA).map_err(err))
            .and_then(|table| table.range(prefix..).map_err(err));
        let (range, first_error) = match range {
            Ok(range) => (Some(range), None),
            Err(e) => (None, Some(Err(e))),
        };
        let prefix = prefix.to_vec();
        first_error.into_iter().chain(
            range
                .into_iter()
                .flatten()
                .map(|item| {
                    let (k, v) = item.map_err(err)?;
                    Ok((k.value().to_vec(), v.value().to_vec()))
                })
                .take_while(move |item| {
                    item.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix))
                }),
        )
    }

    /// One write transaction: the writes and (if given) the checkpoint, durable at commit.
    pub(crate) fn apply(
        &self,
        writes: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
        checkpoint: Option<u64>,
    ) -> Result<(), LogError> {
        let txn = self.db.begin_write().map_err(err)?;
        {
            let mut data = txn.open_table(DATA).map_err(err)?;
            for (key, value) in writes {
                match value {
                    Some(value) => data.insert(key.as_slice(), value.as_slice()).map(drop),
                    None => data.remove(key.as_slice()).map(drop),
                }
                .map_err(err)?;
            }
            if let Some(checkpoint) = checkpoint {
                let mut meta = txn.open_table(META).map_err(err)?;
                meta.insert(CHECKPOINT_KEY, checkpoint).map_err(err)?;
            }
        }
        txn.commit().map_err(err)
    }

    pub(crate) fn checkpoint(&self) -> Result<Option<u64>, LogError> {
        let txn = self.db.begin_read().map_err(err)?;
        let meta = txn.open_table(META).map_err(err)?;
        Ok(meta.get(CHECKPOINT_KEY).map_err(err)?.map(|v| v.value()))
    }

    /// The checkpoint and the data in one transaction (atomic in redb).
    pub(crate) fn clear(&self) -> Result<(), LogError> {
        let txn = self.db.begin_write().map_err(err)?;
        {
            txn.open_table(META)
                .map_err(err)?
                .remove(CHECKPOINT_KEY)
                .map_err(err)?;
            txn.delete_table(DATA).map_err(err)?;
            txn.open_table(DATA).map_err(err)?;
        }
        txn.commit().map_err(err)
    }
}
