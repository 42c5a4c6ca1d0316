//! The Deployment actor: sole owner of one deployment's mutable state (rpm/tpm windows, in-flight
//! count, latency samples, this minute's successes and failures, cooldown). It answers
//! [`Reserve`] and records [`ReportOutcome`] synchronously, then publishes a fresh
//! [`DeploymentView`] to the shared board. Windows and cooldown expiry are evaluated lazily
//! against the injected clock, so the actor needs no timers and a deployment leaves cooldown by
//! itself when the time is up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::clock::Clock;
use crate::cooldown::{cooldown_for, CooldownConfig, FailureFacts};
use crate::latency::{LatencySample, LatencyWindow, TIMEOUT_PENALTY_SECS};
use crate::reservation::{Outcome, ReportOutcome, Reservation};
use crate::settings::DeploymentSpec;
use crate::view::{Board, DeploymentView, Refusal};
use crate::ErrorClass;

/// Mailbox bound for a deployment; `Reserve` arrives through `send` from its ModelGroup.
const MAILBOX_CAPACITY: usize = 1024;

/// Asks a deployment for an in-flight slot. Refused when cooling down, when one more request
/// would exceed rpm, when `input_tokens` would exceed tpm, or at `max_parallel_requests`.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<Reservation, Refusal>")]
pub struct Reserve {
    /// The caller's estimate of the prompt's tokens (checked against tpm).
    pub input_tokens: u64,
}

/// The state machine inside the actor, kept free of actix so it is tested with a fake clock.
#[derive(Debug)]
pub(crate) struct DeploymentCore {
    view: DeploymentView,
    latency: LatencyWindow,
    ttft: LatencyWindow,
    group_size: usize,
    cooldown: Arc<CooldownConfig>,
}

impl DeploymentCore {
    pub(crate) fn new(
        spec: Arc<DeploymentSpec>,
        group_size: usize,
        cooldown: Arc<CooldownConfig>,
        latency_samples: usize,
        now: Instant,
    ) -> DeploymentCore {
        DeploymentCore {
            view: DeploymentView::new(spec, now),
            latency: LatencyWindow::new(latency_samples),
            ttft: LatencyWindow::new(latency_samples),
            group_size,
            cooldown,
        }
    }

    pub(crate) fn view(&self) -> &DeploymentView {
        &self.view
    }

    /// Takes a slot if the deployment can serve `input_tokens` now.
    pub(crate) fn reserve(&mut self, now: Instant, input_tokens: u64) -> Result<(), Refusal> {
        if self.view.cooldown_until.is_some_and(|until| now >= until) {
            self.view.cooldown_until = None;
        }
        self.view.availability(now, input_tokens)?;
        self.view.requests.add(now, 1);
        self.view.in_flight += 1;
        Ok(())
    }

    /// Records an outcome; returns the cooldown it started, if any.
    pub(crate) fn report(&mut self, now: Instant, outcome: Outcome) -> Option<Duration> {
        self.view.in_flight = self.view.in_flight.saturating_sub(1);
        match outcome {
            Outcome::Success {
                latency,
                ttft,
                prompt_tokens,
                completion_tokens,
            } => {
                self.view.successes.add(now, 1);
                self.view
                    .tokens
                    .add(now, prompt_tokens.saturating_add(completion_tokens));
                // Seconds per output token when known, as LiteLLM, so long answers do not
                // look slow; raw seconds otherwise.
                let mut seconds = latency.as_secs_f64();
                if completion_tokens > 0 {
                    seconds /= completion_tokens as f64;
                }
                self.latency.push(LatencySample { at: now, seconds });
                self.view.latency = self.latency.snapshot();
                if let Some(ttft) = ttft {
                    self.ttft.push(LatencySample {
                        at: now,
                        seconds: ttft.as_secs_f64(),
                    });
                    self.view.ttft = self.ttft.snapshot();
                }
                None
            }
            Outcome::Failure {
                class,
                status,
                retry_after,
                ..
            } => {
                self.view.failures.add(now, 1);
                if class == ErrorClass::Timeout {
                    self.latency.push(LatencySample {
                        at: now,
                        seconds: TIMEOUT_PENALTY_SECS,
                    });
                    self.view.latency = self.latency.snapshot();
                }
                let facts = FailureFacts {
                    class,
                    status,
                    retry_after,
                    group_size: self.group_size,
                    wildcard: self.view.spec.is_wildcard(),
                    deployment_cooldown: self.view.spec.cooldown_time,
                    failures: self.view.failures.estimate(now),
                    successes: self.view.successes.estimate(now),
                };
                let cooldown = cooldown_for(&self.cooldown, &facts)?;
                self.view.cooldown_until = Some(now + cooldown);
                // A deployment back from cooldown starts with a clean slate, so one more
                // failure does not send it straight back.
                self.view.failures.clear(now);
                self.view.successes.clear(now);
                Some(cooldown)
            }
            Outcome::Cancelled => None,
        }
    }
}

