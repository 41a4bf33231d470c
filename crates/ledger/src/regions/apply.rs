//! `apply` over a region map: each line to the ledger of the region that holds what it names,
//! every region's ledger deciding on a thread of its own, the outcomes handed to the sink in
//! input order once durable.
//!
//! A line names its region (`load_policy`, `enroll`, `allocate`, `rollover`), a member (the
//! member directory says which region holds the member now), or a transaction (`reverse`: the
//! region whose ledger holds it). A `transfer` is sent by the source's ledger and carried to
//! the destination's at once, before the next line is routed, so a file of commands reads as
//! it would in one ledger; a transfer that cannot land now (the destination's ledger failed)
//! stays in transit for `relay`, and lines naming its member are refused (`in_transit`) until
//! it lands.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{self, BufRead};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};

use gongji_domain::command::LINE_BYTES_MAX;
use gongji_domain::{Command, Rejection, RejectionCode};

use super::relay::{Landing, RelayCursor};
use super::{Regions, SentTransfer};
use crate::input::{parse_line, read_line_bounded};
use crate::{now_micros, Ledger, LedgerError, LineOutcome};

/// Jobs queued to one region's worker before the router waits.
const QUEUE_JOBS: usize = 65_536;

/// What a routed apply did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoutedSummary {
    pub lines: u64,
    pub rejected: u64,
    /// Transfers sent and landed in their destination's ledger by this apply.
    pub transfers_landed: u64,
    /// Transfers sent and left in transit (for `relay`), each with why it did not land.
    pub left_in_transit: Vec<(String, String)>,
    /// Fund events owed to another region's ledger and landed there by this apply.
    pub owed_landed: u64,
    /// Fund events owed and not landed (for `relay`), with why.
    pub owed_left: Vec<String>,
}

/// Why a routed apply stopped before its input's end.
#[derive(Debug)]
pub enum RoutedError {
    /// The input could not be read after this line; every line before it was answered.
    Input { after_line: usize, error: String },
    /// The sink refused outcomes (the reader went away): lines after the last handed on may
    /// have been applied.
    Output(String),
    /// A region's ledger failed: lines queued to other regions' ledgers may have been applied
    /// and not handed on.
    Ledger(LedgerError),
}

impl std::fmt::Display for RoutedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoutedError::Input { after_line, error } => {
                write!(
                    f,
                    "the input became unreadable after line {after_line}: {error}"
                )
            }
            RoutedError::Output(error) => write!(f, "output: {error}"),
            RoutedError::Ledger(error) => error.fmt(f),
        }
    }
}

impl From<LedgerError> for RoutedError {
    fn from(error: LedgerError) -> Self {
        RoutedError::Ledger(error)
    }
}

impl From<RoutedError> for LedgerError {
    fn from(error: RoutedError) -> Self {
        match error {
            RoutedError::Ledger(error) => error,
            other => LedgerError::Projection(other.to_string()),
        }
    }
}

/// Where a routed apply hands its outcomes: each run of them in input order, once durable.
pub type RoutedSink<'s> = dyn FnMut(&[(usize, LineOutcome)]) -> io::Result<()> + Send + 's;

/// A task run on a region's ledger; what it returns is run once the ledger's durable end has
/// been told (the task's answer sent then, so that whoever acts on it finds its writes told).
type Task<'a> = Box<dyn FnOnce(&mut Ledger) -> Box<dyn FnOnce() + Send + 'a> + Send + 'a>;

/// Where a held line's outcome goes instead of the printer (see [`Job::Line`]).
type HeldOutcome = SyncSender<LineOutcome>;

