//! Rebuilding every projection from the log, on all cores.
//!
//! The log is read once, in order, on the calling thread; its records go in batches to one
//! worker per core, chosen by the entity the record's stream belongs to (a member's stream by
//! the member, a fund's or policy's stream by its region). Each worker folds its share with
//! `evolve` into a state of its own: a member's events, and the transactions and bindings they
//! create, are all in one stream, so they meet in one worker in log order. The states are then
//! merged (the per-region account totals, which every worker adds to, are summed) and written
//! to the projection store once.
//!
//! The reader checks each frame's CRC and position; the hash chain is checked by the workers:
//! every record comes with the hash the next record says it has, and the worker that folds it
//! recomputes its hash and compares (blake3 was two fifths of the reader's work, and the reader
//! is what bounds a replay).

use std::sync::mpsc;

use gongji_domain::{evolve, Event, State};

use crate::LedgerError;

/// Records sent to a worker at a time.
const BATCH_RECORDS: usize = 4096;
/// Batches waiting per worker before the reader waits (bounds memory).
const QUEUE_BATCHES: usize = 8;

/// Which worker folds a stream's records.
fn partition(stream: &str, workers: usize) -> usize {
    let key = stream.split_once('/').map_or(stream, |(_, key)| key);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    (hash % workers as u64) as usize
}

/// Folds records `from..to` of the log into one state, on `workers` threads.
pub(crate) fn fold_parallel(
    log: &gongji_log::Log,
    to: u64,
    workers: usize,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<State, LedgerError> {
    let workers = workers.max(1);
    std::thread::scope(|scope| {
        let mut senders = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (sender, receiver) =
                mpsc::sync_channel::<Vec<(gongji_log::Record, gongji_log::Link)>>(QUEUE_BATCHES);
            senders.push(sender);
            handles.push(scope.spawn(move || -> Result<State, LedgerError> {
                let mut state = State::untracked();
                for batch in receiver {
                    for (record, link) in batch {
                        log.check_link(&record, &link)?;
                        let event = Event::decode(&record.payload).map_err(|e| {
                            LedgerError::Projection(format!("record {}: {e}", record.position))
                        })?;
                        evolve(&mut state, &event);
                    }
                }
                Ok(state)
            }));
        }
        let mut batches: Vec<Vec<(gongji_log::Record, gongji_log::Link)>> = (0..workers)
            .map(|_| Vec::with_capacity(BATCH_RECORDS))
            .collect();
        let mut read = 0u64;
        let mut failed = None;
        for item in log.read_range_links_deferred(0, to)? {
            let (record, link) = match item {
                Ok(item) => item,
                Err(error) => {
                    failed = Some(LedgerError::from(error));
                    break;
                }
            };
            let worker = partition(&record.stream, workers);
            batches[worker].push((record, link));
            if batches[worker].len() >= BATCH_RECORDS {
                let batch =
                    std::mem::replace(&mut batches[worker], Vec::with_capacity(BATCH_RECORDS));
                if senders[worker].send(batch).is_err() {
                    break; // The worker stopped on an error; it is reported below.
                }
            }
            read += 1;
            if read.is_multiple_of(1 << 16) {
                progress(read, to);
            }
        }
        for (sender, batch) in senders.iter().zip(batches) {
            let _ = sender.send(batch);
        }
        drop(senders);
        let mut merged = State::default();
        for handle in handles {
            let state = handle
                .join()
                .expect("a replay worker does not panic on decoded events")?;
            merge(&mut merged, state);
        }
        if let Some(error) = failed {
            return Err(error);
        }
        progress(read, to);
        Ok(merged)
    })
}

/// Adds a worker's state into the merged one. Workers own disjoint members, transactions,
/// funds and policies; region indexes and bindings are unions; account totals are sums.
fn merge(into: &mut State, from: State) {
    into.members.extend(from.members);
    into.funds.extend(from.funds);
    into.txs.extend(from.txs);
    into.policies.extend(from.policies);
    into.relatives.extend(from.relatives);
    for (region, members) in from.region_members {
        into.region_members
            .entry(region)
            .or_default()
            .extend(members);
    }
    for (region, totals) in from.accounts {
        let merged = into.accounts.entry(region).or_default();
        merged.inflow += totals.inflow;
        merged.outflow += totals.outflow;
    }
}
