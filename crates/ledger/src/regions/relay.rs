//! The relay: every transfer a source's ledger sent that its destination's has not received,
//! carried across. It keeps nothing of its own: what is in transit is read from the ledgers
//! each time (the sources' `TransferSent` records, the destinations' accounts), and a
//! destination refuses a transfer it already holds, so a relay killed at any moment and run
//! again lands each transfer exactly once.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use gongji_domain::event::{owed_id, Owed};
use gongji_domain::state::{Member, TxKind};
use gongji_domain::{Command, Money, Outcome, RejectionCode};

use super::{Regions, SentTransfer};
use crate::{now_micros, Ledger, LedgerError, LineOutcome};

/// What a relay pass found and did.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct RelayReport {
    /// Transfers the sources' ledgers record as sent.
    pub sent: u64,
    /// Landed by this pass.
    pub landed: Vec<String>,
    /// Already received before this pass.
    pub already_landed: u64,
    /// Still in transit after it, with why.
    pub in_transit: Vec<InTransit>,
    /// Fund events the regions' ledgers owe others (late claims, contributions and reversals
    /// dated in a region the member has left): how many, landed by this pass, landed before.
    pub owed: u64,
    pub owed_landed: u64,
    pub owed_already_landed: u64,
    /// Owed and not landed, with why.
    pub owed_left: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InTransit {
    pub transfer: String,
    pub member: String,
    pub from_region: String,
    pub to_region: String,
    pub balance: Money,
    pub why: String,
}

