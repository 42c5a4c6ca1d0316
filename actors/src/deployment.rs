//! The Deployment actor: the owner of one deployment's limits and health. It creates the
//! deployment's shared [`Admission`] state, which request threads reserve against without a
//! message (lock-free in-flight and rpm counters), and it alone records outcomes: reservations
//! post them to the admission state's outbox; each outcome feeds the tpm window, latency
//! samples and this minute's successes and failures, and decides whether a failure starts a
//! cooldown (written to the admission state, which every picker reads); after each batch the
//! actor publishes what it learned.
//!
//! Outcomes are collected without a message per request: an idle actor is woken by the first
//! post ([`Settle`]), and while outcomes keep coming it drains its outbox every
//! [`COLLECT_EVERY`] on a context timer, stopping (and waiting for a wake-up) when a drain finds
//! nothing. The router awaits a `Settle` after a failure, which drains at once, so the cooldown
//! a failure causes is in force before the router picks again. Windows and cooldown expiry are
//! evaluated lazily against the reader's `now`, so no timer is needed for them and a deployment
//! leaves cooldown by itself when the time is up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::admission::{Admission, Record};
use crate::cooldown::{cooldown_for, CooldownConfig, FailureFacts};
use crate::latency::{LatencyConfig, LatencySample, LatencyWindow, TIMEOUT_PENALTY_SECS};
use crate::reservation::{Outcome, ReportOutcome};
use crate::settings::DeploymentSpec;
use crate::window::RateWindow;
use crate::ErrorClass;

/// Mailbox bound for a deployment: wake-ups arrive by `do_send`, which ignores it (and there is
/// at most one on its way), so this only bounds the router's awaited [`Settle`]s.
const MAILBOX_CAPACITY: usize = 1024;

/// How often a busy actor drains its outbox: the delay before an outcome of a request that
/// succeeded feeds tpm and latency samples, traded for not waking the actor's thread per request
/// (each wake-up is a context switch, and the actor shares the workers' cores). 10 ms rather than
/// 1: the workers' throughput at c=64 rose ~3 % (bench/README.md, Finding 18), and a minute's
/// token window or a latency mean does not notice 10 ms.
const COLLECT_EVERY: Duration = Duration::from_millis(10);

/// Records every outcome posted to the deployment so far, and answers once they are recorded.
/// A post to an idle actor sends one (`do_send`) to wake it; after a failure the router awaits
/// one, so that the cooldown the failure caused is in force before it picks again.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Settle;

/// The state machine inside the actor, kept free of actix so it is tested with a fake clock.
#[derive(Debug)]
pub(crate) struct DeploymentCore {
    admission: Arc<Admission>,
    successes: RateWindow,
    failures: RateWindow,
    latency: LatencyWindow,
    ttft: LatencyWindow,
    group_size: usize,
    cooldown: Arc<CooldownConfig>,
    /// Samples added since the last publication.
    new_latency: bool,
    new_ttft: bool,
}

impl DeploymentCore {
    pub(crate) fn new(
        spec: Arc<DeploymentSpec>,
        group_size: usize,
        cooldown: Arc<CooldownConfig>,
        latency: LatencyConfig,
        now: Instant,
    ) -> DeploymentCore {
        DeploymentCore {
            admission: Arc::new(Admission::new(spec, latency, now)),
            successes: RateWindow::new(now),
            failures: RateWindow::new(now),
            latency: LatencyWindow::new(latency.samples),
            ttft: LatencyWindow::new(latency.samples),
            group_size,
            cooldown,
            new_latency: false,
            new_ttft: false,
        }
    }

