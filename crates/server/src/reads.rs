//! The ledger the server holds, and the two ways in. [`Writer`] holds the one writing
//! [`Ledger`] behind a lock for a whole command stream (a second stream waits up to
//! `read_max` for it, then 503 `busy`). [`Reads`] never takes that lock: queries are answered
//! from a read-only view of the same ledger ([`Ledger::open_read_only`]), beside the writer,
//! brought up to the durable end before it answers. A read is answered within `read_max` or
//! refused with 503 `timeout` (a query already running then finishes on its thread, unseen).
//!
//! The view: one read-only [`Ledger`] behind an [`RwLock`]. Queries (`&Ledger`; the ledger is
//! `Sync` and its queries mutate nothing) share read guards. A query notes at its arrival the
//! durable end the writer had reached, `acknowledged` (the writer's sink raises it before it
//! sends a line's answer, so it covers every line answered before the query was sent). The
//! view has two ends: its log's durable end, and where its projections are folded to
//! ([`Ledger::folded_end`], behind the log while the follower folds). A read ([`Reads::run`])
//! needs the projections folded to `acknowledged`; but while the follower is partway through
//! a fold, a member's read ([`Reads::run_member`]: account, year, history, inheritance,
//! transfers) needs only the log there: the ledger then answers it from the member's own
//! stream folded, at the log's end. If the view is behind what a query needs, the query
//! waits (within `read_max`) for the view to be published there. Readers never fold records
//! themselves: one thread, the follower, keeps the view at the writer's durable end while
//! queries come (every few milliseconds, and at once when a reader waits): under the write
//! guard it extends the log to the durable end the writer published in `DIR/DURABLE_END`
//! (which it writes after the sync and before any answer; in PostgreSQL the log's head row,
//! which moves in the transaction that commits the records) and folds at most
//! [`FOLD_STEP_RECORDS`] records ([`Ledger::extend_read_only`], [`Ledger::fold_read_only`];
//! where the writer's [`gongji_ledger::EventHandover`] still holds them, the fold takes the
//! writer's own decided events rather than reading and decoding those records),
//! publishes both ends, and lets the readers blocked on the view in before its next step; so
//! that a unit of 50,000 records (a month's `allocate`) holds a member's read for one step, not
//! for its whole fold. Past [`FOLDED_IN_MEMORY_MAX`] records folded in memory since its open
//! (or [`INDEX_IN_MEMORY_MAX`] index entries), a fresh view is opened on another thread,
//! brought up to date outside the lock (it starts from the projections the writer stored
//! last: at least once a second during a command stream) and swapped in, so memory stays
//! bounded; a view whose refresh failed is dropped and opened again.
//!
//! A lost database connection (a failover, in PostgreSQL) is not waited out under the view's
//! lock. The view is opened so that its reads ride out no lost connection (the opener's duty:
//! `gongji serve` opens it with a `reconnect_within` of zero): one that finds its connection
//! lost fails at once, and the next tries once to connect (bounded by the connect timeout).
//! So once the loss is seen (at once for a reset connection; for a primary that vanished
//! without a word, when TCP keepalive gives up), the follower's refresh fails, the view is
//! dropped, and the follower opens another outside the lock (once a second while the database
//! cannot be reached). Readers never open one themselves: a reader finding no view waits for
//! the follower's, within `read_max`, then gets 503 `timeout`, so no read waits out a reconnect
//! window under the view's lock. A query that meets the lost connection fails with its error
//! (503 `unavailable`). The log's reads try once to connect again at the next read; the
//! projections' snapshot stays lost until the view is refreshed, which the writer moving on
//! would not bring while nothing is written: a query that leaves the view's snapshot lost
//! ([`Ledger::snapshot_lost`]) wakes the follower, which refreshes the view at once (one
//! attempt to connect), or drops it and opens another.
//!
//! Invariants: an answer is of the view under the read guard the query holds, whose log (a
//! member's read, partway through a fold) or projections reach `acknowledged` at its arrival
//! (checked under that guard), and which only ever holds records the writer published as
//! durable (the read-only open and refresh read to the published durable end and no further);
//! projections partway through a fold (part of a unit) answer nothing. The ends published are
//! the view's own (published under its write guard). A view is replaced only by one whose log
//! is at least as far along. Nothing under the view's lock waits for a new database
//! connection longer than one attempt to connect (the view's reads ride no loss out); a view
//! is opened only by the follower (or the thread it spawns), outside the lock. The server's
//! only writing [`Ledger`] is in [`LedgerCell`]; a ledger that stopped (a stream cut with lines
//! not made durable) is dropped and opened again before anything else uses it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use gongji_ledger::{Ledger, Refreshed};
use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio::time::Instant;

use crate::error::ApiError;
use crate::metrics::Metrics;