enum Job<'a> {
    Line {
        line: usize,
        parsed: Result<Command, Rejection>,
        /// The outcome goes here, once durable, rather than to the printer: a transfer's, which
        /// the router hands on once the transfer has landed.
        held: Option<HeldOutcome>,
    },
    /// Run after the lines before it are durable and handed on.
    Run(Task<'a>),
    /// Run after the lines before it are decided, durable or not: a question of the ledger's
    /// state that writes nothing (a line decided and then not made durable stops the whole
    /// apply, so no answer of it outlives a lost line).
    Peek(Task<'a>),
}

enum Done {
    Outcomes(Vec<(usize, LineOutcome)>),
    Failed(String, LedgerError),
}

/// Where a line goes.
enum Route {
    To(String, Command),
    Refused(Rejection),
    Transfer {
        from: String,
        member: String,
        command: Command,
    },
}

/// Applies the lines of `input` to the regions' ledgers, handing `sink` each run of outcomes
/// in input order once the ledgers that decided them made them durable. `progress` is given
/// the bytes read so far. What was left in transit or owed lands first, through `relay` (a
/// fresh cursor reads every log; a service's reads on from its last pass).
pub fn apply_routed(
    regions: &mut Regions,
    relay: &mut RelayCursor,
    input: impl BufRead,
    batch_lines: usize,
    sink: &mut RoutedSink<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<RoutedSummary, RoutedError> {
    // What an earlier run left in transit lands first; what cannot land stays known as such.
    let relayed = relay.pass(regions, &mut |_, _| {})?;
    let in_transit: HashMap<String, (String, String)> = relayed
        .in_transit
        .into_iter()
        .map(|t| (t.member, (t.transfer, t.to_region)))
        .collect();
    let Regions {
        map,
        ledgers,
        directory,
        txs,
        durable,
    } = regions;
    let stop = AtomicBool::new(false);
    let stop = &stop;
    let batch_lines = batch_lines.max(1);
    let started: BTreeMap<String, u64> = ledgers
        .iter()
        .map(|(region, ledger)| (region.clone(), ledger.log().durable_end()))
        .collect();
    std::thread::scope(|scope| {
        let (done_tx, done_rx) = mpsc::sync_channel::<Done>(64);
        let mut queues: BTreeMap<String, SyncSender<Job<'_>>> = BTreeMap::new();
        for (region, ledger) in ledgers.iter_mut() {
            let (tx, rx) = mpsc::sync_channel::<Job<'_>>(QUEUE_JOBS);
            let done = done_tx.clone();
            let name = region.clone();
            let told = durable.clone().map(|hook| (region.clone(), hook));
            std::thread::Builder::new()
                .name(format!("region-{region}"))
                .spawn_scoped(scope, move || {
                    work(&name, ledger, rx, done, batch_lines, stop, told)
                })
                .map_err(|e| LedgerError::Projection(format!("cannot start a worker: {e}")))?;
            queues.insert(region.clone(), tx);
        }
        let printer = std::thread::Builder::new()
            .name("outcomes".into())
            .spawn_scoped(scope, move || deliver(done_rx, sink, stop))
            .map_err(|e| LedgerError::Projection(format!("cannot start the printer: {e}")))?;
        let mut router = Router {
            known: map.regions.keys().cloned().collect(),
            queues,
            done: done_tx,
            directory,
            txs: &mut *txs,
            routed_txs: HashMap::new(),
            in_transit,
            stop,
            summary: RoutedSummary::default(),
            unreadable: None,
        };
        let mut routed = router.route_all(input, progress);
        if routed.is_ok() {
            let mut summary = std::mem::take(&mut router.summary);
            routed = land_owed(&router, &started, &mut summary);
            router.summary = summary;
        }
        let summary = router.summary.clone();
        let unreadable = router.unreadable.take();
        let routed_txs = std::mem::take(&mut router.routed_txs);
        drop(router);
        let (refused, failed) = printer
            .join()
            .map_err(|_| LedgerError::Projection("the outcome printer panicked".into()))?;
        // A transaction this run sent to a region is held there if one of its lines there was
        // taken; if every one was refused, it is not (after a region's failure, the writers
        // are opened again and the directory built afresh).
        let refused_lines: HashSet<usize> = refused.iter().copied().collect();
        let taken: HashSet<(&str, &str)> = (routed_txs.iter())
            .filter(|(line, _)| !refused_lines.contains(line))
            .map(|(_, (id, region))| (id.as_str(), region.as_str()))
            .collect();
        for (line, (id, region)) in &routed_txs {
            let untaken = refused_lines.contains(line)
                && !taken.contains(&(id.as_str(), region.as_str()))
                && txs.routed.contains(id);
            if untaken && txs.held.get(id).is_some_and(|(r, _)| r == region) {
                txs.held.remove(id);
            }
        }
        txs.routed.clear();
        // A region's own failure says more than the router's "a worker stopped".
        if let Some(failed) = failed {
            return Err(failed);
        }
        let rejected = refused.len() as u64;
        if let Some((after_line, error)) = unreadable {
            return Err(RoutedError::Input { after_line, error });
        }
        routed?;
        Ok(RoutedSummary {
            rejected,
            ..summary
        })
    })
}

struct Router<'a, 'd> {
    known: std::collections::BTreeSet<String>,
    queues: BTreeMap<String, SyncSender<Job<'a>>>,
    done: SyncSender<Done>,
    directory: &'d mut HashMap<String, String>,
    txs: &'d mut super::TxDirectory,
    /// This run's claim and payment lines: line -> (id, region sent to). Until its outcome is
    /// known, a transaction routed here may have been refused there.
    routed_txs: HashMap<usize, (String, String)>,
    /// Members sent by this apply whose transfer did not land: member -> (transfer, destination).
    in_transit: HashMap<String, (String, String)>,
    /// Set by a failing worker or printer: the router stops routing.
    stop: &'d AtomicBool,
    summary: RoutedSummary,
    /// Set when the input could not be read: after which line, and why.
    unreadable: Option<(usize, String)>,
}

impl<'a> Router<'a, '_> {
    fn route_all(
        &mut self,
        input: impl BufRead,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), LedgerError> {
        let mut input = input;
        let mut buf = Vec::new();
        let mut line = 0usize;
        let mut read_bytes = 0u64;
        loop {
            let read = match read_line_bounded(&mut input, &mut buf, LINE_BYTES_MAX) {
                Ok(Some(read)) => read,
                Ok(None) => break,
                Err(e) => {
                    self.unreadable = Some((line, e.to_string()));
                    return Err(LedgerError::Projection(format!(
                        "the input became unreadable after line {line}: {e}"
                    )));
                }
            };
            if self.stop.load(Ordering::Relaxed) {
                return Err(stopped());
            }
            line += 1;
            read_bytes += read.bytes_consumed;
            self.summary.lines += 1;
            let parsed = parse_line(&read, &buf);
            match parsed {
                Err(rejection) => self.refuse(line, rejection)?,
                Ok(command) => match self.route(command)? {
                    Route::Refused(rejection) => self.refuse(line, rejection)?,
                    Route::To(region, command) => self.send(
                        &region,
                        Job::Line {
                            line,
                            parsed: Ok(command),
                            held: None,
                        },
                    )?,
                    Route::Transfer {
                        from,
                        member,
                        command,
                    } => self.transfer(line, &from, &member, command)?,
                },
            }
            if line.is_multiple_of(4096) {
                progress(read_bytes);
            }
        }
        progress(read_bytes);
        Ok(())
    }

    fn refuse(&mut self, line: usize, rejection: Rejection) -> Result<(), LedgerError> {
        self.done
            .send(Done::Outcomes(vec![(
                line,
                LineOutcome::Rejected(rejection),
            )]))
            .map_err(|_| stopped())
    }

    fn send(&self, region: &str, job: Job<'a>) -> Result<(), LedgerError> {
        self.queues
            .get(region)
            .expect("routes name mapped regions")
            .send(job)
            .map_err(|_| stopped())
    }

    /// Runs `task` on `region`'s ledger once the lines queued before it are durable, and
    /// waits for its answer.
    fn ask<T: Send + 'a>(
        &self,
        region: &str,
        task: impl FnOnce(&mut Ledger) -> T + Send + 'a,
    ) -> Result<T, LedgerError> {
        self.answered(region, Job::Run, task)
    }

    /// Asks `question` of `region`'s ledger once the lines queued to it before are decided
    /// (not waiting for their sync: see [`Job::Peek`]), and waits for the answer.
    fn peek<T: Send + 'a>(
        &self,
        region: &str,
        question: impl FnOnce(&mut Ledger) -> T + Send + 'a,
    ) -> Result<T, LedgerError> {
        self.answered(region, Job::Peek, question)
    }

    /// Queues `task` to `region` as the job `kind` makes of it, and waits for its answer.
    fn answered<T: Send + 'a>(
        &self,
        region: &str,
        kind: fn(Task<'a>) -> Job<'a>,
        task: impl FnOnce(&mut Ledger) -> T + Send + 'a,
    ) -> Result<T, LedgerError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(region, kind(answering(task, tx)))?;
        rx.recv().map_err(|_| stopped())
    }

    fn mapped(&self, region: &str) -> Result<(), Rejection> {
        match self.known.contains(region) {
            true => Ok(()),
            false => Err(Rejection::new(
                RejectionCode::UnmappedRegion,
                format!("region {region} is not in the region map"),
            )),
        }
    }

    /// The region holding `member` now, or why none does.
    fn holder(&self, member: &str) -> Result<String, Rejection> {
        if let Some(region) = self.directory.get(member) {
            return Ok(region.clone());
        }
        if let Some((transfer, to)) = self.in_transit.get(member) {
            return Err(Rejection::new(
                RejectionCode::InTransit,
                format!(
                    "member {member}'s account is in transit to region {to} (transfer {transfer}); `relay` lands it"
                ),
            ));
        }
        Err(Rejection::new(
            RejectionCode::UnknownMember,
            format!("member {member} is held by no region of the map"),
        ))
    }

    fn route(&mut self, command: Command) -> Result<Route, LedgerError> {
        let region = match &command {
            Command::LoadPolicy { policy } => Ok(policy.region.clone()),
            Command::Allocate { region, .. }
            | Command::Rollover { region, .. }
            | Command::DecideFlag { region, .. }
            | Command::LoadMonitorRules { region, .. } => Ok(region.clone()),
            Command::Enroll { member, region, .. } => {
                return self.route_enroll(member.clone(), region.clone(), command)
            }
            Command::Claim { id, member, .. }
            | Command::AccountPay {
                id, holder: member, ..
            } => {
                let (id, member) = (id.clone(), member.clone());
                return self.route_tx(id, member, command);
            }
            Command::Retire { member, .. }
            | Command::Contribute { member, .. }
            | Command::Decease { member, .. }
            | Command::Inherit { member, .. }
            | Command::BindFamily { holder: member, .. }
            | Command::UnbindFamily { holder: member, .. } => self.holder(member),
            Command::Reverse { id, .. } => return self.route_reverse(id.clone(), command),
            Command::Transfer {
                member,
                date,
                to_region,
            } => {
                let from = match self.holder(member) {
                    Ok(from) => from,
                    Err(rejection) => return Ok(Route::Refused(rejection)),
                };
                if let Err(rejection) = self.mapped(to_region) {
                    return Ok(Route::Refused(rejection));
                }
                return Ok(Route::Transfer {
                    from,
                    member: member.clone(),
                    command: Command::SendTransfer {
                        member: member.clone(),
                        date: *date,
                        to_region: to_region.clone(),
                    },
                });
            }
            Command::SendTransfer { .. }
            | Command::ReceiveTransfer { .. }
            | Command::LandOwed { .. } => {
                unreachable!("never read from a line")
            }
        };
        Ok(match region.and_then(|r| self.mapped(&r).map(|()| r)) {
            Ok(region) => Route::To(region, command),
            Err(rejection) => Route::Refused(rejection),
        })
    }

    /// An enrolment goes to its region; the directory takes the member at once (a line
    /// after it naming the member goes there too, and is refused there if the enrolment
    /// was). A member the directory places in another region is asked of that region's
    /// ledger: held there (or sent on from there), the enrolment is refused.
    fn route_enroll(
        &mut self,
        member: String,
        region: String,
        command: Command,
    ) -> Result<Route, LedgerError> {
        if let Err(rejection) = self.mapped(&region) {
            return Ok(Route::Refused(rejection));
        }
        if let Some(other) = self.directory.get(&member).cloned() {
            if other != region {
                let id = member.clone();
                let held = self.ask(&other, move |ledger| ledger.member_copy(&id))??;
                if let Some(copy) = held {
                    return Ok(Route::Refused(Rejection::new(
                        RejectionCode::AlreadyEnrolled,
                        format!(
                            "member {member} is enrolled in region {} (ledger of region {other})",
                            copy.region
                        ),
                    )));
                }
            }
        }
        if let Some((transfer, to)) = self.in_transit.get(&member) {
            return Ok(Route::Refused(Rejection::new(
                RejectionCode::AlreadyEnrolled,
                format!(
                    "member {member}'s account is in transit to region {to} (transfer {transfer})"
                ),
            )));
        }
        self.directory.insert(member, region.clone());
        Ok(Route::To(region, command))
    }

    /// A reversal goes to the region whose ledger holds the transaction, while that region
    /// holds its member: a transaction recorded before the member's account moved on is
    /// refused (its refund would land in an account that is no longer there).
    fn route_reverse(&mut self, id: String, command: Command) -> Result<Route, LedgerError> {
        if let Some(holders) = self.txs.ambiguous.get(&id) {
            let named: Vec<String> = holders
                .iter()
                .map(|(region, member)| format!("region {region} (member {member})"))
                .collect();
            return Ok(Route::Refused(Rejection::new(
                RejectionCode::DuplicateId,
                format!(
                    "transaction {id} is held by {}: reverse it in its region's own ledger",
                    named.join(" and ")
                ),
            )));
        }
        let Some((region, member)) = self.txs.held.get(&id).cloned() else {
            return Ok(Route::Refused(Rejection::new(
                RejectionCode::UnknownTransaction,
                format!("no region of the map holds transaction {id}"),
            )));
        };
        Ok(match self.directory.get(&member) {
            Some(holder) if *holder == region => Route::To(region, command),
            holder => Route::Refused(Rejection::new(
                RejectionCode::AccountMoved,
                format!(
                    "transaction {id} was recorded in region {region}, and member {member}'s account has moved on (to {}): a reversal across regions' ledgers is not supported",
                    holder.map_or("a region not holding it yet", String::as_str)
                ),
            )),
        })
    }

    /// A claim or an account payment goes to the region holding its member; its id is the
    /// map's: one another region's ledger holds is refused (`duplicate_id`), as one ledger
    /// refuses an id it holds. An id this run sent to another region, whose line may have been
    /// refused there, is asked of that region first.
    fn route_tx(
        &mut self,
        id: String,
        member: String,
        command: Command,
    ) -> Result<Route, LedgerError> {
        let region = match self.holder(&member) {
            Ok(region) => region,
            Err(rejection) => return Ok(Route::Refused(rejection)),
        };
        let duplicate = |held_in: &str| {
            Route::Refused(Rejection::new(
                RejectionCode::DuplicateId,
                format!(
                    "transaction {id} is held by region {held_in}'s ledger: an id is the map's"
                ),
            ))
        };
        if let Some(holders) = self.txs.ambiguous.get(&id) {
            return Ok(duplicate(&holders[0].0));
        }
        if let Some((held_in, _)) = self.txs.held.get(&id).cloned() {
            if held_in == region {
                // That ledger refuses it as its own duplicate, or takes it if it refused it
                // before (then this line is what holds it there).
                if self.txs.routed.contains(&id) {
                    self.routed_txs
                        .insert(self.summary.lines as usize, (id, region.clone()));
                }
                return Ok(Route::To(region, command));
            }
            let unsure = self.txs.routed.contains(&id);
            let tx = id.clone();
            if !unsure || self.peek(&held_in, move |l| l.tx_member(&tx))??.is_some() {
                return Ok(duplicate(&held_in));
            }
        }
        self.txs.held.insert(id.clone(), (region.clone(), member));
        self.txs.routed.insert(id.clone());
        // Routed on the line being read: `summary.lines` counts it.
        self.routed_txs
            .insert(self.summary.lines as usize, (id, region.clone()));
        Ok(Route::To(region, command))
    }

    /// Sends the transfer in the source's ledger and, once durable, lands it in the
    /// destination's.
    fn transfer(
        &mut self,
        line: usize,
        from: &str,
        member: &str,
        command: Command,
    ) -> Result<(), LedgerError> {
        let (held, outcome) = mpsc::sync_channel(1);
        self.send(
            from,
            Job::Line {
                line,
                parsed: Ok(command),
                held: Some(held),
            },
        )?;
        // The send's outcome, once durable; handed on only once the transfer has landed (or is
        // left in transit), so that whoever reads the answer finds the account where it went.
        let outcome = outcome.recv().map_err(|_| stopped())?;
        let id = member.to_string();
        // Its last event says whether it was sent (a refused send leaves an older transfer
        // there, or none; carrying an older one again is refused by its destination as already
        // received).
        let landed = match self.ask(from, move |ledger| ledger.last_sent(&id)) {
            Ok(Ok(Some(sent))) => self.land_sent(member, sent),
            Ok(Ok(None)) => Ok(()),
            Ok(Err(error)) | Err(error) => Err(error),
        };
        self.done
            .send(Done::Outcomes(vec![(line, outcome)]))
            .map_err(|_| stopped())?;
        landed
    }

    /// Lands `sent` (`member`'s) in its destination, the directory following it; or leaves it
    /// in transit, saying why.
    fn land_sent(&mut self, member: &str, sent: SentTransfer) -> Result<(), LedgerError> {
        match land(self, &sent)? {
            Landing::Landed => {
                self.directory
                    .insert(member.to_string(), sent.to_region.clone());
                self.summary.transfers_landed += 1;
            }
            Landing::Already => {
                // An older transfer: this line's send was refused, the member did not move.
            }
            Landing::Failed(why) => {
                self.directory.remove(member);
                self.summary
                    .left_in_transit
                    .push((sent.transfer.clone(), why));
                self.in_transit
                    .insert(member.to_string(), (sent.transfer, sent.to_region));
            }
        }
        Ok(())
    }
}