/// One deployment's actor; see the module doc.
pub struct Deployment {
    core: DeploymentCore,
    clock: Arc<dyn Clock>,
    board: Arc<Board>,
}

impl Deployment {
    /// A deployment in a group of `group_size`, publishing to `board`.
    pub fn new(
        spec: Arc<DeploymentSpec>,
        group_size: usize,
        cooldown: Arc<CooldownConfig>,
        latency_samples: usize,
        clock: Arc<dyn Clock>,
        board: Arc<Board>,
    ) -> Deployment {
        let core = DeploymentCore::new(spec, group_size, cooldown, latency_samples, clock.now());
        Deployment { core, clock, board }
    }

    fn publish(&self) {
        let view = self.core.view();
        self.board
            .insert(view.spec.id.clone(), Arc::new(view.clone()));
    }
}

impl Actor for Deployment {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        self.publish();
    }
}

impl Handler<Reserve> for Deployment {
    type Result = Result<Reservation, Refusal>;

    fn handle(&mut self, msg: Reserve, ctx: &mut Context<Self>) -> Self::Result {
        let now = self.clock.now();
        self.core.reserve(now, msg.input_tokens)?;
        self.publish();
        let spec = &self.core.view().spec;
        Ok(Reservation::new(
            spec.id.clone(),
            ctx.address().recipient(),
            self.clock.clone(),
            now,
        ))
    }
}

impl Handler<ReportOutcome> for Deployment {
    type Result = ();