/// Records a view may fold in memory over the stored projections before a fresh one is opened
/// (a fresh view starts from the projections the writer last stored: at the end of each
/// command stream, and during a long one at least once a second). Measured on the
/// 100,000-member year (while the view still encoded what it folded into its layer): about
/// 870 MB resident with 1.9 million records folded; opening a fresh view costs 0.8 to 2.4 s
/// of a core, so it is done rarely.
pub const FOLDED_IN_MEMORY_MAX: u64 = 1_000_000;
/// Stream-index entries a view may hold in memory before a fresh one is opened.
pub const INDEX_IN_MEMORY_MAX: usize = 2 << 20;
/// Refreshes of a fresh view outside the lock before the last one under it.
const REFRESHES_MAX: u32 = 4;

/// The lock and what it guards: `None` once closed, or when opening again failed.
type Cell = Arc<Mutex<Option<Ledger>>>;

/// Opens the ledger (again): as the command line opens it.
pub type Opener = Arc<dyn Fn() -> Result<Ledger, String> + Send + Sync>;

#[derive(Clone)]
pub struct LedgerCell {
    open: Opener,
    ledger: Cell,
    read_max: Duration,
}

impl LedgerCell {
    pub fn new(open: Opener, ledger: Ledger, read_max: Duration) -> LedgerCell {
        LedgerCell {
            open,
            ledger: Arc::new(Mutex::new(Some(ledger))),
            read_max,
        }
    }

    /// The ledger, once no other command stream holds it, if that is before `deadline`.
    async fn lock(&self, deadline: Instant) -> Result<OwnedMutexGuard<Option<Ledger>>, ApiError> {
        match tokio::time::timeout_at(deadline, self.ledger.clone().lock_owned()).await {
            Ok(guard) => Ok(guard),
            Err(_) => Err(ApiError::busy(format!(
                "the ledger was busy with another command stream for {} s; send the commands \
                 again later",
                self.read_max.as_secs_f64()
            ))),
        }
    }

    /// Closes the ledger (at shutdown): waits for the stream that holds it.
    pub async fn close(&self) -> Result<(), String> {
        let mut guard = self.ledger.clone().lock_owned().await;
        match guard.take() {
            Some(ledger) => tokio::task::spawn_blocking(move || ledger.close())
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

fn unavailable() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the ledger is not open (closed, or it could not be opened again: see the server's log)",
    )
}

/// The read-only view queries are answered from (see the module documentation).
struct ReadView {
    view: RwLock<Option<Ledger>>,
    /// Opens a fresh read-only view.
    open: Opener,
    /// `durable_position`: the durable end the writer reached, raised before each answer.
    metrics: Arc<Metrics>,
    /// What the follower and the readers waiting for it share.
    follow: std::sync::Mutex<Follow>,
    /// The view moved on: readers waiting for a durable end look again.
    moved: Condvar,
    /// A reader waits for the view: the follower refreshes it at once.
    wanted: Condvar,
    /// When a query last asked for the view (milliseconds since `started`, plus one; 0: none
    /// has yet): the follower follows the writer while queries come, and rests otherwise.
    asked_at_ms: AtomicU64,
    started: std::time::Instant,
    /// A fresh view is being opened on another thread.
    reopening: AtomicBool,
    /// [`Reads::close`] took the view: none is opened again, the follower ends.
    closed: AtomicBool,
    /// Held while a view is opened, so that one is opened at a time.
    opening: std::sync::Mutex<()>,
    /// Readers blocked on the view's read guard: between two fold steps the follower lets them
    /// in before it takes the write guard again.
    readers_waiting: AtomicUsize,
    /// Records folded in memory past which a fresh view is opened ([`FOLDED_IN_MEMORY_MAX`]),
    /// beyond those the view folded when it was opened (`folded_at_open`: with the sled
    /// projection store, which a reader cannot open, a view folds the whole log at its open,
    /// and opening it again would not help).
    folded_max: u64,
    folded_at_open: AtomicU64,
}

/// The view's ends as last published (under its write guard, so they are the view's own), and
/// the furthest durable end a waiting reader needs.
#[derive(Default)]
struct Follow {
    /// The view's log's durable end.
    log: u64,
    /// Where the view's projections are folded to; 0 while a fold stopped partway.
    folded: u64,
    /// What a member's read is answered at: where the projections are, or, while a fold
    /// stopped partway, the log's durable end.
    member: u64,
    wanted: u64,
    /// The acknowledged ends of the reads needing the projections ([`Need::Folded`]) that
    /// waited and are not answered yet (how many at each end).
    folded_waiting: std::collections::BTreeMap<u64, usize>,
    /// A view is there: false from when a refresh that failed dropped it until the follower
    /// opened another (readers wait for that, within `read_max`).
    view_open: bool,
    /// A query found the view's projections cut from their database (a lost connection: see
    /// [`Ledger::snapshot_lost`]), which fails every read of them until a refresh: the follower
    /// extends the view at once, new records or not, which connects again (or fails, and the
    /// view is opened again). Cleared when a view's snapshot is taken again under the write
    /// guard.
    lost: bool,
}

impl Follow {
    /// Whether a read needing the projections waits for an end they are folded to now: the
    /// follower then leaves the view to it before starting another fold (which would take
    /// the projections partway again before that read got in).
    fn folded_read_answerable(&self) -> bool {
        self.folded > 0
            && self
                .folded_waiting
                .keys()
                .next()
                .is_some_and(|&least| least <= self.folded)
    }

    /// The published end a read that needs `need` compares with.
    fn end(&self, need: Need) -> u64 {
        match need {
            Need::Member => self.member,
            Need::Folded => self.folded,
        }
    }
}

/// What a query needs of the view to be answered at a durable end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    /// Its projections there, or, while a fold stopped partway, its log: a member's read,
    /// then folded from the member's own stream (`Ledger::folded_end`).
    Member,
    /// Its projections folded there: every other read.
    Folded,
}

/// The read side: runs a query on a blocking thread against the read-only view.
#[derive(Clone)]
pub struct Reads {
    view: Arc<ReadView>,
    read_max: Duration,
}

impl Reads {
    /// Opens the view (blocking) with `open`, and starts the thread that follows the writer;
    /// `metrics.durable_position` must be the writer's durable end already. The views `open`
    /// opens must ride out no lost connection (see the module documentation).
    pub fn open(open: Opener, metrics: Arc<Metrics>, read_max: Duration) -> Result<Reads, String> {
        let view = Arc::new(ReadView::open(open, metrics, FOLDED_IN_MEMORY_MAX)?);
        ReadView::start_following(&view)?;
        Ok(Reads { view, read_max })
    }