    pub(crate) fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    /// Records an outcome (the reservation gave its slot back already); returns the cooldown it
    /// started, if any. The cooldown is in force at once; the rest is seen by pickers and views
    /// after [`DeploymentCore::publish`].
    pub(crate) fn record(&mut self, now: Instant, outcome: Outcome) -> Option<Duration> {
        match outcome {
            Outcome::Success {
                latency,
                ttft,
                prompt_tokens,
                completion_tokens,
            } => {
                self.successes.add(now, 1);
                self.admission
                    .add_tokens(now, prompt_tokens.saturating_add(completion_tokens));
                // Seconds per output token when known, as LiteLLM, so long answers do not
                // look slow; raw seconds otherwise.
                let mut seconds = latency.as_secs_f64();
                if completion_tokens > 0 {
                    seconds /= completion_tokens as f64;
                }
                self.latency.push(LatencySample { at: now, seconds });
                self.new_latency = true;
                if let Some(ttft) = ttft {
                    self.ttft.push(LatencySample {
                        at: now,
                        seconds: ttft.as_secs_f64(),
                    });
                    self.new_ttft = true;
                }
                None
            }
            Outcome::Failure {
                class,
                status,
                retry_after,
                ..
            } => self.failed(now, class, status, retry_after),
            // The slot is back; nothing else to count.
            Outcome::Cancelled => None,
        }
    }

    /// Publishes what the outcomes recorded since the last call taught: the latency means for
    /// pickers, the record for views.
    pub(crate) fn publish(&mut self) {
        if std::mem::take(&mut self.new_latency) {
            self.admission.latency().publish(&self.latency);
        }
        if std::mem::take(&mut self.new_ttft) {
            self.admission.ttft().publish(&self.ttft);
        }
        self.admission.publish(Record {
            successes: self.successes,
            failures: self.failures,
            latency: self.latency.snapshot(),
            ttft: self.ttft.snapshot(),
        });
    }

    fn failed(
        &mut self,
        now: Instant,
        class: ErrorClass,
        status: u16,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        self.failures.add(now, 1);
        if class == ErrorClass::Timeout {
            self.latency.push(LatencySample {
                at: now,
                seconds: TIMEOUT_PENALTY_SECS,
            });
            self.new_latency = true;
        }
        let spec = self.admission.spec();
        let facts = FailureFacts {
            class,
            status,
            retry_after,
            group_size: self.group_size,
            wildcard: spec.is_wildcard(),
            deployment_cooldown: spec.cooldown_time,
            failures: self.failures.estimate(now),
            successes: self.successes.estimate(now),
        };
        let cooldown = cooldown_for(&self.cooldown, &facts)?;
        self.admission.cool_until(now + cooldown);
        // A deployment back from cooldown starts with a clean slate, so one more failure does
        // not send it straight back.
        self.failures.clear(now);
        self.successes.clear(now);
        Some(cooldown)
    }
}

/// What the request path holds of a deployment: its admission state (and outbox) and how to
/// wake its actor. One per deployment, shared by the group's table and every reservation on it.
#[derive(Debug)]
pub(crate) struct DeploymentHandle {
    pub(crate) admission: Arc<Admission>,
    pub(crate) settle: Recipient<Settle>,
}

/// One deployment's actor; see the module doc.
pub struct Deployment {
    core: DeploymentCore,
    /// The outcomes being recorded (kept to reuse its capacity).
    batch: Vec<ReportOutcome>,
    /// A drain is scheduled on the context timer.
    collecting: bool,
}

impl Deployment {
    /// Starts the actor for `spec` (in a group of `group_size`) on `arbiter`; returns the handle
    /// the request path uses. The admission state exists before the actor runs, so the handle
    /// is usable at once.
    pub(crate) fn start(
        arbiter: &ArbiterHandle,
        spec: Arc<DeploymentSpec>,
        group_size: usize,
        cooldown: Arc<CooldownConfig>,
        latency: LatencyConfig,
        now: Instant,
    ) -> Arc<DeploymentHandle> {
        let core = DeploymentCore::new(spec, group_size, cooldown, latency, now);
        let admission = core.admission().clone();
        let addr = Deployment::start_in_arbiter(arbiter, move |_| Deployment {
            core,
            batch: Vec::new(),
            collecting: false,
        });
        Arc::new(DeploymentHandle {
            admission,
            settle: addr.recipient(),
        })
    }
}

