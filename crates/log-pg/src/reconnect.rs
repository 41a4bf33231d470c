//! A connection that the calls of one reader share, made again after a loss (a failover) by
//! one of them while the others wait: [`Reconnecting`]. Used by the log's read connection and
//! by both sides of the projections.
//!
//! Invariants as the code holds them: a loss is recorded once, by the first call that finds the
//! connection lost (`since`), and every call that rides it out gives up at the same instant,
//! `since + within`, never at its own arrival plus `within`; a call that meets several losses
//! (a connection that drops again as soon as it is made) gives up at the first one's instant;
//! at most one call makes a new connection at a time, and it does so without holding the lock
//! the others take, so that a call waiting for it waits on a condition variable bounded by
//! that instant, not behind the connecting call (a call may still wait behind a query running
//! on the shared connection); a new connection ends the loss (every waiting call then uses it:
//! one reconnect serves all), and so does the window running out (the calls of that loss have
//! all given up; a call arriving after it records a loss of its own). A connecting call that
//! panics ends its attempt: the others are woken, and the next call connects.
//!
//! A window of zero rides nothing out: the call that finds the connection lost fails at once,
//! and the next call tries once to connect (a server's read view, which is opened again
//! rather than wait under its lock).

use std::io;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use gongji_log::LogError;

use crate::conn::retry_until;

/// What is shared behind one lock: `value` (a connection, or a view holding one), and the loss
/// being ridden out, if any.
pub(crate) struct Shared<S> {
    pub value: S,
    loss: Option<Loss>,
    /// A call is making a new connection, outside the lock.
    connecting: bool,
    /// New connections made so far: a waiting call sees whether one was made for it.
    made: u64,
    within: Duration,
}

/// A connection found lost: when, and what the call that found it saw.
struct Loss {
    since: Instant,
    what: String,
}

impl<S> Shared<S> {
    /// Records that the connection was found lost (`what` it said) unless a loss is being
    /// ridden out already; returns the instant every call riding it out gives up. A loss
    /// whose window ran out with nobody connecting (found by a read that does not connect,
    /// and nobody came to ride it out) is over: this one is new.
    pub fn lost(&mut self, what: impl FnOnce() -> String) -> Instant {
        let now = Instant::now();
        let over = |loss: &Loss| loss.since + self.within <= now && !self.connecting;
        if self.loss.as_ref().is_some_and(over) {
            self.loss = None;
        }
        let loss = self.loss.get_or_insert_with(|| Loss {
            since: now,
            what: what(),
        });
        loss.since + self.within
    }

    /// When the calls riding out the loss give up (`None`: no loss).
    fn deadline(&self) -> Option<Instant> {
        self.loss.as_ref().map(|loss| loss.since + self.within)
    }
}

impl<S> std::ops::Deref for Shared<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.value
    }
}

impl<S> std::ops::DerefMut for Shared<S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.value
    }
}

/// The error of a call that gave up waiting for a new connection after `loss`, naming `action`.
fn gave_up(action: &str, loss: &Loss, within: Duration) -> LogError {
    LogError::Io(io::Error::new(
        io::ErrorKind::ConnectionAborted,
        format!(
            "PostgreSQL, {action}: the connection was lost {:.1} s ago ({}) and no new one was \
             made within {within:?}",
            loss.since.elapsed().as_secs_f64(),
            loss.what
        ),
    ))
}

/// A connection (or a view holding one) shared by calls, made again after a loss: see the
/// module documentation.
pub(crate) struct Reconnecting<S> {
    shared: Mutex<Shared<S>>,
    /// `Shared::within`, readable without the lock (it never changes).
    within: Duration,
    /// A call finished making a new connection (or gave up).
    settled: Condvar,
}

impl<S> Reconnecting<S> {
    /// `value` holding a live connection; a loss is ridden out for up to `within`.
    pub fn new(value: S, within: Duration) -> Reconnecting<S> {
        Reconnecting {
            within,
            shared: Mutex::new(Shared {
                value,
                loss: None,
                connecting: false,
                made: 0,
                within,
            }),
            settled: Condvar::new(),
        }
    }

    /// Whether a lost connection is ridden out at all (a window above zero).
    pub fn rides_out_losses(&self) -> bool {
        !self.within.is_zero()
    }