    /// Drops the view's ledger on a blocking thread (a ledger in PostgreSQL must not be dropped
    /// on the runtime's threads) and opens no other: for the server's stop, once no query runs.
    pub async fn close(&self) {
        let view = self.view.clone();
        view.closed.store(true, Ordering::Release);
        let _ = tokio::task::spawn_blocking(move || {
            let _one = view.opening.lock().unwrap_or_else(PoisonError::into_inner);
            let taken = view.write().take();
            drop(taken);
            // Under `follow`, which a reader waiting for a view holds from its look at `closed`
            // to its wait: it cannot miss this.
            let _follow = view.follow();
            view.wanted.notify_all();
            view.moved.notify_all();
        })
        .await;
    }

    /// `query`'s answer from the view once its projections are folded to the durable end
    /// acknowledged at the query's arrival.
    pub async fn run<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Ledger) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        self.run_needing(Need::Folded, query).await
    }

    /// A read of one member's data (account, year, history, inheritance, transfers): answered
    /// from the projections once they reach the durable end acknowledged at the query's
    /// arrival, or, while the follower is partway through a fold, as soon as the view's log
    /// reaches it, at the log's end, without waiting for the fold (the ledger then folds the
    /// member's own stream: `Ledger::folded_end`).
    pub async fn run_member<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Ledger) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        self.run_needing(Need::Member, query).await
    }

    async fn run_needing<T: Send + 'static>(
        &self,
        need: Need,
        query: impl FnOnce(&Ledger) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let acknowledged = self.view.metrics.durable_position.load(Ordering::Acquire);
        let deadline = Instant::now() + self.read_max;
        let view = self.view.clone();
        let until = deadline.into_std();
        let asked =
            tokio::task::spawn_blocking(move || view.answer(need, acknowledged, until, query));
        let timeout = || {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "the answer took longer than {} s",
                    self.read_max.as_secs_f64()
                ),
            )
        };
        match tokio::time::timeout_at(deadline, asked).await {
            Ok(Ok(Some(answer))) => Ok(answer?),
            Ok(Ok(None)) | Err(_) => Err(timeout()),
            Ok(Err(joined)) => Err(ApiError::ledger(joined)),
        }
    }
}

/// How often the follower looks at the writer's durable end while queries come.
const FOLLOW_TICK: Duration = Duration::from_millis(2);
/// How long the follower keeps following after the last query (then it waits to be asked).
const FOLLOW_AFTER_ASKED: Duration = Duration::from_secs(5);
/// A fresh view is brought up to date outside the view's lock until its last refresh folded
/// fewer records than this; the rest is folded under the lock, before it is swapped in.
const FRESH_CATCH_UP_RECORDS: u64 = 20_000;
/// Records the follower folds under the view's write guard at a time (a few milliseconds):
/// between two steps, readers get in (a member's read is answered from the log meanwhile).
const FOLD_STEP_RECORDS: u64 = 256;
/// A member's read is answered from the member's own stream while a fold is partway only if
/// the fold has more than this many records left (a month's `allocate`, about 51,600 records,
/// takes a while); nearer its end the read waits for it: folding a member's stream per read
/// costs CPU that the writer beside it needs.
const MEMBER_FROM_LOG_REMAINING: u64 = 8192;
/// How long the follower, between two fold steps, leaves the view to the readers blocked on it.
const HANDOFF_MAX: Duration = Duration::from_millis(1);
/// How long the follower waits after failing to open a view before it tries again.
const REOPEN_PAUSE: Duration = Duration::from_secs(1);

