//! `gongji serve --regions MAP`: the service over a region map (`gongji_ledger::regions`).
//!
//! The writers: every region's ledger, opened as its only writer ([`Regions`]), behind one
//! lock a command stream holds for its whole length, as the one ledger's is. A stream's lines
//! are routed as `gongji --regions MAP apply` routes them ([`apply_routed`]): each to the
//! region holding what it names, a transfer landed in its destination before the next line.
//! The relay runs in the service, every [`RELAY_EVERY`] while no stream holds the lock: a
//! [`RelayCursor`] reads what each region's log recorded as owed since its last pass and lands
//! it (a transfer left in transit when its destination's store failed, a fund event owed to a
//! region whose store was out of reach); a cursor lost with the service loses nothing, a new
//! one reads every log from the start. A writer that failed (a store lost, a stream cut) is
//! dropped with all the others and the map opened again, at the next stream or relay pass.
//!
//! The readers: one read view per region ([`Reads`], as the one ledger's, each following its
//! own region's published durable end, which the region's worker raises before a line's answer
//! is sent: [`Regions::durable`]). A member's read goes to the region holding the member (on
//! the day asked, the region that held the member then; in transit, 409 `in_transit` naming
//! the transfer, as the command line says it): the member directory the writers keep says
//! where to look first, and the views themselves are asked when it does not hold (a member
//! enrolled or moved since it was published). A claim's explanation goes to the region whose
//! ledger holds the claim; a fund's read to its region; `audit verify` checks every region and
//! the map as a whole (transfers matched, national conservation); `audit replay` folds every
//! region's view afresh and totals them.
//!
//! Invariants: nothing is written but through `apply_routed` and the relay, both under the
//! writers' lock; a read never takes that lock; a region's view answers only what its writer
//! published as durable.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::http::StatusCode;
use gongji_domain::state::Member;
use gongji_domain::Day;
use gongji_ledger::regions::{
    self, Located, NationalReplay, RegionMap, RegionReplay, Regions, RelayCursor,
};
use gongji_ledger::{Ledger, LedgerError, LogOptions};
use serde_json::{json, Value};
use tokio::sync::{watch, Mutex, OwnedMutexGuard};
use tokio::time::Instant;

use crate::answers;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::reads::{Opener, Reads};

/// How often the relay looks for what is in transit while no stream holds the writers.
pub const RELAY_EVERY: Duration = Duration::from_secs(1);

/// Opens every region's writer (as the command line does).
pub type MapOpener = Arc<dyn Fn() -> Result<Regions, String> + Send + Sync>;
/// Opens one region's read view.
pub type ViewOpener = Arc<dyn Fn(&str) -> Result<Ledger, String> + Send + Sync>;

/// What `serve --regions` is given.
#[derive(Clone)]
pub struct MapConfig {
    pub map: RegionMap,
    /// The log options the views are opened with (for `audit verify`'s own read-only opens).
    pub read_options: LogOptions,
    pub open: MapOpener,
    pub open_view: ViewOpener,
}

/// The writers, their lock, and each region's read view.
pub struct MapService {
    config: MapConfig,
    writers: Arc<Mutex<Option<Writers>>>,
    views: BTreeMap<String, View>,
    /// Member -> region, as the writers last published it.
    directory: RwLock<Arc<HashMap<String, String>>>,
    read_max: Duration,
    /// Raises a region's view's durable end: given to the writers each time they are opened.
    durable: regions::DurableHook,
}

struct Writers {
    regions: Regions,
    relay: RelayCursor,
}

struct View {
    reads: Reads,
    /// Its region's durable end, raised by the writers before they answer.
    metrics: Arc<Metrics>,
}