/// Receives `sent` in its destination's ledger (through that region's worker), the
/// policies of the regions the account came from copied there first.
fn land<'a>(router: &Router<'a, '_>, sent: &SentTransfer) -> Result<Landing, LedgerError> {
    let to = sent.to_region.clone();
    let past: BTreeSet<String> = sent
        .account
        .past_regions
        .iter()
        .map(|p| p.region.clone())
        .filter(|r| *r != to && router.known.contains(r))
        .collect();
    for region in past {
        let asked = region.clone();
        let versions = match router.ask(&region, move |l| l.policy_versions(&asked))? {
            Ok(versions) => versions,
            Err(error) => return Ok(Landing::Failed(error.to_string())),
        };
        if let Err(error) = router.ask(&to, move |l| l.copy_policies(&region, versions))? {
            return Ok(Landing::Failed(error.to_string()));
        }
    }
    let sent = sent.clone();
    Ok(
        match router.ask(&to, move |ledger| super::relay::receive(ledger, &sent))? {
            Ok(landing) => landing,
            Err(error) => Landing::Failed(error.to_string()),
        },
    )
}

/// Lands the fund events the regions' ledgers came to owe others during this apply (late
/// claims, contributions and reversals), from the positions each ledger had reached before.
fn land_owed<'a>(
    router: &Router<'a, '_>,
    from: &BTreeMap<String, u64>,
    summary: &mut RoutedSummary,
) -> Result<(), LedgerError> {
    for (region, start) in from {
        let start = *start;
        let (outbound, _) = router.ask(region, move |l| l.outbound(start))??;
        for (position, owed) in outbound.owed {
            if !router.known.contains(&owed.owed_to) {
                summary.owed_left.push(format!(
                    "{} owed to region {}, which is not in the map",
                    gongji_domain::event::owed_id(region, position),
                    owed.owed_to
                ));
                continue;
            }
            let to = owed.owed_to.clone();
            let from = region.clone();
            let landing = router.ask(&to, move |l| {
                super::relay::land_owed_in(l, &from, position, &owed)
            })?;
            match landing {
                Ok(Landing::Landed) => summary.owed_landed += 1,
                Ok(Landing::Already) => {}
                Ok(Landing::Failed(why)) => summary.owed_left.push(why),
                Err(error) => summary.owed_left.push(error.to_string()),
            }
        }
    }
    Ok(())
}