impl ReadView {
    fn open(open: Opener, metrics: Arc<Metrics>, folded_max: u64) -> Result<ReadView, String> {
        let mut ledger = open()?;
        let opened = ledger.refresh_read_only().map_err(|e| e.to_string())?;
        Ok(ReadView {
            folded_at_open: AtomicU64::new(opened.folded_in_memory),
            view: RwLock::new(Some(ledger)),
            open,
            metrics,
            follow: std::sync::Mutex::new(Follow {
                log: opened.durable_end,
                folded: opened.folded_end.unwrap_or(0),
                member: member_end(&opened),
                wanted: 0,
                folded_waiting: Default::default(),
                view_open: true,
                lost: false,
            }),
            moved: Condvar::new(),
            wanted: Condvar::new(),
            asked_at_ms: AtomicU64::new(0),
            started: std::time::Instant::now(),
            reopening: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            opening: std::sync::Mutex::new(()),
            readers_waiting: AtomicUsize::new(0),
            folded_max,
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Option<Ledger>> {
        self.readers_waiting.fetch_add(1, Ordering::AcqRel);
        let guard = self.view.read().unwrap_or_else(PoisonError::into_inner);
        self.readers_waiting.fetch_sub(1, Ordering::AcqRel);
        guard
    }

    /// Between two fold steps: lets the readers blocked on the view in (within
    /// [`HANDOFF_MAX`]) before the follower takes the write guard again.
    fn let_readers_in(&self) {
        let until = std::time::Instant::now() + HANDOFF_MAX;
        while self.readers_waiting.load(Ordering::Acquire) > 0 && std::time::Instant::now() < until
        {
            std::thread::yield_now();
        }
    }

    fn write(&self) -> RwLockWriteGuard<'_, Option<Ledger>> {
        self.view.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn follow(&self) -> std::sync::MutexGuard<'_, Follow> {
        self.follow.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `query`'s answer from a view at least at `acknowledged` (its log, or its projections:
    /// `need`), or `None` past `deadline`. Blocking: waits for the follower when the view is
    /// behind.
    fn answer<T>(
        self: &Arc<Self>,
        need: Need,
        acknowledged: u64,
        deadline: std::time::Instant,
        query: impl FnOnce(&Ledger) -> T,
    ) -> Option<Result<T, ApiError>> {
        let asked = self.started.elapsed().as_millis() as u64 + 1;
        self.asked_at_ms.fetch_max(asked, Ordering::Relaxed);
        let mut waiting = None;
        let answer = self.answer_once_there(need, acknowledged, deadline, query, &mut waiting);
        if let Some(at) = waiting {
            let mut follow = self.follow();
            if let Some(count) = follow.folded_waiting.get_mut(&at) {
                *count -= 1;
                if *count == 0 {
                    follow.folded_waiting.remove(&at);
                }
            }
        }
        answer
    }

    /// [`ReadView::answer`]'s loop; a read needing the projections that waits is noted in
    /// [`Follow::folded_waiting`] (`waiting`: at which end) until the caller answered it.
    fn answer_once_there<T>(
        self: &Arc<Self>,
        need: Need,
        acknowledged: u64,
        deadline: std::time::Instant,
        query: impl FnOnce(&Ledger) -> T,
        waiting: &mut Option<u64>,
    ) -> Option<Result<T, ApiError>> {
        loop {
            let guard = self.read();
            match guard.as_ref() {
                Some(ledger) if reaches(ledger, need, acknowledged) => {
                    let answer = query(ledger);
                    if ledger.snapshot_lost() {
                        self.follow().lost = true;
                        self.wanted.notify_all();
                    }
                    return Some(Ok(answer));
                }
                Some(_) => {
                    drop(guard);
                    if need == Need::Folded && waiting.is_none() {
                        *waiting = Some(acknowledged);
                        let mut follow = self.follow();
                        *follow.folded_waiting.entry(acknowledged).or_default() += 1;
                    }
                    if !self.wait_for(need, acknowledged, deadline) {
                        return None;
                    }
                }
                None if self.closed.load(Ordering::Acquire) => return Some(Err(unavailable())),
                None => {
                    drop(guard);
                    if !self.wait_for_view(deadline) {
                        return None;
                    }
                }
            }
        }
    }

    /// Waits until the follower has opened a view again (a refresh that failed dropped the
    /// last one: a lost database connection, say); false past `deadline`. Readers never open
    /// one themselves: during a failover each would wait out its own attempt to connect.
    fn wait_for_view(&self, deadline: std::time::Instant) -> bool {
        let follow = self.follow();
        self.wanted.notify_one();
        self.wait_until(follow, deadline, |follow| {
            follow.view_open || self.closed.load(Ordering::Acquire)
        })
    }

    /// Asks the follower for `acknowledged` and waits until the view is published at least
    /// there, as `need` says (or gone: the caller looks again); false past `deadline`.
    fn wait_for(&self, need: Need, acknowledged: u64, deadline: std::time::Instant) -> bool {
        let mut follow = self.follow();
        follow.wanted = follow.wanted.max(acknowledged);
        self.wanted.notify_one();
        self.wait_until(follow, deadline, |follow| follow.end(need) >= acknowledged)
    }

    /// Waits (releasing `follow`) until `done` holds of what is published, woken each time the
    /// view moves; false past `deadline`.
    fn wait_until(
        &self,
        mut follow: std::sync::MutexGuard<'_, Follow>,
        deadline: std::time::Instant,
        done: impl Fn(&Follow) -> bool,
    ) -> bool {
        while !done(&follow) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            follow = self
                .moved
                .wait_timeout(follow, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Publishes the view's ends (called under the view's write guard, so that what is
    /// published is the view's own) and wakes the readers waiting for them. `snapshot_taken`:
    /// the view's projections were read afresh (an extend, or a view just opened).
    fn publish(&self, reached: &Refreshed, snapshot_taken: bool) {
        let mut follow = self.follow();
        follow.log = reached.durable_end;
        follow.folded = reached.folded_end.unwrap_or(0);
        follow.member = member_end(reached);
        follow.view_open = true;
        if snapshot_taken {
            follow.lost = false;
        }
        drop(follow);
        self.moved.notify_all();
    }

    /// Starts the follower: a thread that keeps the view at the writer's durable end while
    /// queries come (and at once when a reader waits), so that readers never fold records
    /// themselves. It ends when the view is dropped.
    fn start_following(view: &Arc<Self>) -> Result<(), String> {
        let weak = Arc::downgrade(view);
        std::thread::Builder::new()
            .name("gongji-read-follow".into())
            .spawn(move || {
                while let Some(view) = weak.upgrade() {
                    if view.closed.load(Ordering::Acquire) {
                        break;
                    }
                    view.follow_once();
                }
            })
            .map(|_| ())
            .map_err(|e| format!("the read view's follower could not start: {e}"))
    }

    /// One step of the follower: extends the view's log if a reader waits or queries came
    /// lately and the writer moved on, and folds a step if its projections are behind its log;
    /// otherwise waits a tick (or for a reader).
    fn follow_once(self: &Arc<Self>) {
        let follow = self.follow();
        if !follow.view_open {
            drop(follow);
            self.reopen();
            return;
        }
        let durable = self.metrics.durable_position.load(Ordering::Acquire);
        let lately = match self.asked_at_ms.load(Ordering::Relaxed) {
            0 => false,
            asked => {
                let since = self
                    .started
                    .elapsed()
                    .saturating_sub(Duration::from_millis(asked - 1));
                since < FOLLOW_AFTER_ASKED
            }
        };
        let extend = follow.wanted > follow.log || follow.lost || (lately && durable > follow.log);
        let due = extend || follow.wanted > follow.folded || follow.folded < follow.log;
        if due && follow.folded_read_answerable() {
            let _ = self.wanted.wait_timeout(follow, HANDOFF_MAX);
            return;
        }
        if !due {
            let tick = if lately {
                FOLLOW_TICK
            } else {
                FOLLOW_AFTER_ASKED
            };
            let _ = self.wanted.wait_timeout(follow, tick);
            return;
        }
        drop(follow);
        if self.read().is_none() {
            self.reopen();
            return;
        }
        self.refresh(extend);
    }

    /// Opens a view in place of one dropped; if that fails (the database still unreachable),
    /// pauses [`REOPEN_PAUSE`] before the follower's next step tries again.
    fn reopen(&self) {
        if let Err(error) = self.open_again(false) {
            eprintln!("gongji serve: the read view cannot be opened: {error}");
            std::thread::sleep(REOPEN_PAUSE);
        }
    }

    /// Under the write guard: extends the view's log to the writer's durable end (if
    /// `extend`), folds one step ([`FOLD_STEP_RECORDS`]) and publishes both ends; then lets
    /// the readers waiting in. A view that cannot follow is dropped (the follower opens it
    /// again).
    fn refresh(self: &Arc<Self>, extend: bool) {
        let mut guard = self.write();
        let Some(ledger) = guard.as_mut() else {
            return;
        };
        let stepped = match extend {
            true => ledger.extend_read_only().map(|_| ()),
            false => Ok(()),
        }
        .and_then(|()| ledger.fold_read_only(FOLD_STEP_RECORDS));
        match stepped {
            Ok(refreshed) => {
                let metrics = &self.metrics;
                let read = refreshed.folded_now - refreshed.handed_now;
                metrics
                    .view_folded_handed
                    .fetch_add(refreshed.handed_now, Ordering::Relaxed);
                metrics.view_folded_read.fetch_add(read, Ordering::Relaxed);
                self.publish(&refreshed, extend);
                drop(guard);
                let folded_at_open = self.folded_at_open.load(Ordering::Acquire);
                if over_bound(&refreshed, folded_at_open + self.folded_max) {
                    self.open_again_elsewhere();
                }
                self.let_readers_in();
            }
            Err(error) => {
                let broken = guard.take();
                self.follow().view_open = false;
                drop(guard);
                drop(broken);
                self.moved.notify_all();
                eprintln!(
                    "gongji serve: the read view could not follow the ledger ({error}); it is \
                     opened again"
                );
            }
        }
    }

    /// Opens a fresh view on another thread and swaps it in, unless one is being opened.
    fn open_again_elsewhere(self: &Arc<Self>) {
        if self.reopening.swap(true, Ordering::AcqRel) {
            return;
        }
        let view = self.clone();
        let spawned = std::thread::Builder::new()
            .name("gongji-read-view".into())
            .spawn(move || {
                if let Err(error) = view.open_again(true) {
                    eprintln!("gongji serve: a fresh read view could not be opened: {error}");
                }
                view.reopening.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            self.reopening.store(false, Ordering::Release);
        }
    }

    /// Opens a fresh view (outside the view's lock), brings it up to the durable end published
    /// now (at least where the current view is) and swaps it in. Unless `replace`, a view
    /// already there (opened by another thread meanwhile) is kept. Blocking.
    fn open_again(&self, replace: bool) -> Result<(), String> {
        let _one = self.opening.lock().unwrap_or_else(PoisonError::into_inner);
        if self.closed.load(Ordering::Acquire) {
            return Err("the server is stopping".into());
        }
        if !replace && self.read().is_some() {
            return Ok(());
        }
        let mut fresh = (self.open)()?;
        // The long folds (from the writer's last stored projections, and what became durable
        // meanwhile) run outside the view's lock; under it, only the last few records.
        let mut folded = 0;
        for _ in 0..REFRESHES_MAX {
            let caught_up = fresh.refresh_read_only().map_err(|e| e.to_string())?;
            let last = caught_up.folded_in_memory.saturating_sub(folded);
            folded = caught_up.folded_in_memory;
            if last < FRESH_CATCH_UP_RECORDS {
                break;
            }
        }
        let old = {
            let mut guard = self.write();
            let end = fresh.refresh_read_only().map_err(|e| e.to_string())?;
            let current = guard.as_ref().map_or(0, |view| view.log().durable_end());
            if end.durable_end < current {
                return Ok(()); // the durable end could not be read just now: keep the view
            }
            self.folded_at_open
                .store(end.folded_in_memory, Ordering::Release);
            self.publish(&end, true);
            guard.replace(fresh)
        };
        drop(old);
        Ok(())
    }
}

/// Where a member's read is answered (see [`Follow::member`]): where the projections are; while
/// a fold is partway with more than [`MEMBER_FROM_LOG_REMAINING`] records left, the log's end;
/// nearer its end, nowhere yet (0: the read waits for the fold).
fn member_end(reached: &Refreshed) -> u64 {
    member_end_of(
        reached.folded_end,
        reached.fold_remaining,
        reached.durable_end,
    )
    .unwrap_or(0)
}

/// Where a view with these ends answers a member's read (see [`member_end`]; `None`: nowhere
/// yet): where its projections are folded to (`None` while a fold is partway), what that fold
/// has left, and its log's durable end.
fn member_end_of(folded_end: Option<u64>, fold_remaining: u64, durable_end: u64) -> Option<u64> {
    match folded_end {
        Some(end) => Some(end),
        None if fold_remaining > MEMBER_FROM_LOG_REMAINING => Some(durable_end),
        None => None,
    }
}

/// Whether `ledger` reaches `acknowledged` as `need` says (a view whose projections cannot say
/// where they are is let answer: its query meets the same error).
fn reaches(ledger: &Ledger, need: Need, acknowledged: u64) -> bool {
    match need {
        Need::Member => match (ledger.folded_end(), ledger.fold_remaining()) {
            (Ok(folded), Ok(left)) => member_end_of(folded, left, ledger.log().durable_end())
                .is_some_and(|end| end >= acknowledged),
            _ => true,
        },
        Need::Folded => ledger
            .folded_end()
            .map_or(true, |end| end.is_some_and(|end| end >= acknowledged)),
    }
}

/// Whether a view holds more in memory than it may: a fresh one is opened.
fn over_bound(refreshed: &Refreshed, folded_max: u64) -> bool {
    refreshed.folded_in_memory > folded_max || refreshed.index_in_memory > INDEX_IN_MEMORY_MAX
}

/// The write side: the lock held for a whole command stream.
#[derive(Clone)]
pub struct Writer(pub LedgerCell);

/// The ledger held for writing, on a blocking thread.
pub struct Held {
    guard: OwnedMutexGuard<Option<Ledger>>,
    open: Opener,
}

impl Writer {
    pub async fn hold(&self) -> Result<Held, ApiError> {
        let deadline = Instant::now() + self.0.read_max;
        let guard = self.0.lock(deadline).await?;
        if guard.is_none() {
            return Err(unavailable());
        }
        Ok(Held {
            guard,
            open: self.0.open.clone(),
        })
    }
}

impl Held {
    pub fn ledger(&mut self) -> &mut Ledger {
        self.guard
            .as_mut()
            .expect("Writer::hold gives out only a held ledger, and only `finish` takes it")
    }

    /// Ends a stream: stores the projections so that queries see every line answered; if the
    /// stream stopped the ledger, drops it and opens it again. Blocking.
    pub fn finish(mut self) {
        let Some(mut ledger) = self.guard.take() else {
            return;
        };
        if ledger.commit().is_ok() {
            *self.guard = Some(ledger);
            return;
        }
        drop(ledger);
        match (self.open)() {
            Ok(ledger) => *self.guard = Some(ledger),
            Err(e) => eprintln!("gongji serve: cannot open the ledger again: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gongji_ledger::LogOptions;

    const POLICY: &str = include_str!("../../../policies/500000-2024-01-01.json");

    fn enroll(member: &str) -> String {
        format!(
            r#"{{"cmd":"enroll","member":"{member}","region":"500000","born":"1980-01-01","status":"active","scheme":"employer","date":"2024-01-01"}}"#
        )
    }

    fn folded(view: &ReadView) -> u64 {
        let mut guard = view.write();
        let ledger = guard.as_mut().expect("a view");
        ledger
            .refresh_read_only()
            .expect("refresh")
            .folded_in_memory
    }

    /// A read-only view of the ledger in `dir` (no follower: the caller starts one, or moves
    /// the view itself), with the metrics it reads the writer's durable end from.
    fn view_of(dir: &std::path::Path, folded_max: u64) -> (Arc<ReadView>, Arc<Metrics>) {
        let dir = dir.to_path_buf();
        let open: Opener = Arc::new(move || {
            Ledger::open_read_only(&dir, LogOptions::default()).map_err(|e| e.to_string())
        });
        let metrics = Arc::new(Metrics::default());
        let view = ReadView::open(open, metrics.clone(), folded_max).expect("view");
        (Arc::new(view), metrics)
    }

    /// A ledger in a temporary directory, its policy loaded (not yet durable).
    fn ledger_with_policy() -> (tempfile::TempDir, Ledger) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut writer = Ledger::open(tmp.path()).expect("open");
        writer
            .apply_line(&format!(r#"{{"cmd":"load_policy","policy":{POLICY}}}"#), 0)
            .expect("policy");
        (tmp, writer)
    }

    fn retiree(member: &str) -> String {
        format!(
            r#"{{"cmd":"enroll","member":"{member}","region":"500000","born":"1950-01-01","status":"retired","scheme":"employer","date":"2024-01-01"}}"#
        )
    }

    /// A view (no follower) of a ledger of `members` retirees, then one `allocate` crediting
    /// each (one unit), acknowledged; the view's log extended over it and one step folded.
    /// Returns the view, the acknowledged end, the last member's balance after the unit, and
    /// what must outlive the view.
    fn view_partway_through_a_unit(
        members: u64,
    ) -> (
        Arc<ReadView>,
        u64,
        gongji_domain::Money,
        (tempfile::TempDir, Ledger),
    ) {
        let (tmp, mut writer) = ledger_with_policy();
        for i in 0..members {
            writer
                .apply_line(&retiree(&format!("R{i}")), 0)
                .expect("line");
        }
        writer.commit().expect("commit");
        // No follower: the view moves only when this test moves it.
        let (view, metrics) = view_of(tmp.path(), u64::MAX);
        let last = format!("R{}", members - 1);
        let before = writer.account(&last).expect("account").expect("enrolled");
        // One command, one unit: a credit for every retiree.
        let allocate = r#"{"cmd":"allocate","region":"500000","month":"2024-01"}"#;
        writer.apply_line(allocate, 0).expect("allocate");
        writer.commit().expect("durable");
        let acknowledged = writer.log().durable_end();
        let after = writer.account(&last).expect("account").expect("enrolled");
        assert_ne!(after.balance, before.balance, "the unit credits the member");
        metrics
            .durable_position
            .fetch_max(acknowledged, Ordering::Release);
        // The follower's first step beside the acknowledged answer: the log extended, one
        // step of the unit folded.
        view.refresh(true);
        assert_eq!(view.follow().log, acknowledged);
        assert_eq!(view.follow().folded, 0, "partway through the unit's fold");
        (view, acknowledged, after.balance, (tmp, writer))
    }

    /// The last retiree's balance (of `view_partway_through_a_unit`'s `members`).
    fn last_balance(
        members: u64,
    ) -> impl Fn(&Ledger) -> Result<Option<gongji_domain::Money>, gongji_ledger::LedgerError> {
        let last = format!("R{}", members - 1);
        move |ledger: &Ledger| ledger.account(&last).map(|a| a.map(|a| a.balance))
    }

    fn soon() -> std::time::Instant {
        std::time::Instant::now() + Duration::from_millis(200)
    }

    /// Folds `view` to `acknowledged`, then checks that a read needing `need` answers the last
    /// retiree's balance `after` (of `view_partway_through_a_unit`'s `members`).
    fn answers_once_folded(
        view: &Arc<ReadView>,
        need: Need,
        acknowledged: u64,
        members: u64,
        after: gongji_domain::Money,
    ) {
        while view.follow().folded < acknowledged {
            view.refresh(false);
        }
        let answered = view.answer(need, acknowledged, soon(), last_balance(members));
        let answered = answered.expect("answered").expect("an answer");
        assert_eq!(answered.expect("a balance"), Some(after));
    }

    #[test]
    fn a_members_read_during_a_large_units_fold_answers_the_state_after_the_unit() {
        let members = MEMBER_FROM_LOG_REMAINING + 3 * FOLD_STEP_RECORDS;
        let (view, acknowledged, after, (_tmp, writer)) = view_partway_through_a_unit(members);
        let answered = view.answer(Need::Member, acknowledged, soon(), last_balance(members));
        let answered = answered.expect("answered at once").expect("an answer");
        assert_eq!(answered.expect("a balance"), Some(after));
        let fund = |ledger: &Ledger| ledger.fund("500000").is_ok();
        assert!(
            view.answer(Need::Folded, acknowledged, soon(), fund)
                .is_none(),
            "a fund waits for the fold"
        );
        answers_once_folded(&view, Need::Folded, acknowledged, members, after);
        writer.close().expect("close");
    }

    #[test]
    fn the_follower_rests_until_a_query_asks_for_the_view() {
        let (tmp, mut writer) = ledger_with_policy();
        writer.commit().expect("commit");
        let (view, metrics) = view_of(tmp.path(), u64::MAX);
        let opened_at = view.follow().log;
        ReadView::start_following(&view).expect("follower");
        writer.apply_line(&enroll("M1"), 0).expect("line");
        writer.commit().expect("durable");
        let acknowledged = writer.log().durable_end();
        metrics
            .durable_position
            .fetch_max(acknowledged, Ordering::Release);
        // No query yet: the view stays where it opened, however far the writer goes (before,
        // the follower followed for its first seconds as if a query had just come).
        std::thread::sleep(FOLLOW_TICK * 50);
        assert_eq!(view.follow().log, opened_at, "at rest");
        // A query asks for the view: it is followed to the acknowledged end, and answered.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let answered = view.answer(Need::Folded, acknowledged, deadline, |ledger: &Ledger| {
            ledger.account("M1").map(|a| a.is_some())
        });
        assert!(answered
            .expect("answered")
            .expect("an answer")
            .expect("a read"));
        assert!(view.follow().log >= acknowledged);
        view.closed.store(true, Ordering::Release);
        writer.close().expect("close");
    }

    #[test]
    fn a_members_read_near_the_end_of_a_fold_waits_for_it() {
        let members = 3 * FOLD_STEP_RECORDS;
        let (view, acknowledged, after, (_tmp, writer)) = view_partway_through_a_unit(members);
        assert!(
            view.answer(Need::Member, acknowledged, soon(), last_balance(members))
                .is_none(),
            "a few records left: the member's read waits for the fold"
        );
        answers_once_folded(&view, Need::Member, acknowledged, members, after);
        writer.close().expect("close");
    }

    #[test]
    fn the_follower_lets_a_waiting_read_of_the_projections_in_before_it_folds_again() {
        let (tmp, mut writer) = ledger_with_policy();
        writer.apply_line(&retiree("R0"), 0).expect("line");
        writer.commit().expect("commit");
        // No follower thread: the test calls its steps.
        let (view, metrics) = view_of(tmp.path(), u64::MAX);
        let first = writer.log().durable_end();
        assert_eq!(view.follow().folded, first);
        // A read needing the projections at `first` was woken and has not got in yet (as
        // `answer` notes it); meanwhile the writer moves on and a member's read wants more.
        view.follow().folded_waiting.insert(first, 1);
        writer.apply_line(&retiree("R1"), 0).expect("line");
        writer.commit().expect("commit");
        let second = writer.log().durable_end();
        metrics
            .durable_position
            .fetch_max(second, Ordering::Release);
        view.follow().wanted = second;
        view.follow_once();
        assert_eq!(
            view.follow().log,
            first,
            "the follower leaves the view to that read"
        );
        assert_eq!(view.follow().folded, first);
        view.follow().folded_waiting.clear();
        view.follow_once();
        assert_eq!(view.follow().log, second, "then it follows the writer");
        writer.close().expect("close");
    }

    #[test]
    fn a_view_past_its_bound_is_replaced_by_a_fresh_one_that_answers_the_same() {
        let (tmp, mut writer) = ledger_with_policy();
        writer.commit().expect("commit");
        let (view, metrics) = view_of(tmp.path(), 50);
        ReadView::start_following(&view).expect("follower");
        let mut replaced = false;
        for round in 0..20 {
            for i in 0..10 {
                writer
                    .apply_line(&enroll(&format!("M{round}-{i}")), 0)
                    .expect("line");
            }
            // Durable, projections not stored every time: the view folds them in memory.
            if round % 5 == 4 {
                writer.commit().expect("commit");
            } else {
                writer.commit_deferred().expect("commit");
            }
            let acknowledged = writer.log().durable_end();
            metrics
                .durable_position
                .fetch_max(acknowledged, Ordering::Release);
            let member = format!("M{round}-9");
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            let answer = view
                .answer(Need::Folded, acknowledged, deadline, |ledger| {
                    ledger.account(&member)
                })
                .expect("an answer in time")
                .expect("an answer")
                .expect("an account");
            assert_eq!(answer.map(|a| a.member), Some(member), "round {round}");
            // Wait for a fresh view being opened elsewhere, then see whether it was swapped in.
            while view.reopening.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            replaced |= folded(&view) < 50 && round > 5;
        }
        assert!(replaced, "a view past its bound was replaced");
        assert!(folded(&view) <= 50 + 20);
    }
}
