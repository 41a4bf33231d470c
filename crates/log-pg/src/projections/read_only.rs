//! A reader's side of the projections: one snapshot of what the writer stored, under a layer in
//! memory that takes the reader's writes (see `projections`).
//!
//! Invariants as the code holds them: every read of the database between two refreshes is in
//! one `REPEATABLE READ` transaction (one stored state); a key in the layer (a value or a
//! delete) wins over the snapshot; what a prefetch read is answered only in the snapshot it
//! was read in; a refresh whose snapshot holds another checkpoint row than
//! the one before (any store or clear since) empties the layer and says so, unless the new
//! checkpoint lies within what the layer already folded (`keeps_layer`); nothing is ever
//! written to the database. A lost connection fails the reads until the next refresh, which
//! connects again (until `reconnect_within` from the loss: a failover) and takes a new
//! snapshot; it connects outside the view's lock (reads meanwhile fail at once), and refreshes
//! made at once share that one connection and its deadline (`reconnect`).

use std::collections::{BTreeMap, HashMap};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use gongji_log::{KvPair, KvWrite, LogError};
use postgres::Config;

use super::statements::{successor, upper_bound, Conn, Stored, PAGE_ROWS};
use crate::conn::{connect, connection_lost, describe, pg_err, reconnect};
use crate::reconnect::{Reconnecting, Shared};
use crate::schema::{self, PROJECTIONS_SINCE};

const ROLE: &str = "projections reader";

/// The reader's snapshot and its layer.
struct View {
    /// In the snapshot's transaction; `None` once the connection was lost.
    conn: Option<Conn>,
    /// The checkpoint row in the snapshot.
    base: Stored,
    /// Writes since the snapshot was taken; `None` is a delete.
    layer: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// `clear` was called: the snapshot is not read any more.
    base_hidden: bool,
    /// The checkpoint written last to the layer, if any write set one.
    checkpoint: Option<Option<u64>>,
    /// What the last `prefetch` read from the snapshot (`None`: not there); emptied with the
    /// snapshot.
    prefetched: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

/// The view, locked.
type Guard<'a> = MutexGuard<'a, Shared<View>>;

/// The projections of one log, read beside its writer.
pub(crate) struct ReadOnly {
    config: Config,
    log: String,
    /// The snapshot and its layer; the connection made again (by one refresh while the others
    /// wait) for up to `reconnect_within` from its loss.
    view: Reconnecting<View>,
}

impl std::fmt::Debug for ReadOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgProjections")
            .field("log", &self.log)
            .field("read_only", &true)
            .finish_non_exhaustive()
    }
}

/// A connection to a database holding the projections, with a snapshot taken; the checkpoint
/// row in it.
fn snapshot_on(config: &Config, log: &str) -> Result<(Conn, Stored), LogError> {
    snapshot_with(connect(config, log, ROLE)?, log)
}

/// The snapshot taken on `client`, once the schema holds the projections; the checkpoint row.
fn snapshot_with(mut client: postgres::Client, log: &str) -> Result<(Conn, Stored), LogError> {
    let version = schema::check_version(&mut client)?;
    if version < PROJECTIONS_SINCE {
        return Err(LogError::InvalidInput(format!(
            "the database's log schema is version {version}, which holds no projections: open \
             the log once with a writer of this version (it migrates the schema)"
        )));
    }
    let mut conn = Conn::new(client, log)?;
    let stored = begin(&mut conn, log)?;
    Ok((conn, stored))
}

/// Starts the snapshot's transaction and reads the checkpoint row in it (which fixes the
/// snapshot).
fn begin(conn: &mut Conn, log: &str) -> Result<Stored, LogError> {
    let action = format!("taking a snapshot of log {log:?}'s projections");
    conn.client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .map_err(|e| pg_err(&action, &e))?;
    conn.stored(log).map_err(|e| pg_err(&action, &e))?
}

impl ReadOnly {
    pub fn open(
        config: Config,
        log: &str,
        reconnect_within: Duration,
    ) -> Result<ReadOnly, LogError> {
        let (conn, base) = snapshot_on(&config, log)?;
        Ok(ReadOnly {
            config,
            log: log.to_owned(),
            view: Reconnecting::new(
                View {
                    conn: Some(conn),
                    base,
                    layer: BTreeMap::new(),
                    base_hidden: false,
                    checkpoint: None,
                    prefetched: HashMap::new(),
                },
                reconnect_within,
            ),
        })
    }