/// `task` as a job's task whose answer goes to `to`.
fn answering<'a, T: Send + 'a>(
    task: impl FnOnce(&mut Ledger) -> T + Send + 'a,
    to: SyncSender<T>,
) -> Task<'a> {
    Box::new(move |ledger| {
        let answer = task(ledger);
        Box::new(move || drop(to.send(answer)))
    })
}

fn stopped() -> LedgerError {
    LedgerError::Projection("a region's worker stopped".into())
}

/// One region's worker: decides the lines queued to it, makes them durable in groups (the
/// next group decided while the one before syncs, as `apply_stream` does, with at most one
/// group synced and not handed on), hands their outcomes on, and runs tasks between groups
/// once everything before them is durable and handed on.
fn work(
    region: &str,
    ledger: &mut Ledger,
    jobs: Receiver<Job<'_>>,
    done: SyncSender<Done>,
    batch_lines: usize,
    stop: &AtomicBool,
    told: Option<(String, super::DurableHook)>,
) {
    let mut group = Group {
        lines: Vec::new(),
        syncing: None,
        told,
    };
    // A failed worker's ledger is stopped, as a failed stream's is: lines decided and not
    // made durable are discarded, and nothing is written through it again.
    let fail = |ledger: &mut Ledger, error: LedgerError| {
        stop.store(true, Ordering::Relaxed);
        ledger.stopped = Some(format!("a routed apply's worker failed: {error}"));
        if let Some(staged) = &mut ledger.events {
            staged.discard();
        }
        let _ = done.send(Done::Failed(region.to_string(), error));
    };
    loop {
        // Blocks only with nothing syncing; otherwise an empty queue hands the group on.
        let first = match group.syncing {
            None => match jobs.recv() {
                Ok(job) => job,
                Err(_) => break,
            },
            Some(_) => match jobs.try_recv() {
                Ok(job) => job,
                Err(mpsc::TryRecvError::Empty) => {
                    if let Err(error) = group.hand_on_syncing(&done) {
                        return fail(ledger, error);
                    }
                    continue;
                }
                Err(mpsc::TryRecvError::Disconnected) => break,
            },
        };
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Line { line, parsed, held } => {
                    if let Err(error) = ledger.apply_parsed(parsed, now_micros()) {
                        return fail(ledger, error);
                    }
                    group.lines.push((line, held));
                }
                Job::Run(task) => {
                    if let Err(error) = group.settle(ledger, &done) {
                        return fail(ledger, error);
                    }
                    let answer = task(ledger);
                    group.tell(ledger.log().durable_end());
                    answer();
                }
                Job::Peek(task) => task(ledger)(),
            }
            if group.lines.len() < batch_lines {
                next = jobs.try_recv().ok();
            }
        }
        if let Err(error) = group.sync_next(ledger, &done) {
            return fail(ledger, error);
        }
    }
    if let Err(error) = group
        .settle(ledger, &done)
        .and_then(|()| ledger.commit().map(drop))
    {
        fail(ledger, error);
    }
}