/// One pass: reads what every region's ledger owes others (transfers sent, fund events owed)
/// and lands what its destination has not recorded. `progress` is given the records looked
/// at and their number.
pub fn relay(
    regions: &mut Regions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RelayReport, LedgerError> {
    RelayCursor::default().pass(regions, progress)
}

/// Where a relay that runs again and again (the service's) has read each region's log to, and
/// what it read there that has not landed yet. It is only a shortcut: a fresh cursor reads
/// every log from the start and finds the same, so a cursor lost (the service killed) loses
/// nothing; and a pass that fails forgets the cursor, so the next pass reads everything again.
#[derive(Debug, Default)]
pub struct RelayCursor {
    /// Region -> the position its log was read to.
    read_to: BTreeMap<String, u64>,
    transfers: Vec<SentTransfer>,
    /// (region owing, position, what is owed).
    owed: Vec<(String, u64, Owed)>,
}

impl RelayCursor {
    /// Whether the last pass left nothing in transit and no fund event owed.
    pub fn settled(&self) -> bool {
        self.transfers.is_empty() && self.owed.is_empty()
    }

    /// One pass: what the regions' logs recorded as owed since the last pass, and what was
    /// left then, landed where it is owed. The report counts what this pass looked at.
    pub fn pass(
        &mut self,
        regions: &mut Regions,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<RelayReport, LedgerError> {
        let passed = self.try_pass(regions, progress);
        if passed.is_err() {
            *self = RelayCursor::default();
        }
        passed
    }

    fn try_pass(
        &mut self,
        regions: &mut Regions,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<RelayReport, LedgerError> {
        let mut transfers = std::mem::take(&mut self.transfers);
        let mut owed = std::mem::take(&mut self.owed);
        for (region, ledger) in &regions.ledgers {
            let from = self.read_to.get(region).copied().unwrap_or(0);
            let (outbound, end) = ledger.outbound(from)?;
            transfers.extend(outbound.transfers);
            owed.extend(
                (outbound.owed.into_iter()).map(|(position, o)| (region.clone(), position, o)),
            );
            self.read_to.insert(region.clone(), end);
        }
        let mut report = RelayReport::default();
        let total = (transfers.len() + owed.len()) as u64;
        let mut done = 0;
        for transfer in transfers {
            progress(done, total);
            done += 1;
            report.sent += 1;
            if !land_transfer(regions, &transfer, &mut report)? {
                self.transfers.push(transfer);
            }
        }
        for (region, position, owed) in owed {
            progress(done, total);
            done += 1;
            report.owed += 1;
            match land_owed(&mut regions.ledgers, &region, position, &owed)? {
                Landing::Landed => report.owed_landed += 1,
                Landing::Already => report.owed_already_landed += 1,
                Landing::Failed(why) => {
                    report.owed_left.push(format!(
                        "{} ({} owed to region {}): {why}",
                        owed_id(&region, position),
                        owed.event.kind(),
                        owed.owed_to
                    ));
                    self.owed.push((region, position, owed));
                }
            }
        }
        progress(total, total);
        Ok(report)
    }
}

/// What became of one landing.
pub(crate) enum Landing {
    Landed,
    Already,
    Failed(String),
}

/// Lands `transfer` unless its destination holds it; false if it is still in transit.
fn land_transfer(
    regions: &mut Regions,
    transfer: &SentTransfer,
    report: &mut RelayReport,
) -> Result<bool, LedgerError> {
    let in_transit = |why: String| InTransit {
        transfer: transfer.transfer.clone(),
        member: transfer.member.clone(),
        from_region: transfer.from_region.clone(),
        to_region: transfer.to_region.clone(),
        balance: transfer.balance,
        why,
    };
    let to = &transfer.to_region;
    let Some(destination) = regions.ledgers.get_mut(to) else {
        report
            .in_transit
            .push(in_transit(format!("region {to} is not in the region map")));
        return Ok(false);
    };
    let count = transfer.account.past_regions.len();
    let held = destination.member_copy(&transfer.member)?;
    if held.is_some_and(|copy| copy.past_regions.len() >= count) {
        report.already_landed += 1;
        return Ok(true);
    }
    copy_past_policies(&mut regions.ledgers, &transfer.account, to)?;
    let destination = regions.ledgers.get_mut(to).expect("looked up above");
    match receive(destination, transfer)? {
        Landing::Landed => {
            regions
                .directory
                .insert(transfer.member.clone(), to.clone());
            report.landed.push(transfer.transfer.clone());
        }
        Landing::Already => report.already_landed += 1,
        Landing::Failed(why) => {
            report.in_transit.push(in_transit(why));
            return Ok(false);
        }
    }
    Ok(true)
}

/// The policies of every region the account came from, copied into the destination's ledger
/// before the account arrives, so that it decides what is dated there as that region would.
fn copy_past_policies(
    ledgers: &mut BTreeMap<String, Ledger>,
    account: &Member,
    to: &str,
) -> Result<(), LedgerError> {
    let past: BTreeSet<&str> = account
        .past_regions
        .iter()
        .map(|p| p.region.as_str())
        .filter(|r| *r != to)
        .collect();
    for region in past {
        let Some(source) = ledgers.get_mut(region) else {
            continue;
        };
        let versions = source.policy_versions(region)?;
        ledgers
            .get_mut(to)
            .expect("the destination is mapped")
            .copy_policies(region, versions)?;
    }
    Ok(())
}

/// The destination's `receive_transfer`, durable on return.
pub(super) fn receive(
    destination: &mut Ledger,
    transfer: &SentTransfer,
) -> Result<Landing, LedgerError> {
    destination.apply_parsed(
        Ok(Command::ReceiveTransfer {
            transfer: transfer.transfer.clone(),
            account: transfer.account.clone(),
        }),
        now_micros(),
    )?;
    Ok(match destination.commit()?.as_slice() {
        [LineOutcome::Applied(Outcome::TransferReceived { .. })] => Landing::Landed,
        [LineOutcome::Rejected(r)] if r.code == RejectionCode::TransferAlreadyReceived => {
            Landing::Already
        }
        [LineOutcome::Rejected(r)] => Landing::Failed(r.to_string()),
        other => Landing::Failed(format!("answered {other:?}")),
    })
}

/// Lands in its region's ledger the fund event `from`'s record at `position` owes.
pub(super) fn land_owed(
    ledgers: &mut BTreeMap<String, Ledger>,
    from: &str,
    position: u64,
    owed: &Owed,
) -> Result<Landing, LedgerError> {
    let Some(ledger) = ledgers.get_mut(&owed.owed_to) else {
        return Ok(Landing::Failed(format!(
            "region {} is not in the region map",
            owed.owed_to
        )));
    };
    land_owed_in(ledger, from, position, owed)
}

pub(super) fn land_owed_in(
    ledger: &mut Ledger,
    from: &str,
    position: u64,
    owed: &Owed,
) -> Result<Landing, LedgerError> {
    let id = owed_id(from, position);
    match ledger.tx_kind(&id)? {
        Some(TxKind::Landed { from_region }) if from_region == from => return Ok(Landing::Already),
        Some(_) => {
            return Ok(Landing::Failed(format!(
                "{id} is held by region {}'s ledger as another transaction",
                owed.owed_to
            )))
        }
        None => {}
    }
    ledger.apply_parsed(
        Ok(Command::LandOwed {
            owed: id,
            from_region: from.to_string(),
            member: owed.member.clone(),
            event: owed.event.clone(),
        }),
        now_micros(),
    )?;
    Ok(match ledger.commit()?.as_slice() {
        [LineOutcome::Applied(Outcome::OwedLanded { .. })] => Landing::Landed,
        [LineOutcome::Rejected(r)] if r.code == RejectionCode::AlreadyLanded => Landing::Already,
        [LineOutcome::Rejected(r)] => Landing::Failed(r.to_string()),
        other => Landing::Failed(format!("answered {other:?}")),
    })
}