    /// The lock, as it is: for calls that only use a connection there is, never make one.
    pub fn lock(&self) -> MutexGuard<'_, Shared<S>> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lock, once no other call is making a new connection. A call that waits for one
    /// gives up at the loss's deadline if no connection was made by then (its error names
    /// `action`, what the call was doing).
    pub fn lock_settled(&self, action: &str) -> Result<MutexGuard<'_, Shared<S>>, LogError> {
        let mut shared = self.lock();
        // The loss this call waits on, and how many connections had been made then.
        let mut waited: Option<(Loss, u64)> = None;
        while shared.connecting {
            let loss = shared
                .loss
                .as_ref()
                .expect("a call connects only while a loss is recorded");
            let deadline = loss.since + shared.within;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(gave_up(action, loss, shared.within));
            }
            if waited.is_none() {
                let what = loss.what.clone();
                waited = Some((
                    Loss {
                        since: loss.since,
                        what,
                    },
                    shared.made,
                ));
            }
            shared = self
                .settled
                .wait_timeout(shared, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        // The call that connected gave up: so does this one, if the loss's window ran out.
        if let Some((loss, made)) = waited {
            if shared.made == made && Instant::now() >= loss.since + shared.within {
                return Err(gave_up(action, &loss, shared.within));
            }
        }
        Ok(shared)
    }

    /// Makes a new connection with `make` (given the loss's deadline, which it must not try
    /// past) outside the lock, then takes the lock again. A connection made ends the loss; so
    /// does a failure once the deadline has passed (the window ran out). Either way the calls
    /// waiting in [`lock_settled`](Reconnecting::lock_settled) are woken. The loss must have
    /// been recorded ([`Shared::lost`]).
    pub fn connect_outside<'a, T>(
        &'a self,
        mut shared: MutexGuard<'a, Shared<S>>,
        make: impl FnOnce(Instant) -> Result<T, LogError>,
    ) -> (MutexGuard<'a, Shared<S>>, Result<T, LogError>) {
        let deadline = shared
            .deadline()
            .expect("a new connection is made only after a loss was recorded");
        shared.connecting = true;
        drop(shared);
        let attempt = Attempt { owner: self };
        let made = make(deadline);
        std::mem::forget(attempt);
        let mut shared = self.lock();
        shared.connecting = false;
        if made.is_ok() {
            shared.made += 1;
        }
        if made.is_ok() || Instant::now() >= deadline {
            shared.loss = None;
        }
        self.settled.notify_all();
        (shared, made)
    }
}

/// A connecting call under way: if it panics, the attempt ends (`connecting` cleared, the
/// waiting calls woken) as it unwinds.
struct Attempt<'a, S> {
    owner: &'a Reconnecting<S>,
}

impl<S> Drop for Attempt<'_, S> {
    fn drop(&mut self) {
        self.owner.lock().connecting = false;
        self.owner.settled.notify_all();
    }
}

impl<C> Reconnecting<Option<C>> {
    /// Runs `attempt` on the connection: `Ok` is its outcome; `Err`, that the connection was
    /// lost, so a new one is made with `connect` (by this call, or by another while this one
    /// waits) and `attempt` runs again, until the loss's deadline. Past it, the loss's error
    /// as this call met it, or else the last attempt to connect's (`action` names what the
    /// call was doing).
    pub fn run<T>(
        &self,
        action: &str,
        connect: impl Fn() -> Result<C, LogError>,
        mut attempt: impl FnMut(&mut C) -> Result<Result<T, LogError>, LogError>,
    ) -> Result<T, LogError> {
        let mut shared = self.lock_settled(action)?;
        // The loss as this call met it (it names what the call was doing): given up with.
        let mut met: Option<LogError> = None;
        // When this call gives up: the first loss's deadline it met, whatever losses follow.
        let mut give_up_at: Option<Instant> = None;
        loop {
            if shared.value.is_none() {
                let deadline = shared.lost(|| "closed".into());
                // The first loss's deadline, never after this one's. A window of zero: one
                // attempt (past the deadline, `retry_until` tries once).
                let until = *give_up_at.get_or_insert(deadline);
                let (relocked, made) =
                    self.connect_outside(shared, |_| retry_until(until, &connect));
                shared = relocked;
                match made {
                    Ok(conn) => shared.value = Some(conn),
                    Err(error) => return Err(met.unwrap_or(error)),
                }
            }
            let conn = shared.value.as_mut().expect("a connection was made above");
            match attempt(conn) {
                Ok(outcome) => return outcome,
                Err(loss) => {
                    shared.value = None;
                    let deadline = shared.lost(|| loss.to_string());
                    let until = *give_up_at.get_or_insert(deadline);
                    if Instant::now() >= deadline {
                        shared.loss = None;
                    }
                    if Instant::now() >= until {
                        return Err(loss);
                    }
                    met = Some(loss);
                }
            }
        }
    }
}