/// A worker's lines decided and not synced yet, and the group syncing.
struct Group {
    lines: Vec<(usize, Option<HeldOutcome>)>,
    syncing: Option<Syncing>,
    /// Told each durable end before the outcomes up to it are handed on.
    told: Option<(String, super::DurableHook)>,
}

struct Syncing {
    ticket: gongji_log::SyncTicket,
    end: u64,
    outcomes: Vec<((usize, Option<HeldOutcome>), LineOutcome)>,
    events: Option<crate::handover::Offer>,
}

impl Group {
    fn tell(&self, end: u64) {
        if let Some((region, hook)) = &self.told {
            hook(region, end);
        }
    }

    /// Waits for the group syncing and hands its outcomes on.
    fn hand_on_syncing(&mut self, done: &SyncSender<Done>) -> Result<(), LedgerError> {
        let Some(syncing) = self.syncing.take() else {
            return Ok(());
        };
        syncing.ticket.wait()?;
        if let Some(events) = syncing.events {
            events.durable();
        }
        self.tell(syncing.end);
        let mut outcomes = Vec::with_capacity(syncing.outcomes.len());
        for ((line, held), outcome) in syncing.outcomes {
            match held {
                // Only a router gone (the apply ending) leaves nobody to take it.
                Some(held) => drop(held.send(outcome)),
                None => outcomes.push((line, outcome)),
            }
        }
        done.send(Done::Outcomes(outcomes)).map_err(|_| stopped())
    }

