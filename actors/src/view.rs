//! The snapshot a Deployment actor publishes after every change, and the board that holds them.
//! ModelGroups and strategies read views without a message round trip; the Deployment actor
//! remains the only writer and re-checks everything when asked to [`Reserve`](crate::Reserve).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::latency::LatencySample;
use crate::settings::{DeploymentId, DeploymentSpec};
use crate::window::{RateWindow, WINDOW};

/// Every deployment's latest view, keyed by id.
pub type Board = DashMap<DeploymentId, Arc<DeploymentView>>;

/// How long a caller should wait when every deployment is at `max_parallel_requests`: we cannot
/// know when one finishes, so suggest a short wait.
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A deployment's state at the moment it was published. Windows and cooldowns are stored as
/// data and evaluated at the reader's `now`, so a view never goes stale on a minute boundary.
#[derive(Clone, Debug)]
pub struct DeploymentView {
    /// The static description (limits, weight, order, costs).
    pub spec: Arc<DeploymentSpec>,
    /// Requests reserved and not yet finished.
    pub in_flight: u32,
    /// Requests started over the sliding minute (rpm).
    pub requests: RateWindow,
    /// Tokens the upstream reported over the sliding minute (tpm).
    pub tokens: RateWindow,
    /// Successes over the sliding minute.
    pub successes: RateWindow,
    /// Failures over the sliding minute.
    pub failures: RateWindow,
    /// Recent latencies, seconds per output token when known.
    pub latency: Arc<[LatencySample]>,
    /// Recent times to first token (streams).
    pub ttft: Arc<[LatencySample]>,
    /// Refuses requests until then.
    pub cooldown_until: Option<Instant>,
}

/// Why a deployment cannot take a request now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// In cooldown until the given instant.
    Cooling(Instant),
    /// Its rpm or tpm would be exceeded; room again after the given wait.
    AtLimit(Duration),
    /// At `max_parallel_requests`.
    Busy,
}

impl DeploymentView {
    /// A fresh deployment: nothing used, nothing measured.
    pub fn new(spec: Arc<DeploymentSpec>, now: Instant) -> DeploymentView {
        DeploymentView {
            spec,
            in_flight: 0,
            requests: RateWindow::new(now),
            tokens: RateWindow::new(now),
            successes: RateWindow::new(now),
            failures: RateWindow::new(now),
            latency: Arc::from([]),
            ttft: Arc::from([]),
            cooldown_until: None,
        }
    }

    /// The deployment's id.
    pub fn id(&self) -> &DeploymentId {
        &self.spec.id
    }

    /// Requests over the sliding minute.
    pub fn rpm_used(&self, now: Instant) -> f64 {
        self.requests.estimate(now)
    }

    /// Tokens over the sliding minute.
    pub fn tpm_used(&self, now: Instant) -> f64 {
        self.tokens.estimate(now)
    }

    /// Whether a request of `input_tokens` may start at `now`. Cooldown first, then rpm/tpm
    /// (one more request must fit: `used + 1 <= rpm`; tokens must fit and at least one token of
    /// budget must remain), then `max_parallel_requests`.
    pub fn availability(&self, now: Instant, input_tokens: u64) -> Result<(), Refusal> {
        if let Some(until) = self.cooldown_until {
            if now < until {
                return Err(Refusal::Cooling(until));
            }
        }
        let mut wait = Duration::ZERO;
        let mut limited = false;
        let limits = [
            (&self.requests, 1, self.spec.rpm),
            (&self.tokens, input_tokens.max(1), self.spec.tpm),
        ];
        for (window, amount, limit) in limits {
            if let Some(limit) = limit {
                if !window.fits(now, amount, limit) {
                    limited = true;
                    let room = window.wait_for_room(now, amount, limit).unwrap_or(WINDOW);
                    wait = wait.max(room);
                }
            }
        }
        if limited {
            return Err(Refusal::AtLimit(wait));
        }
        match self.spec.max_parallel_requests {
            Some(max) if self.in_flight >= max => Err(Refusal::Busy),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    #[test]
    fn availability_checks_cooldown_limits_and_parallelism() {
        let clock = ManualClock::new();
        let now = clock.now();
        let spec = DeploymentSpec {
            rpm: Some(2),
            tpm: Some(100),
            max_parallel_requests: Some(1),
            ..DeploymentSpec::new("a", "g", "openai/g")
        };
        let mut view = DeploymentView::new(Arc::new(spec), now);
        assert_eq!(view.availability(now, 10), Ok(()));
        assert!(matches!(view.availability(now, 101), Err(Refusal::AtLimit(w)) if w == WINDOW));

        view.in_flight = 1;
        assert_eq!(view.availability(now, 10), Err(Refusal::Busy));
        view.in_flight = 0;

        view.requests.add(now, 2);
        assert!(matches!(
            view.availability(now, 10),
            Err(Refusal::AtLimit(_))
        ));
        view.requests.clear(now);
        view.tokens.add(now, 95);
        assert_eq!(view.availability(now, 5), Ok(()));
        assert!(matches!(
            view.availability(now, 6),
            Err(Refusal::AtLimit(_))
        ));

        let until = now + Duration::from_secs(5);
        view.cooldown_until = Some(until);
        assert_eq!(view.availability(now, 1), Err(Refusal::Cooling(until)));
        assert_eq!(view.availability(until, 1), Ok(()));
    }
}
