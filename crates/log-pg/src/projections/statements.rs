//! A connection to the projections' tables with its read statements prepared once (a
//! statement sent as text is parsed on every call: one more round trip per read), and the
//! reads both sides make: one key, many keys at once, one page of a prefix scan, the
//! checkpoint row.
//!
//! Invariant as the code holds it: a page holds keys in byte order (`bytea` compares as the
//! bytes do), starting at the key it is asked from, all under the prefix's upper bound.

use gongji_log::{KvPair, LogError};
use postgres::{Client, Config, Statement};

use crate::conn::{connect, pg_err, to_u64};

/// Rows a scan reads at a time.
pub(super) const PAGE_ROWS: i64 = 10_000;

/// The checkpoint row of a log: the checkpoint and how many stores wrote it (`None`: no row,
/// nothing was ever stored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Stored {
    pub checkpoint: Option<u64>,
    pub stores: i64,
}

/// A connection with the read statements prepared.
pub(super) struct Conn {
    pub client: Client,
    get: Statement,
    get_many: Statement,
    page_to: Statement,
    page_open: Statement,
    stored: Statement,
}

impl Conn {
    /// Connects as `gongji-log LOG ROLE pid PID` and prepares the statements.
    pub fn open(config: &Config, log: &str, role: &str) -> Result<Conn, LogError> {
        Conn::new(connect(config, log, role)?, log)
    }

    /// The statements prepared on `client` (its database must hold the projections' tables).
    pub fn new(mut client: Client, log: &str) -> Result<Conn, LogError> {
        let mut prepare = |text: &str| {
            client.prepare(text).map_err(|e| {
                pg_err(
                    &format!("preparing the reads of log {log:?}'s projections"),
                    &e,
                )
            })
        };
        let get = prepare("SELECT value FROM gongji_projections WHERE log = $1 AND key = $2")?;
        let get_many =
            prepare("SELECT key, value FROM gongji_projections WHERE log = $1 AND key = ANY($2)")?;
        let page_to = prepare(
            "SELECT key, value FROM gongji_projections \
             WHERE log = $1 AND key >= $2 AND key < $3 ORDER BY key LIMIT $4",
        )?;
        let page_open = prepare(
            "SELECT key, value FROM gongji_projections \
             WHERE log = $1 AND key >= $2 ORDER BY key LIMIT $3",
        )?;
        let stored =
            prepare("SELECT checkpoint, stores FROM gongji_projection_checkpoints WHERE log = $1")?;
        Ok(Conn {
            client,
            get,
            get_many,
            page_to,
            page_open,
            stored,
        })
    }

    pub fn get(&mut self, log: &str, key: &[u8]) -> Result<Option<Vec<u8>>, postgres::Error> {
        let row = self.client.query_opt(&self.get, &[&log, &key])?;
        Ok(row.map(|row| row.get(0)))
    }

    /// The entries of `keys` the table holds (any order).
    pub fn get_many(
        &mut self,
        log: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<KvPair>, postgres::Error> {
        let rows = self.client.query(&self.get_many, &[&log, &keys])?;
        Ok(rows
            .into_iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }

    /// Up to [`PAGE_ROWS`] entries from key `from` on, below `upper` if there is one.
    pub fn page(
        &mut self,
        log: &str,
        from: &[u8],
        upper: Option<&[u8]>,
    ) -> Result<Vec<KvPair>, postgres::Error> {
        let rows = match upper {
            Some(upper) => self
                .client
                .query(&self.page_to, &[&log, &from, &upper, &PAGE_ROWS])?,
            None => self
                .client
                .query(&self.page_open, &[&log, &from, &PAGE_ROWS])?,
        };
        Ok(rows
            .into_iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }

    /// The log's checkpoint row as this connection sees it.
    pub fn stored(&mut self, log: &str) -> Result<Result<Stored, LogError>, postgres::Error> {
        let Some(row) = self.client.query_opt(&self.stored, &[&log])? else {
            return Ok(Ok(Stored {
                checkpoint: None,
                stores: 0,
            }));
        };
        let checkpoint: Option<i64> = row.get(0);
        let checkpoint = checkpoint.map(|c| to_u64(c, "the projection checkpoint"));
        Ok(match checkpoint.transpose() {
            Ok(checkpoint) => Ok(Stored {
                checkpoint,
                stores: row.get(1),
            }),
            Err(why) => Err(LogError::Index(format!(
                "log {log:?}'s projection checkpoint row: {why}"
            ))),
        })
    }
}

/// The least key above every key starting with `prefix`; `None` when there is none (an empty
/// prefix, or one of `0xff` bytes only): the scan then has no upper bound.
pub(super) fn upper_bound(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut upper = prefix.to_vec();
    while let Some(last) = upper.pop() {
        if last < u8::MAX {
            upper.push(last + 1);
            return Some(upper);
        }
    }
    None
}

/// The least key after `key`: the next page starts there.
pub(super) fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_upper_bound_is_the_least_key_above_all_keys_under_it() {
        assert_eq!(upper_bound(b"m/"), Some(b"m0".to_vec()));
        assert_eq!(upper_bound(&[b'r', 0xff]), Some(b"s".to_vec()));
        assert_eq!(upper_bound(&[0xff, 0xff]), None);
        assert_eq!(upper_bound(b""), None);
        assert_eq!(successor(b"ab"), b"ab\0".to_vec());
    }
}
