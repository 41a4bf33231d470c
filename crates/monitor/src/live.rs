//! Monitoring kept level with a growing log: the records made durable since the last step
//! observed by the same detectors a pass runs, so the flags at any position are those
//! `monitor run` gives for the log as it stands there.
//!
//! Invariants: every record is observed once, in order, whatever a step's error (a step that
//! fails partway resumes after the last record it observed); the chain's link is checked
//! across steps as one pass checks it ([`Ledger::scan_range`]'s `after`).

use std::sync::Arc;

use gongji_ledger::{Ledger, LedgerError};

use crate::{Flag, MonitorRules, Scope, Watch, WATCHED};

/// One version of rules, watching a log as it grows.
pub struct Live {
    rules: MonitorRules,
    watch: Watch,
    /// The records observed: the next position to read.
    position: u64,
    /// The hash of the record before `position`, as the chain was checked up to it.
    last_hash: Option<[u8; 32]>,
    /// The flags as of a position, kept until more records are observed.
    flags: Option<(u64, Arc<Vec<Flag>>)>,
}

/// The detectors as of a position, to be judged apart from the live ones ([`Snapshot::flags`]).
pub struct Snapshot {
    pub position: u64,
    watch: Watch,
}

impl Snapshot {
    /// Every flag of the records up to the snapshot's position, as a pass ending there gives
    /// them (the windows still open judged).
    pub fn flags(self: Box<Self>) -> Vec<Flag> {
        self.watch.finish()
    }
}

/// The flags of a live monitor: ready, or to be judged from a snapshot.
pub enum Current {
    Ready(Arc<Vec<Flag>>),
    Judge(Box<Snapshot>),
}

impl Live {
    pub fn new(rules: MonitorRules) -> Live {
        Live::with_scope(rules, Scope::default())
    }

    pub fn with_scope(rules: MonitorRules, scope: Scope) -> Live {
        let watch = Watch::new(&rules, scope);
        Live {
            rules,
            watch,
            position: 0,
            last_hash: None,
            flags: None,
        }
    }

    pub fn rules(&self) -> &MonitorRules {
        &self.rules
    }

    /// The records observed.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Observes the durable records after those observed, at most `records_max` of them;
    /// returns how many it read. On an error, the records observed before it stay observed
    /// and the next step starts after them.
    pub fn step(&mut self, ledger: &Ledger, records_max: u64) -> Result<u64, LedgerError> {
        let end = ledger.log().durable_end();
        let to = end.min(self.position.saturating_add(records_max));
        if to <= self.position {
            return Ok(0);
        }
        let watch = &mut self.watch;
        // The position after the last record handed to the detectors, and that record's hash.
        let mut observed: Option<(u64, [u8; 32])> = None;
        let scanned = ledger.scan_range(
            self.position..to,
            self.last_hash,
            Some(&WATCHED),
            &mut |scanned| {
                watch.observe(scanned.position, scanned.recorded_at_micros, scanned.event);
                observed = Some((scanned.position + 1, scanned.hash));
                Ok(())
            },
            &mut |_, _| {},
        );
        match scanned {
            Ok(end) => {
                self.position += end.records;
                self.last_hash = end.last_hash;
                Ok(end.records)
            }
            Err(error) => {
                if let Some((next, hash)) = observed {
                    // Records between those observed and the error, read again next time,
                    // are ones the detectors pass by.
                    self.position = next;
                    self.last_hash = Some(hash);
                }
                Err(error)
            }
        }
    }

    /// The flags of the records observed, ready if nothing was observed since they were last
    /// judged, or else a snapshot to judge ([`Live::judged`] keeps what it gives).
    pub fn current(&self) -> Current {
        match &self.flags {
            Some((position, flags)) if *position == self.position => {
                Current::Ready(Arc::clone(flags))
            }
            _ => Current::Judge(Box::new(Snapshot {
                position: self.position,
                watch: self.watch.clone(),
            })),
        }
    }

    /// Keeps `flags`, judged from a snapshot at `position`, for as long as nothing more is
    /// observed.
    pub fn judged(&mut self, position: u64, flags: Arc<Vec<Flag>>) {
        if position == self.position {
            self.flags = Some((position, flags));
        }
    }

    /// Every flag of the records observed, each with its latest decision (dismissed ones
    /// too), ordered as `monitor run` orders them: the windows still open judged as a pass's
    /// end judges them, on a copy, the detectors left to go on.
    pub fn flags(&mut self) -> Arc<Vec<Flag>> {
        match self.current() {
            Current::Ready(flags) => flags,
            Current::Judge(snapshot) => {
                let position = snapshot.position;
                let flags = Arc::new(snapshot.flags());
                self.judged(position, Arc::clone(&flags));
                flags
            }
        }
    }
}