impl Actor for Deployment {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Deployment {
    /// Records what the outbox holds; if it held something, looks again in [`COLLECT_EVERY`].
    fn collect(&mut self, ctx: &mut Context<Self>) {
        self.core.admission().drain_into(&mut self.batch);
        if self.batch.is_empty() {
            return;
        }
        for report in self.batch.drain(..) {
            if let Some(cooldown) = self.core.record(report.at, report.outcome) {
                let spec = self.core.admission().spec();
                log::warn!(
                    "deployment {} (model {}) cooling down for {:.1}s after {:?}",
                    spec.id,
                    spec.model,
                    cooldown.as_secs_f64(),
                    report.outcome
                );
            }
        }
        self.core.publish();
        if !self.collecting {
            self.collecting = true;
            ctx.run_later(COLLECT_EVERY, |actor, ctx| {
                actor.collecting = false;
                actor.collect(ctx);
            });
        }
    }
}

impl Handler<Settle> for Deployment {
    type Result = ();

    fn handle(&mut self, _: Settle, ctx: &mut Context<Self>) {
        self.collect(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::settings::{RouterSettings, Strategy};
    use crate::view::Refusal;

    fn core(spec: DeploymentSpec, group_size: usize, clock: &ManualClock) -> DeploymentCore {
        let cooldown = Arc::new(CooldownConfig::from_settings(&RouterSettings::default()));
        let latency = LatencyConfig::for_strategy(&Strategy::latency_based_default());
        DeploymentCore::new(Arc::new(spec), group_size, cooldown, latency, clock.now())
    }

    fn failure(class: ErrorClass, status: u16) -> Outcome {
        Outcome::Failure {
            class,
            status,
            retry_after: None,
            latency: Duration::from_millis(5),
        }
    }

    /// A reservation's end without the actor: give the slot back, record, publish.
    fn finish(core: &mut DeploymentCore, now: Instant, outcome: Outcome) -> Option<Duration> {
        core.admission().release();
        let cooldown = core.record(now, outcome);
        core.publish();
        cooldown
    }

    #[test]
    fn reserve_counts_rpm_and_in_flight() {
        let clock = ManualClock::new();
        let spec = DeploymentSpec {
            rpm: Some(2),
            ..DeploymentSpec::new("a", "g", "openai/g")
        };
        let mut core = core(spec, 1, &clock);
        let admission = core.admission().clone();
        assert_eq!(admission.reserve(clock.now(), 1), Ok(()));
        assert_eq!(admission.reserve(clock.now(), 1), Ok(()));
        assert!(matches!(
            admission.reserve(clock.now(), 1),
            Err(Refusal::AtLimit(_))
        ));
        assert_eq!(admission.in_flight(), 2);
        finish(&mut core, clock.now(), Outcome::Cancelled);
        assert_eq!(admission.in_flight(), 1);
        // The refused request was not counted: after the window slides by half, one fits again.
        clock.advance(Duration::from_secs(90));
        assert_eq!(admission.reserve(clock.now(), 1), Ok(()));
    }

    #[test]
    fn success_feeds_tpm_and_latency_per_output_token() {
        let clock = ManualClock::new();
        let spec = DeploymentSpec {
            tpm: Some(100),
            ..DeploymentSpec::new("a", "g", "openai/g")
        };
        let mut core = core(spec, 1, &clock);
        let admission = core.admission().clone();
        admission.reserve(clock.now(), 10).unwrap();
        let outcome = Outcome::Success {
            latency: Duration::from_secs(2),
            ttft: Some(Duration::from_millis(300)),
            prompt_tokens: 40,
            completion_tokens: 50,
        };
        assert_eq!(finish(&mut core, clock.now(), outcome), None);
        let view = admission.view(clock.now());
        assert_eq!(view.tpm_used(clock.now()), 90.0);
        assert_eq!(view.latency.len(), 1);
        assert!((view.latency[0].seconds - 0.04).abs() < 1e-12);
        assert!((view.ttft[0].seconds - 0.3).abs() < 1e-12);
        // Published for pickers too.
        let latency = admission.latency().at(clock.now()).unwrap();
        assert!((latency - 0.04).abs() < 1e-12);
        assert_eq!(admission.ttft().at(clock.now()), Some(0.3));
        // 90 of 100 tokens used: a 10-token prompt fits, an 11-token one does not.
        assert_eq!(admission.reserve(clock.now(), 10), Ok(()));
        assert!(matches!(
            admission.reserve(clock.now(), 11),
            Err(Refusal::AtLimit(_))
        ));
    }

    #[test]
    fn timeout_adds_a_penalty_sample() {
        let clock = ManualClock::new();
        let mut core = core(DeploymentSpec::new("a", "g", "m"), 1, &clock);
        core.admission().reserve(clock.now(), 0).unwrap();
        finish(&mut core, clock.now(), failure(ErrorClass::Timeout, 408));
        let view = core.admission().view(clock.now());
        assert_eq!(view.latency[0].seconds, TIMEOUT_PENALTY_SECS);
        assert_eq!(
            core.admission().latency().at(clock.now()),
            Some(TIMEOUT_PENALTY_SECS)
        );
    }

    #[test]
    fn rate_limit_cools_down_then_recovers_on_its_own() {
        let clock = ManualClock::new();
        let mut core = core(DeploymentSpec::new("a", "g", "m"), 2, &clock);
        let admission = core.admission().clone();
        admission.reserve(clock.now(), 0).unwrap();
        let cooldown = finish(&mut core, clock.now(), failure(ErrorClass::RateLimit, 429));
        assert_eq!(cooldown, Some(Duration::from_secs(5)));
        let until = clock.now() + Duration::from_secs(5);
        assert_eq!(
            admission.reserve(clock.now(), 0),
            Err(Refusal::Cooling(until))
        );
        clock.advance(Duration::from_millis(4999));
        assert_eq!(
            admission.reserve(clock.now(), 0),
            Err(Refusal::Cooling(until))
        );
        clock.advance(Duration::from_millis(1));
        assert_eq!(admission.reserve(clock.now(), 0), Ok(()));
        assert_eq!(admission.view(clock.now()).cooldown_until, None);
    }

    #[test]
    fn lone_deployment_is_not_cooled_by_rate_limits_but_is_by_auth() {
        let clock = ManualClock::new();
        let mut core = core(DeploymentSpec::new("a", "g", "m"), 1, &clock);
        for _ in 0..6 {
            core.admission().reserve(clock.now(), 0).unwrap();
            assert_eq!(
                finish(&mut core, clock.now(), failure(ErrorClass::RateLimit, 429)),
                None
            );
        }
        core.admission().reserve(clock.now(), 0).unwrap();
        assert!(finish(&mut core, clock.now(), failure(ErrorClass::Auth, 401)).is_some());
    }

    #[test]
    fn failure_rate_over_half_cools_a_deployment_with_siblings() {
        let clock = ManualClock::new();
        let mut core = core(DeploymentSpec::new("a", "g", "m"), 3, &clock);
        let success = Outcome::Success {
            latency: Duration::from_millis(10),
            ttft: None,
            prompt_tokens: 1,
            completion_tokens: 1,
        };
        for outcome in [success, success, failure(ErrorClass::ServerError, 500)] {
            core.admission().reserve(clock.now(), 0).unwrap();
            assert_eq!(finish(&mut core, clock.now(), outcome), None);
        }
        // 2 failures of 4: not above half yet.
        core.admission().reserve(clock.now(), 0).unwrap();
        assert_eq!(
            finish(
                &mut core,
                clock.now(),
                failure(ErrorClass::ServerError, 503)
            ),
            None
        );
        // 3 of 5: cooled.
        core.admission().reserve(clock.now(), 0).unwrap();
        assert!(finish(
            &mut core,
            clock.now(),
            failure(ErrorClass::ServerError, 500)
        )
        .is_some());
    }

    #[test]
    fn wildcard_deployments_never_cool_down() {
        let clock = ManualClock::new();
        let mut core = core(DeploymentSpec::new("w", "openai/*", "openai/*"), 2, &clock);
        core.admission().reserve(clock.now(), 0).unwrap();
        assert_eq!(
            finish(&mut core, clock.now(), failure(ErrorClass::RateLimit, 429)),
            None
        );
        assert_eq!(core.admission().reserve(clock.now(), 0), Ok(()));
    }
}
