//! What auditors run: a replay with a digest of the whole projection state and per-region totals,
//! and a verification of the log's integrity, the projections and the ledger's invariants.

use std::collections::BTreeMap;

use gongji_domain::state::admissible;
use gongji_domain::state::Fund;
use gongji_domain::{evolve, EntityRef, Event, State};
use serde::Serialize;

use crate::store::Entry;
use crate::views::FundFigures;
use crate::{store, Ledger, LedgerError};

/// A region's funds and personal accounts, each as inflows, outflows and balance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionTotals {
    pub region: String,
    pub pooled: FundFigures,
    pub large_amount: FundFigures,
    pub accounts: FundFigures,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayReport {
    pub records: u64,
    /// blake3 of every projection entry in key order: the same log gives the same digest on
    /// any machine, any number of times.
    pub digest: String,
    pub regions: Vec<RegionTotals>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// The log position of the first record that fails, where one is to blame.
    pub position: Option<u64>,
    pub check: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    pub records: u64,
    pub digest: String,
    pub failure: Option<Failure>,
}

/// The digest of projection entries given in key order: blake3 of each entry's key and value,
/// each after its length. The bytes are handed to blake3 a buffer at a time, not an entry at a
/// time: an input of many chunks is hashed several chunks at once (SIMD), a small one a block
/// at a time. The digest is the same either way.
pub fn digest_of<'e>(entries: impl Iterator<Item = (&'e [u8], &'e [u8])>) -> String {
    const BUFFER_BYTES: usize = 64 * 1024;
    let mut hasher = blake3::Hasher::new();
    let mut buffer = Vec::with_capacity(BUFFER_BYTES);
    for (key, value) in entries {
        buffer.extend_from_slice(&(key.len() as u64).to_le_bytes());
        buffer.extend_from_slice(key);
        buffer.extend_from_slice(&(value.len() as u64).to_le_bytes());
        buffer.extend_from_slice(value);
        if buffer.len() >= BUFFER_BYTES {
            hasher.update(&buffer);
            buffer.clear();
        }
    }
    hasher.update(&buffer);
    hasher.finalize().to_hex().to_string()
}

/// Per-region totals from projection entries (funds under `f/p/`, `f/l/`, accounts under `a/`).
pub fn totals_of<'e>(
    entries: impl Iterator<Item = (&'e [u8], &'e [u8])>,
) -> Result<Vec<RegionTotals>, LedgerError> {
    let mut regions: BTreeMap<String, [Fund; 3]> = BTreeMap::new();
    for (key, value) in entries {
        let (slot, region) = if let Some(region) = key.strip_prefix(b"f/p/") {
            (0, region)
        } else if let Some(region) = key.strip_prefix(b"f/l/") {
            (1, region)
        } else if let Some(region) = key.strip_prefix(b"a/") {
            (2, region)
        } else {
            continue;
        };
        let fund = store::decode_fund(key, value)?;
        let region = String::from_utf8_lossy(region).into_owned();
        regions.entry(region).or_default()[slot] = fund;
    }
    Ok(regions
        .into_iter()
        .map(|(region, [pooled, large, accounts])| RegionTotals {
            region,
            pooled: FundFigures::of(&pooled),
            large_amount: FundFigures::of(&large),
            accounts: FundFigures::of(&accounts),
        })
        .collect())
}

/// Folds events into a complete state while checking the ledger's invariants: positions
/// strictly increasing, each record on its event's own stream, each event admissible in the
/// state before it (`gongji_domain::state::admissible`: figures within bounds, no balance ever
/// negative, every settlement adding up, reversals mirroring their originals, running totals
/// bounded), and money conserved over every atomic unit. The one fold of a log the ledger did
/// not just decide: `audit verify`, `audit check` and `audit import` all run it.
#[derive(Default)]
pub struct InvariantFold {
    pub state: State,
    next_position: Option<u64>,
    /// External money in minus out, and what the accounts and funds hold, since the start, in
    /// fen. Summed over every region, so wider than `Money`: each region's totals are bounded
    /// by `TOTAL_FEN_MAX`, their sum over hundreds of regions is not bounded by `i64`.
    net_external_fen: i128,
    held_fen: i128,
    pub records: u64,
}