    fn view(&self) -> Guard<'_> {
        self.view.lock()
    }

    /// Runs `read` in the snapshot; a lost connection is dropped and its loss recorded (the
    /// next refresh connects).
    fn in_snapshot<T>(
        &self,
        view: &mut Shared<View>,
        what: &str,
        read: impl FnOnce(&mut Conn) -> Result<T, postgres::Error>,
    ) -> Result<T, LogError> {
        let action = format!("{what} of log {:?}", self.log);
        let Some(conn) = view.conn.as_mut() else {
            return Err(LogError::Io(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                format!(
                    "PostgreSQL, {action}: the reader's connection was lost; refresh the reader"
                ),
            )));
        };
        match read(conn) {
            Ok(done) => Ok(done),
            Err(e) => {
                if connection_lost(&conn.client, &e) {
                    view.conn = None;
                    view.lost(|| describe(&e));
                }
                Err(pg_err(&action, &e))
            }
        }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, LogError> {
        let mut view = self.view();
        if let Some(found) = view.layer.get(key) {
            return Ok(found.clone());
        }
        if view.base_hidden {
            return Ok(None);
        }
        if let Some(found) = view.prefetched.get(key) {
            return Ok(found.clone());
        }
        self.in_snapshot(&mut view, "reading a projection", |conn| {
            conn.get(&self.log, key)
        })
    }

    /// Reads `keys` from the snapshot in one query (those the layer holds are not asked
    /// for); the `get`s that follow answer from it until the next prefetch or refresh.
    pub fn prefetch(&self, keys: &[Vec<u8>]) -> Result<(), LogError> {
        let mut view = self.view();
        view.prefetched.clear();
        if view.base_hidden {
            return Ok(());
        }
        let wanted: Vec<Vec<u8>> = keys
            .iter()
            .filter(|key| !view.layer.contains_key(*key))
            .cloned()
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let found = self.in_snapshot(&mut view, "reading projections", |conn| {
            conn.get_many(&self.log, &wanted)
        })?;
        let mut prefetched: HashMap<Vec<u8>, Option<Vec<u8>>> =
            wanted.into_iter().map(|key| (key, None)).collect();
        prefetched.extend(found.into_iter().map(|(key, value)| (key, Some(value))));
        view.prefetched = prefetched;
        Ok(())
    }

    /// The pairs under `prefix`, in key order, the layer winning (collected, as the file log's
    /// reader does: a reader's scans are of one region or one kind of entity).
    pub fn scan_prefix(&self, prefix: &[u8]) -> Vec<Result<KvPair, LogError>> {
        let mut view = self.view();
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        if !view.base_hidden {
            let upper = upper_bound(prefix);
            let mut from = Some(prefix.to_vec());
            while let Some(start) = from.take() {
                let page = self.in_snapshot(&mut view, "scanning the projections", |conn| {
                    conn.page(&self.log, &start, upper.as_deref())
                });
                let page = match page {
                    Ok(page) => page,
                    Err(e) => return vec![Err(e)],
                };
                if page.len() as i64 == PAGE_ROWS {
                    from = page.last().map(|(key, _)| successor(key));
                }
                merged.extend(page.into_iter().map(|(key, value)| (key, Some(value))));
            }
        }
        let written = view
            .layer
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix));
        merged.extend(written.map(|(key, value)| (key.clone(), value.clone())));
        merged
            .into_iter()
            .filter_map(|(key, value)| Some(Ok((key, value?))))
            .collect()
    }

    pub fn checkpoint(&self) -> Result<Option<u64>, LogError> {
        let view = self.view();
        Ok(match view.checkpoint {
            Some(checkpoint) => checkpoint,
            None if view.base_hidden => None,
            None => view.base.checkpoint,
        })
    }

    /// Takes `writes` into the layer (the last write of a key counts); sets the layer's
    /// checkpoint if one is given.
    pub fn apply(&self, writes: Vec<KvWrite>, checkpoint: Option<u64>) {
        let mut view = self.view();
        view.layer.extend(writes);
        if checkpoint.is_some() {
            view.checkpoint = Some(checkpoint);
        }
    }

    /// Empties the layer and hides the snapshot: the store holds nothing, and no checkpoint.
    pub fn clear(&self) {
        let mut view = self.view();
        view.layer.clear();
        view.prefetched.clear();
        view.base_hidden = true;
        view.checkpoint = Some(None);
    }

    /// A snapshot on a new connection, the old one lost: made outside the view's lock (the
    /// reads go on meanwhile, failing as the snapshot is lost), tried every `RECONNECT_PAUSE`
    /// until `reconnect_within` from the loss (a failover), while other refreshes wait for it;
    /// anything after the connection (the schema, the snapshot) fails at once.
    fn snapshot_again<'a>(
        &'a self,
        mut view: Guard<'a>,
    ) -> (Guard<'a>, Result<(Conn, Stored), LogError>) {
        view.conn = None;
        view.lost(|| "closed".into());
        self.view.connect_outside(view, |until| {
            snapshot_with(reconnect(&self.config, &self.log, ROLE, until)?, &self.log)
        })
    }

    /// Whether the snapshot's connection was lost: every read fails until [`ReadOnly::refresh`].
    pub fn snapshot_lost(&self) -> bool {
        self.view.lock().conn.is_none()
    }

    /// Ends the snapshot and takes a new one (on a new connection if the old one was lost).
    /// Returns whether the layer was emptied: see [`keeps_layer`] for when it is kept.
    pub fn refresh(&self) -> Result<bool, LogError> {
        let action = format!("taking a snapshot of log {:?}'s projections", self.log);
        let mut view = self.view.lock_settled(&action)?;
        let mut ended = None;
        if let Some(mut conn) = view.conn.take() {
            match conn.client.batch_execute("COMMIT") {
                Ok(()) => ended = Some(conn),
                Err(e) => self.found_lost(&mut view, pg_err(&action, &e))?,
            }
        }
        if let Some(mut conn) = ended {
            match begin(&mut conn, &self.log) {
                Ok(stored) => return Ok(take_snapshot(&mut view, conn, stored)),
                Err(e) if conn.client.is_closed() => self.found_lost(&mut view, e)?,
                Err(e) => return Err(e),
            }
        }
        let (mut view, made) = self.snapshot_again(view);
        let (conn, stored) = made?;
        Ok(take_snapshot(&mut view, conn, stored))
    }

    /// Records the loss a refresh found (`error`); `Err` if it is not to be ridden out (a
    /// window of zero).
    fn found_lost(&self, view: &mut Shared<View>, error: LogError) -> Result<(), LogError> {
        let deadline = view.lost(|| error.to_string());
        match Instant::now() >= deadline {
            true => Err(error),
            false => Ok(()),
        }
    }
}

