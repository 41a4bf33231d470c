//! `audit verify` over a region map: every region's ledger verified on its own (regions in
//! parallel), then what only the whole map can show: every transfer received matches the one
//! its source sent (same id, member, regions and balance, received once), what is sent and not
//! received is in transit, and money is conserved nationally: what the regions' accounts and
//! funds hold, plus what is in transit, equals what entered minus what left (transfers between
//! regions being neither).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use gongji_domain::{Event, Money};
use gongji_log::LogOptions;

use super::{open_region, region_exists, Access, RegionMap, Store};
use crate::audit::{yuan, RegionTotals, ReplayReport, VerifyReport};
use crate::Ledger;
use crate::LedgerError;

/// One region's verification and its part of the national figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionCheck {
    pub region: String,
    pub store: String,
    /// None when the region has no ledger yet (nothing recorded), or for an archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyReport>,
    /// An archive's `audit check` report (`check_archives`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<crate::archive::CheckReport>,
    /// What its accounts and funds hold, in fen.
    #[serde(skip)]
    held_fen: i128,
    /// Money entered minus money left, transfers between regions apart, in fen.
    #[serde(skip)]
    net_external_fen: i128,
    #[serde(skip)]
    sent: Vec<Moved>,
    #[serde(skip)]
    received: Vec<Moved>,
    /// Fund events this region's ledger owes others: (owed id, region owed to, digest of the
    /// event owed, fen it moved out of this ledger net: see `event::owed_flow`).
    #[serde(skip)]
    owes: Vec<(String, String, String, i128)>,
    /// Fund events owed to this region that its ledger recorded: (owed id, digest of the event
    /// recorded).
    #[serde(skip)]
    landed: Vec<(String, String)>,
}

/// A transfer as one side records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Moved {
    pub transfer: String,
    pub member: String,
    pub from_region: String,
    pub to_region: String,
    pub balance: Money,
    /// A digest of the whole account as the event carries it (counters, movements, months,
    /// bindings): what was received must be what was sent.
    #[serde(skip)]
    pub account: String,
}

/// A digest of a value's every field (its `Debug` form), to compare what two ledgers hold.
fn digest(value: &impl std::fmt::Debug) -> String {
    blake3::hash(format!("{value:?}").as_bytes())
        .to_hex()
        .to_string()
}

/// The transfers matched across the map.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TransitCheck {
    pub sent: u64,
    pub received: u64,
    /// Transfers sent, by route: `FROM->TO` -> how many.
    pub by_route: BTreeMap<String, u64>,
    pub in_transit: Vec<Moved>,
    pub in_transit_total: Money,
    /// Fund events a region's ledger owes another's (what is dated in a region a member has
    /// left, decided where the account is now): how many, and how many that region's ledger
    /// has not recorded yet (the relay lands them; nothing moves until it does).
    pub owed: u64,
    pub owed_pending: u64,
    /// A received transfer no source sent as received, or received twice.
    pub mismatches: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NationalReport {
    pub regions: Vec<RegionCheck>,
    pub transfers: TransitCheck,
    /// What every region's accounts and funds hold.
    pub held: String,
    /// What entered minus what left, over every region.
    pub entered_minus_left: String,
    /// Every region verified, every transfer matched, and held + in transit equals entered
    /// minus left.
    pub passed: bool,
    pub failures: Vec<String>,
}