    /// Hands the group syncing on, then starts the sync of the lines decided since; stores
    /// the projections when they are due, once that group is handed on too.
    fn sync_next(
        &mut self,
        ledger: &mut Ledger,
        done: &SyncSender<Done>,
    ) -> Result<(), LedgerError> {
        self.hand_on_syncing(done)?;
        if self.lines.is_empty() {
            return Ok(());
        }
        let (outcomes, ticket, events) = ledger.commit_pipelined()?;
        let durable_end = ticket.end_position();
        self.syncing = Some(Syncing {
            ticket,
            end: durable_end,
            outcomes: self.lines.drain(..).zip(outcomes).collect(),
            events,
        });
        if ledger.store_due(None) {
            self.hand_on_syncing(done)?;
            ledger.store_deferred(durable_end)?;
        }
        Ok(())
    }

    /// Everything decided made durable and handed on, and the log's reads reaching it.
    fn settle(&mut self, ledger: &mut Ledger, done: &SyncSender<Done>) -> Result<(), LedgerError> {
        self.sync_next(ledger, done)?;
        self.hand_on_syncing(done)?;
        ledger.log.settle_syncs()?;
        Ok(())
    }
}

/// Hands the outcomes to `sink` in input order; the lines rejected (every one decided, also
/// after a failure), and the failure if there was one.
fn deliver(
    done: Receiver<Done>,
    sink: &mut RoutedSink<'_>,
    stop: &AtomicBool,
) -> (Vec<usize>, Option<RoutedError>) {
    let mut waiting: BTreeMap<usize, LineOutcome> = BTreeMap::new();
    let mut next = 1usize;
    let mut rejected = Vec::new();
    let mut failed = None;
    // After a failure the messages are still taken (their refusals noted, nothing handed on),
    // so that no worker waits on this channel for ever.
    while let Ok(message) = done.recv() {
        match message {
            Done::Outcomes(outcomes) if failed.is_some() => {
                let refused = outcomes
                    .iter()
                    .filter(|(_, o)| matches!(o, LineOutcome::Rejected(_)));
                rejected.extend(refused.map(|(line, _)| *line));
                continue;
            }
            Done::Outcomes(outcomes) => waiting.extend(outcomes),
            Done::Failed(region, error) => {
                // A region's failure is told even after the sink's: its ledger is stopped.
                if !matches!(failed, Some(RoutedError::Ledger(_))) {
                    let error = LedgerError::Projection(format!("region {region}: {error}"));
                    failed = Some(RoutedError::Ledger(error));
                }
                continue;
            }
        }
        let mut run = Vec::new();
        while let Some(outcome) = waiting.remove(&next) {
            if matches!(outcome, LineOutcome::Rejected(_)) {
                rejected.push(next);
            }
            run.push((next, outcome));
            next += 1;
        }
        if !run.is_empty() {
            if let Err(e) = sink(&run) {
                stop.store(true, Ordering::Relaxed);
                failed = Some(RoutedError::Output(e.to_string()));
            }
        }
    }
    let refused = waiting
        .iter()
        .filter(|(_, o)| matches!(o, LineOutcome::Rejected(_)));
    rejected.extend(refused.map(|(line, _)| *line));
    (rejected, failed)
}