impl InvariantFold {
    /// Folds one record; the first broken invariant is returned as a failure naming it. The
    /// record's stream must be the one its event belongs to, and the event must be admissible
    /// in the state before it (`gongji_domain::state::admissible`: figures within bounds,
    /// balances never negative, settlements adding up, reversals mirroring their originals,
    /// running totals bounded); then it is folded with `evolve`, which cannot panic on it.
    pub fn fold(
        &mut self,
        position: u64,
        stream: &str,
        event: &Event,
        unit_end: bool,
    ) -> Result<(), Failure> {
        let fail = |check: &'static str, message: String| Failure {
            position: Some(position),
            check,
            message,
        };
        if let Some(expected) = self.next_position {
            if position != expected {
                return Err(fail(
                    "positions",
                    format!(
                        "record at position {position} follows position {}",
                        expected - 1
                    ),
                ));
            }
        }
        self.next_position = Some(position + 1);
        check_stream(stream, event).map_err(|message| fail("stream", message))?;
        admissible(&self.state, event).map_err(|why| fail(why.check, why.message))?;
        let before = held_by(&self.state, event);
        evolve(&mut self.state, event);
        self.state.dirty.clear();
        let (inflow, outflow) = event.external_flow();
        self.net_external_fen += i128::from(inflow.fen()) - i128::from(outflow.fen());
        self.held_fen += held_by(&self.state, event) - before;
        if unit_end && self.held_fen != self.net_external_fen {
            return Err(fail(
                "conservation",
                format!(
                    "after this unit the accounts and funds hold {}, but {} net entered the ledger",
                    yuan(self.held_fen),
                    yuan(self.net_external_fen)
                ),
            ));
        }
        self.records += 1;
        Ok(())
    }

    pub fn finish(&self) -> Result<(), Failure> {
        if self.held_fen != self.net_external_fen {
            return Err(Failure {
                position: None,
                check: "conservation",
                message: format!(
                    "the accounts and funds hold {}, but {} net entered the ledger",
                    yuan(self.held_fen),
                    yuan(self.net_external_fen)
                ),
            });
        }
        Ok(())
    }
}

/// A sum of fen as yuan, as `Money` shows an amount.
pub(crate) fn yuan(fen: i128) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let fen = fen.unsigned_abs();
    format!("{sign}{}.{:02}", fen / 100, fen % 100)
}

/// What the accounts and funds an event touches hold, in fen.
fn held_by(state: &State, event: &Event) -> i128 {
    event
        .entities()
        .map(|key| match key {
            EntityRef::Member(id) => state
                .members
                .get(id)
                .map_or(0, |m| i128::from(m.balance.fen())),
            EntityRef::Fund(kind, region) => i128::from(state.fund(kind, region).balance().fen()),
            _ => 0,
        })
        .sum()
}

/// A record's stream name within the log's bound, and the stream its event belongs to.
pub fn check_stream(stream: &str, event: &Event) -> Result<(), String> {
    if stream.is_empty() || stream.len() > gongji_log::MAX_STREAM_BYTES {
        return Err(format!(
            "stream name of {} bytes, over the limit of {} (or empty)",
            stream.len(),
            gongji_log::MAX_STREAM_BYTES
        ));
    }
    let own = event.stream_ref();
    if !own.is_named(stream) {
        return Err(format!(
            "the {} event is filed on stream {stream}, but it belongs to stream {}",
            event.kind(),
            own.name()
        ));
    }
    Ok(())
}

impl Ledger {
    /// The digest of the live projections.
    pub fn digest(&self) -> Result<String, LedgerError> {
        let entries = self.projection_entries()?;
        Ok(digest_of(
            entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
        ))
    }