/// Verifies every region of `map` (at most `parallel` at once) and the map as a whole.
pub fn national_verify(
    map: &RegionMap,
    options: &LogOptions,
    parallel: usize,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<NationalReport, LedgerError> {
    let checks = in_parallel(map, parallel, progress, |region, store| {
        check_region(region, store, options)
    })?;
    Ok(national(checks))
}

/// `audit replay` over the map: every region's projections rebuilt from its own log
/// (at most `parallel` regions at once), each region's digest and totals, and the national
/// totals summed over them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NationalReplay {
    pub regions: Vec<RegionReplay>,
    pub records: u64,
    /// What every region's accounts and funds hold.
    pub held: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionReplay {
    pub region: String,
    pub store: String,
    /// None when the region has no ledger yet.
    pub replay: Option<ReplayReport>,
}

pub fn national_replay(
    map: &RegionMap,
    options: &LogOptions,
    parallel: usize,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<NationalReplay, LedgerError> {
    let replays = in_parallel(map, parallel, progress, |region, store| {
        let replay = match region_exists(region, store)? {
            false => None,
            true => {
                let mut ledger = match store {
                    Store::Dir(dir) => Ledger::open_to_rebuild(dir, options.clone())?,
                    Store::Postgres(uri) => Ledger::open_postgres_to_rebuild(uri, region)?,
                };
                let report = ledger.audit_replay(&mut |_, _| {})?;
                ledger.close()?;
                Some(report)
            }
        };
        Ok(RegionReplay {
            region: region.to_string(),
            store: store.describe(),
            replay,
        })
    })?;
    Ok(NationalReplay::of(replays))
}

impl NationalReplay {
    /// The national total of the regions' replays.
    pub fn of(replays: Vec<RegionReplay>) -> NationalReplay {
        let mut held: i128 = 0;
        let mut records = 0;
        for replay in replays.iter().filter_map(|r| r.replay.as_ref()) {
            records += replay.records;
            held += held_in(&replay.regions);
        }
        NationalReplay {
            regions: replays,
            records,
            held: yuan(held),
        }
    }
}

/// `work` on every region of `map`, at most `parallel` at once, in the map's order.
fn in_parallel<T: Send>(
    map: &RegionMap,
    parallel: usize,
    progress: &(dyn Fn(&str) + Sync),
    work: impl Fn(&str, &Store) -> Result<T, LedgerError> + Sync,
) -> Result<Vec<T>, LedgerError> {
    let regions: Vec<(&String, &Store)> = map.regions.iter().collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<BTreeMap<usize, Result<T, LedgerError>>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|scope| {
        for _ in 0..parallel.clamp(1, regions.len().max(1)) {
            scope.spawn(|| loop {
                let at = next.fetch_add(1, Ordering::Relaxed);
                let Some((region, store)) = regions.get(at) else {
                    return;
                };
                let done = work(region, store);
                progress(region);
                results.lock().expect("no holder panics").insert(at, done);
            });
        }
    });
    results
        .into_inner()
        .expect("no holder panicked")
        .into_values()
        .collect()
}

fn check_region(
    region: &str,
    store: &Store,
    options: &LogOptions,
) -> Result<RegionCheck, LedgerError> {
    let mut check = RegionCheck::empty(region, store.describe());
    if !region_exists(region, store)? {
        return Ok(check);
    }
    let ledger = open_region(region, store, Access::Read, options)?;
    check.verify = Some(ledger.audit_verify(&mut |_, _, _| {})?);
    check.held_fen = held_in(&ledger.totals()?);
    let log = ledger.log();
    let mut previous = None;
    for record in log.read_range(0, log.durable_end())? {
        let record = record?;
        let event = Event::decode(&record.payload).map_err(|e| {
            LedgerError::Projection(format!("region {region}, record {}: {e}", record.position))
        })?;
        check.take(record.position, event, &mut previous);
    }
    Ok(check)
}

impl RegionCheck {
    fn empty(region: &str, store: String) -> RegionCheck {
        RegionCheck {
            region: region.to_string(),
            store,
            verify: None,
            archive: None,
            held_fen: 0,
            net_external_fen: 0,
            sent: Vec::new(),
            received: Vec::new(),
            owes: Vec::new(),
            landed: Vec::new(),
        }
    }

    /// What the record at `position` holding `event` adds to the region's part; `previous`
    /// is the event before it (a landing's fund event comes just before its marker).
    fn take(&mut self, position: u64, event: Event, previous: &mut Option<Event>) {
        let before = previous.replace(event.clone());
        if let Some(sent) = super::as_sent(&event, position) {
            return self.sent.push(Moved {
                account: digest(&sent.account),
                transfer: sent.transfer,
                member: sent.member,
                from_region: sent.from_region,
                to_region: sent.to_region,
                balance: sent.balance,
            });
        }
        match event {
            Event::TransferReceived {
                transfer,
                member,
                from_region,
                to_region,
                balance,
                account,
                ..
            } => self.received.push(Moved {
                transfer,
                member,
                from_region,
                to_region,
                balance,
                account: digest(&account),
            }),
            Event::FundEventOwed { owed } => {
                let (inflow, outflow) = gongji_domain::event::owed_flow(&owed.event);
                self.owes.push((
                    gongji_domain::event::owed_id(&self.region, position),
                    owed.owed_to,
                    digest(&*owed.event),
                    i128::from(outflow.fen()) - i128::from(inflow.fen()),
                ))
            }
            Event::OwedLanded { owed, .. } => {
                let landed = before.as_ref().map_or_else(String::new, digest);
                self.landed.push((owed, landed))
            }
            other => {
                let (inflow, outflow) = other.external_flow();
                self.net_external_fen += i128::from(inflow.fen()) - i128::from(outflow.fen());
            }
        }
    }
}

/// `audit check-transfers`: the auditors' archives of several regions (complete ones, each
/// named with its region), each checked alone as `audit check` does, then matched with each
/// other as `audit verify` over a map matches the regions' ledgers: every transfer received
/// with the one sent, every landing with what was owed, and the money they hold together
/// with what is in transit against what entered and left.
pub fn check_archives(
    archives: &[(String, std::path::PathBuf)],
    progress: &mut dyn FnMut(&str),
) -> Result<NationalReport, LedgerError> {
    let mut checks = Vec::new();
    for (region, path) in archives {
        let mut check = RegionCheck::empty(region, path.display().to_string());
        let mut previous = None;
        let report =
            crate::archive::check_archive_with(path, &mut |_, _| {}, &mut |record, event| {
                check.take(record.position, event.clone(), &mut previous)
            })?;
        check.held_fen = report.regions.as_deref().map_or(0, held_in);
        check.archive = Some(report);
        progress(region);
        checks.push(check);
    }
    Ok(national(checks))
}

fn national(regions: Vec<RegionCheck>) -> NationalReport {
    let mut failures = Vec::new();
    for check in &regions {
        if let Some(archive) = &check.archive {
            if let Some(failure) = &archive.failure {
                failures.push(format!(
                    "region {}: archive line {}: {}",
                    check.region, failure.line, failure.message
                ));
            } else if archive.regions.is_none() {
                failures.push(format!(
                    "region {}: the archive is not complete (exported with --from, --to or \
                     --region): its money cannot be matched",
                    check.region
                ));
            }
        }
        if let Some(failure) = check.verify.as_ref().and_then(|v| v.failure.as_ref()) {
            failures.push(format!(
                "region {}: {} check failed: {}",
                check.region, failure.check, failure.message
            ));
        }
    }
    let mut sent: BTreeMap<&str, &Moved> = BTreeMap::new();
    let mut transfers = TransitCheck::default();
    for moved in regions.iter().flat_map(|c| &c.sent) {
        transfers.sent += 1;
        *transfers
            .by_route
            .entry(format!("{}->{}", moved.from_region, moved.to_region))
            .or_default() += 1;
        if sent.insert(&moved.transfer, moved).is_some() {
            transfers
                .mismatches
                .push(format!("transfer {} is sent twice", moved.transfer));
        }
    }
    let mut received: BTreeMap<&str, &Moved> = BTreeMap::new();
    for moved in regions.iter().flat_map(|c| &c.received) {
        transfers.received += 1;
        if received.insert(&moved.transfer, moved).is_some() {
            transfers
                .mismatches
                .push(format!("transfer {} is received twice", moved.transfer));
        }
        match sent.get(moved.transfer.as_str()) {
            Some(out) if *out == moved => {}
            Some(out) => transfers.mismatches.push(format!(
                "transfer {} is received as {moved:?} but was sent as {out:?}",
                moved.transfer
            )),
            None => transfers.mismatches.push(format!(
                "transfer {} is received in region {} but no region sent it",
                moved.transfer, moved.to_region
            )),
        }
    }
    let mut owes: BTreeMap<&str, (&str, &str, i128)> = BTreeMap::new();
    for (id, to, event, moved) in regions.iter().flat_map(|c| &c.owes) {
        transfers.owed += 1;
        owes.insert(id, (to, event, *moved));
    }
    let mut landed: BTreeMap<&str, &str> = BTreeMap::new();
    for check in &regions {
        for (id, event) in &check.landed {
            if landed.insert(id, &check.region).is_some() {
                transfers.mismatches.push(format!("{id} landed twice"));
            }
            match owes.get(id.as_str()) {
                Some((to, owed, _)) if *to == check.region && owed == event => {}
                Some((to, _, _)) if *to == check.region => transfers.mismatches.push(format!(
                    "{id} landed in region {} as another event than the one owed",
                    check.region
                )),
                _ => transfers.mismatches.push(format!(
                    "{id} landed in region {} but no region's ledger owes it there",
                    check.region
                )),
            }
        }
    }
    // What a pending owed event moved out of its ledger and not into the other yet is in
    // transit too (a premium paid from an account there into a fund here, not landed).
    let mut in_transit_fen: i128 = 0;
    for (id, (_, _, moved)) in &owes {
        if !landed.contains_key(id) {
            transfers.owed_pending += 1;
            in_transit_fen += moved;
        }
    }
    for (id, out) in &sent {
        if !received.contains_key(id) {
            in_transit_fen += i128::from(out.balance.fen());
            transfers.in_transit.push((*out).clone());
        }
    }
    transfers.in_transit_total = Money::from_fen(i64::try_from(in_transit_fen).unwrap_or(i64::MAX));
    failures.extend(transfers.mismatches.iter().cloned());
    let held: i128 = regions.iter().map(|c| c.held_fen).sum();
    let entered_minus_left: i128 = regions.iter().map(|c| c.net_external_fen).sum();
    if held + in_transit_fen != entered_minus_left {
        failures.push(format!(
            "the regions hold {} and {} is in transit, but {} entered net",
            yuan(held),
            yuan(in_transit_fen),
            yuan(entered_minus_left)
        ));
    }
    NationalReport {
        passed: failures.is_empty(),
        held: yuan(held),
        entered_minus_left: yuan(entered_minus_left),
        regions,
        transfers,
        failures,
    }
}

/// What the accounts and funds of `totals` hold, in fen.
fn held_in(totals: &[RegionTotals]) -> i128 {
    totals
        .iter()
        .flat_map(|t| [&t.pooled, &t.large_amount, &t.accounts])
        .map(|figures| i128::from(figures.balance.fen()))
        .sum()
}