    fn handle(&mut self, msg: ReportOutcome, _: &mut Context<Self>) {
        if let Some(cooldown) = self.core.report(msg.at, msg.outcome) {
            let spec = &self.core.view().spec;
            log::warn!(
                "deployment {} (model {}) cooling down for {:.1}s after {:?}",
                spec.id,
                spec.model,
                cooldown.as_secs_f64(),
                msg.outcome
            );
        }
        self.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::settings::RouterSettings;

    fn core(spec: DeploymentSpec, group_size: usize, clock: &ManualClock) -> DeploymentCore {
        let cooldown = Arc::new(CooldownConfig::from_settings(&RouterSettings::default()));
        DeploymentCore::new(Arc::new(spec), group_size, cooldown, 10, clock.now())
    }

    fn failure(class: ErrorClass, status: u16) -> Outcome {
        Outcome::Failure {
            class,
            status,
            retry_after: None,
            latency: Duration::from_millis(5),
        }
    }

    #[test]
    fn reserve_counts_rpm_and_in_flight() {
        let clock = ManualClock::new();
        let spec = DeploymentSpec {
            rpm: Some(2),
            ..DeploymentSpec::new("a", "g", "openai/g")
        };
        let mut core = core(spec, 1, &clock);
        assert_eq!(core.reserve(clock.now(), 1), Ok(()));
        assert_eq!(core.reserve(clock.now(), 1), Ok(()));
        assert!(matches!(
            core.reserve(clock.now(), 1),
            Err(Refusal::AtLimit(_))
        ));
        assert_eq!(core.view().in_flight, 2);
        core.report(clock.now(), Outcome::Cancelled);
        assert_eq!(core.view().in_flight, 1);
        // The refused request was not counted: after the window slides by half, one fits again.
        clock.advance(Duration::from_secs(90));
        assert_eq!(core.reserve(clock.now(), 1), Ok(()));
    }

    #[test]
    fn success_feeds_tpm_and_latency_per_output_token() {
        let clock = ManualClock::new();
        let spec = DeploymentSpec {
            tpm: Some(100),
            ..DeploymentSpec::new("a", "g", "openai/g")
        };
        let mut core = core(spec, 1, &clock);
        core.reserve(clock.now(), 10).unwrap();
        let outcome = Outcome::Success {
            latency: Duration::from_secs(2),
            ttft: Some(Duration::from_millis(300)),
            prompt_tokens: 40,
            completion_tokens: 50,
        };
        assert_eq!(core.report(clock.now(), outcome), None);
        let view = core.view();
        assert_eq!(view.tpm_used(clock.now()), 90.0);
        assert_eq!(view.latency.len(), 1);
        assert!((view.latency[0].seconds - 0.04).abs() < 1e-12);
        assert!((view.ttft[0].seconds - 0.3).abs() < 1e-12);
        // 90 of 100 tokens used: a 10-token prompt fits, an 11-token one does not.
        assert_eq!(core.reserve(clock.now(), 10), Ok(()));
        assert!(matches!(
            core.reserve(clock.now(), 11),
            Err(Refusal::AtLimit(_))
        ));
    }

    #[test]
    fn timeout_adds_a_penalty_sample() {
        let clock = ManualClock::new();
        let mut core = core(DeploymentSpec::new("a", "g", "m"), 1, &clock);
        core.reserve(clock.now(), 0).unwrap();
        core.report(clock.now(), failure(ErrorClass::Timeout, 408));
        assert_eq!(core.view().latency[0].seconds, TIMEOUT_PENALTY_SECS);
    }

    #[test]
    fn rate_limit_cools_down_then_recovers_on_its_own() {
        let clock = ManualClock::new();
        let mut core = core(DeploymentSpec::new("a", "g", "m"), 2, &clock);
        core.reserve(clock.now(), 0).unwrap();
        let cooldown = core.report(clock.now(), failure(ErrorClass::RateLimit, 429));
        assert_eq!(cooldown, Some(Duration::from_secs(5)));
        let until = clock.now() + Duration::from_secs(5);
        assert_eq!(core.reserve(clock.now(), 0), Err(Refusal::Cooling(until)));
        clock.advance(Duration::from_millis(4999));
        assert_eq!(core.reserve(clock.now(), 0), Err(Refusal::Cooling(until)));
        clock.advance(Duration::from_millis(1));
        assert_eq!(core.reserve(clock.now(), 0), Ok(()));
        assert_eq!(core.view().cooldown_until, None);
    }

    #[test]
    fn lone_deployment_is_not_cooled_by_rate_limits_but_is_by_auth() {
        let clock = ManualClock::new();
        let mut core = core(DeploymentSpec::new("a", "g", "m"), 1, &clock);
        for _ in 0..6 {
            core.reserve(clock.now(), 0).unwrap();
            assert_eq!(
                core.report(clock.now(), failure(ErrorClass::RateLimit, 429)),
                None
            );
        }
        core.reserve(clock.now(), 0).unwrap();
        assert!(core
            .report(clock.now(), failure(ErrorClass::Auth, 401))
            .is_some());
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
            core.reserve(clock.now(), 0).unwrap();
            assert_eq!(core.report(clock.now(), outcome), None);
        }
        // 2 failures of 4: not above half yet.
        core.reserve(clock.now(), 0).unwrap();
        assert_eq!(
            core.report(clock.now(), failure(ErrorClass::ServerError, 503)),
            None
        );
        // 3 of 5: cooled.
        core.reserve(clock.now(), 0).unwrap();
        assert!(core
            .report(clock.now(), failure(ErrorClass::ServerError, 500))
            .is_some());
    }

    #[test]
    fn wildcard_deployments_never_cool_down() {
        let clock = ManualClock::new();
        let mut core = core(DeploymentSpec::new("w", "openai/*", "openai/*"), 2, &clock);
        core.reserve(clock.now(), 0).unwrap();
        assert_eq!(
            core.report(clock.now(), failure(ErrorClass::RateLimit, 429)),
            None
        );
        assert_eq!(core.reserve(clock.now(), 0), Ok(()));
    }
}