    /// Per-region totals from the live projections: the account totals (`a/`) and the funds
    /// (`f/`), read without the rest.
    pub fn totals(&self) -> Result<Vec<RegionTotals>, LedgerError> {
        self.store_unstored()?;
        let mut entries = self.stored_entries_under(b"a/")?;
        entries.extend(self.stored_entries_under(b"f/")?);
        totals_of(entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
    }

    /// Every stored entity (not the store's schema mark, which a fold in memory has not).
    fn projection_entries(&self) -> Result<Vec<Entry>, LedgerError> {
        self.store_unstored()?;
        let mut entries = self.stored_entries_under(b"")?;
        entries.retain(|(key, _)| !store::is_schema_mark(key));
        Ok(entries)
    }

    /// The store's entries under `prefix` (what `store_unstored` has handed it).
    fn stored_entries_under(&self, prefix: &[u8]) -> Result<Vec<Entry>, LedgerError> {
        self.kv
            .scan_prefix(prefix)
            .map(|e| e.map_err(LedgerError::from))
            .collect()
    }

    /// Rebuilds every projection from the first record, then reports the digest and totals.
    pub fn audit_replay(
        &mut self,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<ReplayReport, LedgerError> {
        let records = self.rebuild(progress)?;
        Ok(ReplayReport {
            records,
            digest: self.digest()?,
            regions: self.totals()?,
        })
    }

    /// `audit replay`'s report without touching the stored projections: the durable log folded
    /// afresh in memory (as [`Ledger::rebuild`] folds it), its digest and totals. What a reader
    /// beside the writer runs (the service's `GET /v1/audit/replay`); works read-only.
    pub fn audit_replay_in_memory(
        &self,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<ReplayReport, LedgerError> {
        let to = self.log.durable_end();
        let workers = 2 * std::thread::available_parallelism().map_or(1, |n| n.get());
        let folded = crate::replay::fold_parallel(self.log.as_ref(), to, workers, progress)?;
        let entries = folded.entries();
        folded.drop_aside();
        let entries = entries?;
        let pairs = || entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice()));
        Ok(ReplayReport {
            records: to,
            digest: digest_of(pairs()),
            regions: totals_of(pairs())?,
        })
    }

    /// Checks every record's checksum and the hash chain, folds the whole log checking the
    /// invariants, and compares the live projections with that fresh fold. Stops at the first
    /// failure and names it. The fold is held in memory.
    pub fn audit_verify(
        &self,
        progress: &mut dyn FnMut(&'static str, u64, u64),
    ) -> Result<VerifyReport, LedgerError> {
        let digest = self.digest()?;
        let (records, failure) = self.verify_steps(progress)?;
        Ok(VerifyReport {
            records,
            digest,
            failure,
        })
    }

    /// `audit verify`'s checks in order: the records checked, and the first failure. Each
    /// phase (`chain`, `invariants`, `projections`) reports its progress, and its whole when
    /// it passes.
    fn verify_steps(
        &self,
        progress: &mut dyn FnMut(&'static str, u64, u64),
    ) -> Result<(u64, Option<Failure>), LedgerError> {
        let log = self.log();
        let end = log.durable_end();
        if let Err(error) = log.verify(&mut |done| progress("chain", done, end)) {
            let (position, failure) = chain_failure(error)?;
            return Ok((position, Some(failure)));
        }
        progress("chain", end, end);
        let fold = match fold_invariants(log, end, progress)? {
            Ok(fold) => fold,
            Err((records, failure)) => return Ok((records, Some(failure))),
        };
        progress("projections", 0, 1);
        let fresh = store::all_entries(&fold.state, &[])?;
        let live = self.projection_entries()?;
        let failure = compare_projections(&fresh, &live);
        if failure.is_none() {
            progress("projections", 1, 1);
        }
        Ok((fold.records, failure))
    }
}

/// A damaged record the log reports, as a failure of the chain check at its position.
fn chain_failure(error: gongji_log::LogError) -> Result<(u64, Failure), LedgerError> {
    match error {
        gongji_log::LogError::Corrupt {
            position, reason, ..
        } => Ok((
            position,
            Failure {
                position: Some(position),
                check: "chain",
                message: reason,
            },
        )),
        other => Err(other.into()),
    }
}

/// Folds records `0..end` checking the invariants record by record; on the first failure, the
/// records folded before it and the failure.
fn fold_invariants(
    log: &dyn gongji_log::DurableLog,
    end: u64,
    progress: &mut dyn FnMut(&'static str, u64, u64),
) -> Result<Result<InvariantFold, (u64, Failure)>, LedgerError> {
    let mut fold = InvariantFold::default();
    for record in log.read_range(0, end)? {
        let record = match record {
            Ok(record) => record,
            Err(error) => return Ok(Err((fold.records, chain_failure(error)?.1))),
        };
        let event = match Event::decode(&record.payload) {
            Ok(event) => event,
            Err(e) => {
                let failure = Failure {
                    position: Some(record.position),
                    check: "decode",
                    message: e.to_string(),
                };
                return Ok(Err((fold.records, failure)));
            }
        };
        if let Err(failure) = fold.fold(record.position, &record.stream, &event, record.unit_end) {
            return Ok(Err((fold.records, failure)));
        }
        if fold.records.is_multiple_of(100_000) {
            progress("invariants", fold.records, end);
        }
    }
    match fold.finish() {
        Ok(()) => {
            progress("invariants", fold.records, end);
            Ok(Ok(fold))
        }
        Err(failure) => Ok(Err((fold.records, failure))),
    }
}

/// The first projection that differs between a fresh fold and the live store (both sorted by
/// key).
fn compare_projections(fresh: &[Entry], live: &[Entry]) -> Option<Failure> {
    let mut live_iter = live.iter();
    for (key, value) in fresh {
        match live_iter.next() {
            Some((live_key, live_value)) if live_key == key && live_value == value => {}
            Some((live_key, _)) if live_key == key => {
                return Some(projection_failure(key, "differs from a fresh rebuild"));
            }
            Some((live_key, _)) if live_key < key => {
                return Some(projection_failure(
                    live_key,
                    "is live but not in a fresh rebuild",
                ));
            }
            _ => {
                return Some(projection_failure(
                    key,
                    "is missing from the live projections",
                ))
            }
        }
    }
    live_iter
        .next()
        .map(|(extra, _)| projection_failure(extra, "is live but not in a fresh rebuild"))
}

fn projection_failure(key: &[u8], what: &str) -> Failure {
    Failure {
        position: None,
        check: "projections",
        message: format!(
            "projection {} {what}; `gongji rebuild` restores it from the log",
            String::from_utf8_lossy(key)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::yuan;
    use gongji_domain::Money;

    #[test]
    fn wide_sums_show_as_money_does() {
        for fen in [0, 5, -5, 123_456, -123_456, i64::MAX, i64::MIN + 1] {
            assert_eq!(yuan(i128::from(fen)), Money::from_fen(fen).to_string());
        }
        // Ten regions at the bound on running totals add up past i64 without a panic.
        let ten_regions = 10 * i128::from(gongji_domain::money::TOTAL_FEN_MAX);
        assert_eq!(yuan(ten_regions), "100000000000000000.00");
    }
}
