//! Monitoring kept level with a growing log: the records made durable since the last step
//! observed by the same detectors a pass runs, so the flags at any position are those
//! `monitor run` gives for the log as it stands there.

use std::sync::Arc;

use gongji_ledger::{Ledger, LedgerError};

use crate::{Flag, MonitorRules, Scope, Watch, WATCHED};

/// One version of rules, watching a log as it grows.
pub struct Live {
    rules: MonitorRules,
    watch: Watch,
    /// The records observed: the next position to read.
    position: u64,
    /// The flags as of a position, kept until more records are observed.
    flags: Option<(u64, Arc<Vec<Flag>>)>,
}

impl Live {
    pub fn new(rules: MonitorRules) -> Live {
        let watch = Watch::new(&rules, Scope::default());
        Live {
            rules,
            watch,
            position: 0,
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
    /// returns how many it read.
    pub fn step(&mut self, ledger: &Ledger, records_max: u64) -> Result<u64, LedgerError> {
        let end = ledger.log().durable_end();
        let to = end.min(self.position.saturating_add(records_max));
        if to <= self.position {
            return Ok(0);
        }
        let watch = &mut self.watch;
        let read = ledger.scan_range(
            self.position..to,
            Some(&WATCHED),
            &mut |scanned| {
                watch.observe(scanned.position, scanned.recorded_at_micros, scanned.event);
                Ok(())
            },
            &mut |_, _| {},
        )?;
        self.position += read;
        Ok(read)
    }

    /// Every flag of the records observed, each with its latest decision (dismissed ones
    /// too), ordered as `monitor run` orders them: the windows still open judged as a pass's
    /// end judges them, on a copy, the detectors left to go on.
    pub fn flags(&mut self) -> Arc<Vec<Flag>> {
        if let Some((position, flags)) = &self.flags {
            if *position == self.position {
                return Arc::clone(flags);
            }
        }
        let flags = Arc::new(self.watch.clone().finish());
        self.flags = Some((self.position, Arc::clone(&flags)));
        flags
    }
}
