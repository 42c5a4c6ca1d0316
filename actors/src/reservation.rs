//! The RAII in-flight slot returned by a successful pick (pingora's `inflight::Guard` idea).
//! Exactly one outcome reaches the Deployment actor per reservation: the first `succeed` or
//! `fail`, or `Cancelled` when the last clone is dropped without either (the client hung up, or
//! the request future was dropped), so in-flight counts never leak.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::clock::Clock;
use crate::error::ErrorClass;
use crate::settings::DeploymentId;

/// How an attempt ended, as the Deployment actor records it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    /// The upstream answered (for a stream: the stream ended cleanly).
    Success {
        /// From reservation to the outcome.
        latency: Duration,
        /// From reservation to the first token, for streams.
        ttft: Option<Duration>,
        /// Tokens the upstream reported.
        prompt_tokens: u64,
        /// Tokens the upstream reported.
        completion_tokens: u64,
    },
    /// The attempt failed.
    Failure {
        /// The failure's class.
        class: ErrorClass,
        /// Its HTTP status.
        status: u16,
        /// The upstream's Retry-After.
        retry_after: Option<Duration>,
        /// From reservation to the failure.
        latency: Duration,
    },
    /// Dropped with no outcome: frees the slot and counts as nothing else.
    Cancelled,
}

/// Tells a Deployment how one of its reservations ended, and when (so a cooldown starts at the
/// failure, not when the actor gets to the message).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ReportOutcome {
    /// What happened.
    pub outcome: Outcome,
    /// When it was reported.
    pub at: Instant,
}

/// An in-flight slot on one deployment. Cheap to clone; see the module doc for the reporting rule.
#[derive(Clone)]
pub struct Reservation {
    inner: Arc<Inner>,
}

struct Inner {
    deployment: DeploymentId,
    report: Recipient<ReportOutcome>,
    clock: Arc<dyn Clock>,
    started: Instant,
    first_token: OnceLock<Instant>,
    reported: AtomicBool,
}

impl Reservation {
    /// A slot reserved at `started`; outcomes go to `report`.
    pub(crate) fn new(
        deployment: DeploymentId,
        report: Recipient<ReportOutcome>,
        clock: Arc<dyn Clock>,
        started: Instant,
    ) -> Reservation {
        Reservation {
            inner: Arc::new(Inner {
                deployment,
                report,
                clock,
                started,
                first_token: OnceLock::new(),
                reported: AtomicBool::new(false),
            }),
        }
    }

    /// The deployment holding this slot.
    pub fn deployment(&self) -> &DeploymentId {
        &self.inner.deployment
    }

    /// Marks the first token of a stream (only the first call counts); the time to first token
    /// is reported with the outcome and feeds latency-based routing for stream requests.
    pub fn first_token(&self) {
        let now = self.inner.clock.now();
        let _ = self.inner.first_token.set(now);
    }

    /// Reports success with the token counts the upstream gave (they feed tpm). No effect if an
    /// outcome was already reported.
    pub fn succeed(&self, prompt_tokens: u64, completion_tokens: u64) {
        let now = self.inner.clock.now();
        self.report(Outcome::Success {
            latency: now.saturating_duration_since(self.inner.started),
            ttft: self
                .inner
                .first_token
                .get()
                .map(|at| at.saturating_duration_since(self.inner.started)),
            prompt_tokens,
            completion_tokens,
        });
    }

    /// Reports a failure (feeds cooldown). No effect if an outcome was already reported.
    pub fn fail(&self, class: ErrorClass, status: u16, retry_after: Option<Duration>) {
        let now = self.inner.clock.now();
        self.report(Outcome::Failure {
            class,
            status,
            retry_after,
            latency: now.saturating_duration_since(self.inner.started),
        });
    }

    /// Whether an outcome has been reported.
    pub fn is_reported(&self) -> bool {
        self.inner.reported.load(Ordering::Acquire)
    }

    /// Whether this is the only handle left (dropping it would report `Cancelled`).
    pub(crate) fn is_last_handle(&self) -> bool {
        Arc::strong_count(&self.inner) == 1
    }

    fn report(&self, outcome: Outcome) {
        if !self.inner.reported.swap(true, Ordering::AcqRel) {
            let at = self.inner.clock.now();
            self.inner.report.do_send(ReportOutcome { outcome, at });
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !*self.reported.get_mut() {
            let at = self.clock.now();
            self.report.do_send(ReportOutcome {
                outcome: Outcome::Cancelled,
                at,
            });
        }
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("deployment", &self.inner.deployment)
            .field("reported", &self.is_reported())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::Mutex;

    /// Records every outcome it is sent.
    struct Recorder(Arc<Mutex<Vec<Outcome>>>);

    impl Actor for Recorder {
        type Context = Context<Self>;
    }

    impl Handler<ReportOutcome> for Recorder {
        type Result = ();
        fn handle(&mut self, msg: ReportOutcome, _: &mut Context<Self>) {
            self.0.lock().unwrap().push(msg.outcome);
        }
    }

    fn setup() -> (Arc<ManualClock>, Arc<Mutex<Vec<Outcome>>>, Reservation) {
        let clock = ManualClock::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recipient = Recorder(seen.clone()).start().recipient();
        let now = clock.now();
        let reservation = Reservation::new(Arc::from("d1"), recipient, clock.clone(), now);
        (clock, seen, reservation)
    }

    async fn settle() {
        for _ in 0..5 {
            actix::clock::sleep(Duration::from_millis(1)).await;
        }
    }

    #[actix::test]
    async fn only_the_first_outcome_is_reported() {
        let (clock, seen, reservation) = setup();
        clock.advance(Duration::from_millis(200));
        reservation.first_token();
        clock.advance(Duration::from_millis(800));
        let kept = reservation.clone();
        reservation.succeed(10, 20);
        kept.fail(ErrorClass::ServerError, 500, None);
        drop(kept);
        drop(reservation);
        settle().await;
        assert_eq!(
            *seen.lock().unwrap(),
            vec![Outcome::Success {
                latency: Duration::from_secs(1),
                ttft: Some(Duration::from_millis(200)),
                prompt_tokens: 10,
                completion_tokens: 20,
            }]
        );
    }

    #[actix::test]
    async fn dropping_the_last_clone_unreported_cancels() {
        let (_clock, seen, reservation) = setup();
        let clone = reservation.clone();
        drop(reservation);
        settle().await;
        assert!(seen.lock().unwrap().is_empty(), "a clone is still alive");
        assert!(clone.is_last_handle());
        drop(clone);
        settle().await;
        assert_eq!(*seen.lock().unwrap(), vec![Outcome::Cancelled]);
    }
}