impl MapService {
    /// Opens the writers, then every region's view (blocking).
    pub fn open(config: MapConfig, read_max: Duration) -> Result<MapService, String> {
        let writers = Writers {
            regions: (config.open)()?,
            relay: RelayCursor::default(),
        };
        let mut views = BTreeMap::new();
        for (region, ledger) in &writers.regions.ledgers {
            let view_metrics = Arc::new(Metrics::default());
            (view_metrics.durable_position).store(ledger.log().durable_end(), Ordering::Release);
            let (open_view, name) = (config.open_view.clone(), region.clone());
            let opener: Opener = Arc::new(move || open_view(&name));
            let reads = Reads::open(opener, view_metrics.clone(), read_max)
                .map_err(|e| format!("region {region}'s read view: {e}"))?;
            let view = View {
                reads,
                metrics: view_metrics,
            };
            views.insert(region.clone(), view);
        }
        let directory = RwLock::new(Arc::new(writers.regions.directory.clone()));
        let durable = durable_hook(&views);
        let service = MapService {
            config,
            writers: Arc::new(Mutex::new(None)),
            views,
            directory,
            read_max,
            durable,
        };
        let mut writers = writers;
        writers.regions.durable = Some(service.durable.clone());
        service
            .writers
            .try_lock()
            .expect("nobody else has it yet")
            .replace(writers);
        Ok(service)
    }

    /// The writers, once no other stream holds them (within `read_max`), opened again if the
    /// last use dropped them.
    pub async fn hold(self: &Arc<Self>) -> Result<HeldMap, ApiError> {
        let deadline = Instant::now() + self.read_max;
        let locked = tokio::time::timeout_at(deadline, self.writers.clone().lock_owned()).await;
        let guard = locked.map_err(|_| {
            ApiError::busy(format!(
                "the regions' ledgers were busy with another command stream for {} s; send \
                 the commands again later",
                self.read_max.as_secs_f64()
            ))
        })?;
        let service = self.clone();
        let held = tokio::task::spawn_blocking(move || {
            let mut held = HeldMap { guard, service };
            held.reopen_if_dropped().map(|()| held)
        });
        held.await.map_err(ApiError::ledger)?
    }

    /// The read view of `region`, or 404 if the map has no such region.
    pub fn region_reads(&self, region: &str) -> Result<Reads, ApiError> {
        match self.views.get(region) {
            Some(view) => Ok(view.reads.clone()),
            None => Err(ApiError::not_found(format!(
                "region {region} is not in the region map {}",
                self.config.map.file.display()
            ))),
        }
    }