/// Puts the new snapshot `conn` (whose checkpoint row is `stored`) in place of the old one;
/// returns whether the layer was emptied (see [`keeps_layer`]).
fn take_snapshot(view: &mut View, conn: Conn, stored: Stored) -> bool {
    view.conn = Some(conn);
    view.prefetched.clear();
    if stored == view.base {
        return false;
    }
    let keep = keeps_layer(view, stored.checkpoint);
    view.base = stored;
    if keep {
        return false;
    }
    view.layer.clear();
    view.base_hidden = false;
    view.checkpoint = None;
    true
}

/// Whether the layer stays over a new snapshot whose checkpoint is `new`: only when `new` lies
/// between the old snapshot's checkpoint and the end the layer's writes reach, both
/// excluded at the top. The reader then folded every record between the two snapshots'
/// checkpoints, so every entity they changed is in its layer (or its ledger's cache) as of
/// its own end, and every other entity is the same in both snapshots: nothing is folded
/// twice. Otherwise the layer goes: a new checkpoint at the layer's end holds all of it (the
/// reader's memory is freed, nothing to fold again); one beyond it holds entities the reader
/// would fold again; one before the old snapshot's (or none) is a store rebuilt or cleared.
fn keeps_layer(view: &View, new: Option<u64>) -> bool {
    let (Some(new), Some(old)) = (new, view.base.checkpoint) else {
        return false;
    };
    let reached = match view.checkpoint {
        Some(layer) => layer,
        None => Some(old),
    };
    !view.base_hidden && old <= new && reached.is_some_and(|end| new < end)
}
