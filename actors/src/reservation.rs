//! The RAII in-flight slot returned by a successful pick (pingora's `inflight::Guard` idea).
//! Exactly one outcome per reservation: the first `succeed` or `fail`, or `Cancelled` when the
//! last clone is dropped without either (the client hung up, or the request future was dropped).
//! Reporting gives the slot back at once, on the caller's thread (one atomic decrement), so
//! in-flight counts never leak and never wait for a mailbox; the outcome itself is posted to the
//! Deployment actor (see `Admission::post`), off the request's latency.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::deployment::{DeploymentHandle, Settle};
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
    /// Dropped with no outcome: the slot is free again and nothing else is counted.
    Cancelled,
}

/// How one reservation ended, and when (so a cooldown starts at the failure, not when the actor
/// gets to it), as posted to the Deployment actor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ReportOutcome {
    /// What happened.
    pub(crate) outcome: Outcome,
    /// When it was reported.
    pub(crate) at: Instant,
}

/// An in-flight slot on one deployment. Cheap to clone; see the module doc for the reporting rule.
#[derive(Clone)]
pub struct Reservation {
    inner: Arc<Inner>,
}

struct Inner {
    deployment: Arc<DeploymentHandle>,
    clock: Arc<dyn Clock>,
    started: Instant,
    first_token: OnceLock<Instant>,
    reported: AtomicBool,
}

impl Reservation {
    /// The slot `deployment`'s admission state gave at `started`.
    pub(crate) fn new(
        deployment: Arc<DeploymentHandle>,
        clock: Arc<dyn Clock>,
        started: Instant,
    ) -> Reservation {
        Reservation {
            inner: Arc::new(Inner {
                deployment,
                clock,
                started,
                first_token: OnceLock::new(),
                reported: AtomicBool::new(false),
            }),
        }
    }

    /// The deployment holding this slot.
    pub fn deployment(&self) -> &DeploymentId {
        self.inner.deployment.admission.id()
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
        self.report(
            now,
            Outcome::Success {
                latency: now.saturating_duration_since(self.inner.started),
                ttft: self
                    .inner
                    .first_token
                    .get()
                    .map(|at| at.saturating_duration_since(self.inner.started)),
                prompt_tokens,
                completion_tokens,
            },
        );
    }

    /// Reports a failure (feeds cooldown). No effect if an outcome was already reported.
    pub fn fail(&self, class: ErrorClass, status: u16, retry_after: Option<Duration>) {
        let now = self.inner.clock.now();
        self.report(
            now,
            Outcome::Failure {
                class,
                status,
                retry_after,
                latency: now.saturating_duration_since(self.inner.started),
            },
        );
    }

    /// Whether an outcome has been reported.
    pub fn is_reported(&self) -> bool {
        self.inner.reported.load(Ordering::Acquire)
    }

    /// Whether this is the only handle left (dropping it would report `Cancelled`).
    pub(crate) fn is_last_handle(&self) -> bool {
        Arc::strong_count(&self.inner) == 1
    }

    /// Resolves once the Deployment actor has recorded every outcome posted to it so far (this
    /// one included, when reported): a cooldown the failure caused is then in force. Only the
    /// failure path waits for it.
    pub(crate) async fn settle(&self) {
        // An error means the actor is gone (the router is stopping): nothing left to wait for.
        let _ = self.inner.deployment.settle.send(Settle).await;
    }

    fn report(&self, at: Instant, outcome: Outcome) {
        if !self.inner.reported.swap(true, Ordering::AcqRel) {
            self.inner.finish(at, outcome);
        }
    }
}

impl Inner {
    /// Frees the slot now, then posts the outcome (which happened `at`) to the actor, waking
    /// it if no wake-up is on its way already.
    fn finish(&self, at: Instant, outcome: Outcome) {
        let deployment = &self.deployment;
        deployment.admission.release();
        if deployment.admission.post(ReportOutcome { outcome, at }) {
            deployment.settle.do_send(Settle);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !*self.reported.get_mut() {
            self.finish(self.clock.now(), Outcome::Cancelled);
        }
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("deployment", self.deployment())
            .field("reported", &self.is_reported())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Admission;
    use crate::clock::ManualClock;
    use crate::latency::LatencyConfig;
    use crate::settings::{DeploymentSpec, Strategy};
    use actix::prelude::*;
    use std::sync::Mutex;

    /// Records every outcome posted to its deployment, as the Deployment actor would.
    struct Recorder {
        admission: Arc<Admission>,
        seen: Arc<Mutex<Vec<Outcome>>>,
    }

    impl Actor for Recorder {
        type Context = Context<Self>;
    }

    impl Handler<Settle> for Recorder {
        type Result = ();
        fn handle(&mut self, _: Settle, _: &mut Context<Self>) {
            let mut batch = Vec::new();
            self.admission.drain_into(&mut batch);
            let mut seen = self.seen.lock().unwrap();
            seen.extend(batch.iter().map(|report| report.outcome));
        }
    }

    struct Setup {
        clock: Arc<ManualClock>,
        seen: Arc<Mutex<Vec<Outcome>>>,
        recorder: Addr<Recorder>,
        admission: Arc<Admission>,
        reservation: Reservation,
    }

    /// A reservation on a deployment whose outcomes a [`Recorder`] keeps.
    fn setup() -> Setup {
        let clock = ManualClock::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let now = clock.now();
        let spec = Arc::new(DeploymentSpec::new("d1", "g", "m"));
        let latency = LatencyConfig::for_strategy(&Strategy::SimpleShuffle);
        let admission = Arc::new(Admission::new(spec, latency, now));
        admission.reserve(now, 0).unwrap();
        let recorder = Recorder {
            admission: admission.clone(),
            seen: seen.clone(),
        }
        .start();
        let handle = Arc::new(DeploymentHandle {
            admission: admission.clone(),
            settle: recorder.clone().recipient(),
        });
        let reservation = Reservation::new(handle, clock.clone(), now);
        Setup {
            clock,
            seen,
            recorder,
            admission,
            reservation,
        }
    }

    #[actix::test]
    async fn only_the_first_outcome_is_reported() {
        let Setup {
            clock,
            seen,
            admission,
            reservation,
            ..
        } = setup();
        clock.advance(Duration::from_millis(200));
        reservation.first_token();
        clock.advance(Duration::from_millis(800));
        let kept = reservation.clone();
        reservation.succeed(10, 20);
        assert_eq!(
            admission.in_flight(),
            0,
            "the slot is back before the actor hears"
        );
        kept.fail(ErrorClass::ServerError, 500, None);
        // Settle is answered after everything sent before it.
        kept.settle().await;
        drop(kept);
        drop(reservation);
        assert_eq!(admission.in_flight(), 0, "given back once");
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
    async fn dropping_the_last_clone_unreported_cancels_and_frees_the_slot_at_once() {
        let Setup {
            seen,
            recorder,
            admission,
            reservation,
            ..
        } = setup();
        let clone = reservation.clone();
        drop(reservation);
        assert_eq!(admission.in_flight(), 1, "a clone still holds the slot");
        assert!(clone.is_last_handle());
        drop(clone);
        assert_eq!(
            admission.in_flight(),
            0,
            "freed synchronously, before any message is handled"
        );
        assert!(seen.lock().unwrap().is_empty());
        recorder.send(Settle).await.unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![Outcome::Cancelled]);
    }
}
