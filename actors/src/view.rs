//! What a deployment looks like from outside: [`DeploymentView`], everything at once as of one
//! moment (built from the deployment's shared admission state for `/model/info`, metrics and
//! tests), and [`Refusal`], why it cannot take a request now.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::latency::LatencySample;
use crate::settings::DeploymentSpec;
use crate::window::RateWindow;

/// How long a caller should wait when every deployment is at `max_parallel_requests`: we cannot
/// know when one finishes, so suggest a short wait.
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A deployment's state as of one moment. Windows are stored as data and evaluated at the
/// reader's `now`, so a view never goes stale on a minute boundary.
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
    /// Refuses requests until then (`None` once the cooldown is over).
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
    /// Requests over the sliding minute.
    pub fn rpm_used(&self, now: Instant) -> f64 {
        self.requests.estimate(now)
    }

    /// Tokens over the sliding minute.
    pub fn tpm_used(&self, now: Instant) -> f64 {
        self.tokens.estimate(now)
    }
}