    /// The view that answers for member `id`: the region holding the member (on `on`, the
    /// region that held it that day); in transit, 409 `in_transit` naming the transfer.
    pub async fn member_reads(&self, id: &str, on: Option<Day>) -> Result<Reads, ApiError> {
        let hinted = (self
            .directory
            .read()
            .unwrap_or_else(PoisonError::into_inner))
        .get(id)
        .cloned();
        let mut copies = Vec::new();
        if let Some(region) = hinted {
            if let Ok(Some(copy)) = self.copy_in(&region, id).await {
                copies.push((region, copy));
            }
        }
        // A region that cannot answer is passed over: the member may be held by another; if
        // none holds it, its error is the answer (it may hold the member).
        let mut unanswered = None;
        if !matches!(copies.first(), Some((region, copy)) if copy.region == *region) {
            copies.clear();
            for region in self.views.keys() {
                match self.copy_in(region, id).await {
                    Ok(Some(copy)) => copies.push((region.clone(), copy)),
                    Ok(None) => {}
                    Err(error) => unanswered = unanswered.or(Some(error)),
                }
            }
        }
        let located = Located::among(id, copies);
        if let (Located::Unknown | Located::InTransit { .. }, Some(error)) = (&located, unanswered)
        {
            return Err(error);
        }
        let region = match located {
            Located::Held { region, account } => match on {
                Some(day) => account.region_on(day).to_string(),
                None => region,
            },
            Located::InTransit {
                transfer,
                from_region,
                to_region,
            } => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "in_transit",
                    format!(
                        "member {id}'s account is in transit from region {from_region} to region \
                         {to_region} (transfer {transfer}); the relay lands it"
                    ),
                ))
            }
            Located::Unknown => {
                return Err(ApiError::not_found(format!(
                    "member {id} is held by no region of the map"
                )))
            }
        };
        self.region_reads(&region)
    }

    /// `region`'s copy of member `id`'s account, from its view.
    async fn copy_in(&self, region: &str, id: &str) -> Result<Option<Member>, ApiError> {
        let id = id.to_string();
        let copy = self.region_reads(region)?;
        let copy = copy
            .run_member(move |ledger| ledger.member_now(&id))
            .await?;
        copy.map_err(ApiError::of_ledger)
    }

    /// The view of the region whose ledger settled claim `id`.
    pub async fn claim_reads(&self, id: &str) -> Result<Reads, ApiError> {
        let mut unanswered = None;
        for (region, view) in &self.views {
            let claim = id.to_string();
            let found = view.reads.run(move |ledger| ledger.explain(&claim)).await;
            match found.and_then(|found| found.map_err(ApiError::of_ledger)) {
                Ok(Ok(_)) => return self.region_reads(region),
                Ok(Err(_)) => {}
                Err(error) => unanswered = unanswered.or(Some(error)),
            }
        }
        // A region that could not answer may hold it.
        Err(unanswered.unwrap_or_else(|| {
            ApiError::not_found(format!("no region of the map holds a settled claim {id}"))
        }))
    }

    /// Every region's own policy versions, from its view (a region's ledger also holds copies
    /// of the policies of regions its members came from; those are the other regions').
    pub async fn policy_lines(&self) -> Result<Result<Vec<Value>, LedgerError>, ApiError> {
        let mut lines = Vec::new();
        for (region, view) in &self.views {
            match view.reads.run(answers::policy_lines).await? {
                Ok(found) => lines.extend(
                    (found.into_iter()).filter(|line| line["region"].as_str() == Some(region)),
                ),
                Err(error) => return Ok(Err(error)),
            }
        }
        Ok(Ok(lines))
    }

    /// `audit verify` over the map: every region, transfers matched, national conservation
    /// (as `gongji --regions MAP audit verify --json`), read-only beside the writers.
    pub async fn verify(self: &Arc<Self>) -> Result<Value, ApiError> {
        // Nothing is written meanwhile: regions read one after another must agree on what is
        // in transit between them.
        let held = self.hold().await?;
        let (map, options) = (self.config.map.clone(), self.config.read_options.clone());
        let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
        let report = tokio::task::spawn_blocking(move || {
            regions::national_verify(&map, &options, parallel, &|_| {})
        });
        let report = report.await.map_err(ApiError::ledger)?;
        drop(held);
        Ok(json!(report.map_err(ApiError::of_ledger)?))
    }

    /// `audit replay` over the map: every region's view folded afresh in memory, and the
    /// national total (as `gongji --regions MAP audit replay --json`).
    pub async fn replay(self: &Arc<Self>) -> Result<Value, ApiError> {
        // Nothing is written meanwhile (as for `verify`).
        let held = self.hold().await?;
        let mut replays = Vec::new();
        for (region, view) in &self.views {
            let replay = (view.reads)
                .run(|ledger| ledger.audit_replay_in_memory(&mut |_, _| {}))
                .await?;
            replays.push(RegionReplay {
                region: region.clone(),
                store: self.config.map.regions[region].describe(),
                replay: Some(replay.map_err(ApiError::of_ledger)?),
            });
        }
        drop(held);
        Ok(json!(NationalReplay::of(replays)))
    }

    /// Runs the relay every [`RELAY_EVERY`] until `shutdown`, skipping a turn while a stream
    /// holds the writers (a stream lands its own transfers, and what it found in transit
    /// before its first line).
    pub async fn relay_until(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RELAY_EVERY) => {}
                _ = shutdown.wait_for(|stopping| *stopping) => return,
            }
            let Ok(guard) = self.writers.clone().try_lock_owned() else {
                continue;
            };
            let service = self.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let mut held = HeldMap { guard, service };
                if let Err(why) = held.relay_pass() {
                    eprintln!("gongji serve: the relay pass failed ({why}); it runs again");
                }
            })
            .await;
        }
    }

    /// Closes the views, then the writers (once no stream holds them).
    pub async fn close(&self) -> Result<(), String> {
        for view in self.views.values() {
            view.reads.close().await;
        }
        let mut guard = self.writers.clone().lock_owned().await;
        match guard.take() {
            Some(writers) => tokio::task::spawn_blocking(move || writers.regions.close())
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

/// Raises a region's durable end for the readers of its view.
fn durable_hook(views: &BTreeMap<String, View>) -> regions::DurableHook {
    let ends: HashMap<String, Arc<Metrics>> = (views.iter())
        .map(|(region, view)| (region.clone(), view.metrics.clone()))
        .collect();
    Arc::new(move |region: &str, end: u64| {
        if let Some(metrics) = ends.get(region) {
            metrics.durable_position.fetch_max(end, Ordering::AcqRel);
        }
    })
}

/// The writers held (on a blocking thread).
pub struct HeldMap {
    guard: OwnedMutexGuard<Option<Writers>>,
    service: Arc<MapService>,
}

impl HeldMap {
    /// The regions' ledgers, and the relay's cursor (a stream lands what was left first).
    pub fn writers(&mut self) -> (&mut Regions, &mut RelayCursor) {
        let writers = (self.guard.as_mut()).expect("a HeldMap holds open writers");
        (&mut writers.regions, &mut writers.relay)
    }

    /// Opens the writers again if the last use dropped them.
    fn reopen_if_dropped(&mut self) -> Result<(), ApiError> {
        if self.guard.is_some() {
            return Ok(());
        }
        let mut regions = (self.service.config.open)().map_err(|why| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("the regions' ledgers cannot be opened: {why}"),
            )
        })?;
        regions.durable = Some(self.service.durable.clone());
        *self.guard = Some(Writers {
            regions,
            relay: RelayCursor::default(),
        });
        Ok(())
    }

    /// Ends a use: publishes the directory and every region's durable end; if the use
    /// `failed`, drops the writers (every one, closed) so that the next use opens them again.
    pub fn finish(&mut self, failed: bool) {
        if failed {
            if let Some(writers) = self.guard.take() {
                if let Err(error) = writers.regions.close() {
                    eprintln!(
                        "gongji serve: closing the regions' ledgers after a failure: {error}"
                    );
                }
            }
            return;
        }
        let Some(writers) = self.guard.as_ref() else {
            return;
        };
        for (region, ledger) in &writers.regions.ledgers {
            (self.service.durable)(region, ledger.log().durable_end());
        }
        let directory = Arc::new(writers.regions.directory.clone());
        *(self.service.directory.write()).unwrap_or_else(PoisonError::into_inner) = directory;
    }

    /// One relay pass (opening the writers first if they were dropped); what it leaves in
    /// transit is said once each time the count changes.
    fn relay_pass(&mut self) -> Result<(), String> {
        self.reopen_if_dropped().map_err(|e| e.message)?;
        let writers = self.guard.as_mut().expect("opened above");
        let was_settled = writers.relay.settled();
        let passed = writers.relay.pass(&mut writers.regions, &mut |_, _| {});
        let failed = passed.is_err();
        let said = match &passed {
            Ok(report) if !report.in_transit.is_empty() || !report.owed_left.is_empty() => {
                (was_settled || !report.landed.is_empty() || report.owed_landed > 0).then(|| {
                    format!(
                        "gongji serve: the relay left {} transfers in transit and {} fund events \
                         owed; it tries again",
                        report.in_transit.len(),
                        report.owed_left.len()
                    )
                })
            }
            _ => None,
        };
        if let Some(said) = said {
            eprintln!("{said}");
        }
        // Published only when the pass wrote something (or failed): most passes find nothing.
        let wrote = (passed.as_ref()).is_ok_and(|r| !r.landed.is_empty() || r.owed_landed > 0);
        if wrote || failed {
            self.finish(failed);
        }
        passed.map(drop).map_err(|e| e.to_string())
    }
}
