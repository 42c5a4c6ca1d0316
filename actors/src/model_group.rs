//! The ModelGroup actor: one per `model_name`, the supervisor of that group's deployments. It
//! starts their Deployment actors and builds the group's [`GroupTable`] (members, precomputed
//! weights, order tiers), which the Router reads to pick on the request's own thread: the
//! strategy runs over the deployments' shared admission state (lock-free counters and the
//! cooldown their actors decided), and the chosen deployment's slot is taken with one atomic
//! check-and-increment, so a pick sends no message. The actor also answers [`Pick`] as a
//! message, with the same code.
//!
//! A pick keeps the deployments that can take the request now, narrows to the lowest `order`
//! tier, lets the strategy choose, and reserves; a refusal (another thread took the last slot
//! meanwhile) drops that deployment and the strategy chooses again; when nothing is left the
//! answer is [`NoDeployments`] with the time until the earliest deployment comes back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::clock::Clock;
use crate::cooldown::CooldownConfig;
use crate::deployment::{Deployment, DeploymentHandle};
use crate::latency::LatencyConfig;
use crate::reservation::Reservation;
use crate::settings::{DeploymentId, DeploymentSpec, Strategy};
use crate::strategy::simple_shuffle::WeightTable;
use crate::strategy::Candidate;
use crate::view::{Refusal, BUSY_RETRY_AFTER};

/// Asks a group for a deployment and an in-flight slot on it (the Router does the same without
/// the message).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Reservation, NoDeployments>")]
pub struct Pick {
    /// Deployments to avoid (already tried for this request). Only a preference: when every
    /// available deployment is in the list, one of them is picked again.
    pub exclude: Vec<DeploymentId>,
    /// Estimated prompt tokens, checked against tpm.
    pub input_tokens: u64,
    /// Stream requests rank by time to first token under latency-based routing.
    pub stream: bool,
    /// Only this deployment (the client named a deployment id), bypassing the strategy.
    pub pinned: Option<DeploymentId>,
}

/// Every deployment of the group is cooling down or at a limit (LiteLLM's "No deployments
/// available", answered with 429 and Retry-After).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoDeployments {
    /// The group asked.
    pub model_group: String,
    /// Deployments in cooldown.
    pub cooling: Vec<DeploymentId>,
    /// Time until the earliest deployment can take a request again (cooldown end, or room in
    /// its rpm/tpm window), not LiteLLM's configured cooldown length.
    pub retry_after: Duration,
    /// Whether some deployment was refused for rpm/tpm/max_parallel_requests.
    pub at_limit: bool,
    /// LiteLLM-like text: "No deployments available for selected model, Try again in N
    /// seconds. Passed model=X. ...".
    pub message: String,
}

impl NoDeployments {
    /// A group with nothing to offer for a reason other than load (unknown group or deployment).
    pub(crate) fn unavailable(model_group: &str, reason: &str) -> NoDeployments {
        NoDeployments {
            model_group: model_group.to_owned(),
            cooling: Vec::new(),
            retry_after: Duration::ZERO,
            at_limit: false,
            message: format!(
                "No deployments available for selected model. Passed model={model_group}. {reason}"
            ),
        }
    }
}

/// What every group of a router shares.
pub(crate) struct GroupSetup {
    pub(crate) strategy: Strategy,
    pub(crate) cooldown: Arc<CooldownConfig>,
    pub(crate) latency: LatencyConfig,
    pub(crate) clock: Arc<dyn Clock>,
}

/// What a group's picks need, built once when the group starts and read-only after (a new
/// config starts a new Router), so pickers share it through an `Arc` without a lock.
pub(crate) struct GroupTable {
    pub(crate) name: String,
    /// In config order.
    pub(crate) members: Vec<Arc<DeploymentHandle>>,
    weights: WeightTable,
    /// Whether every member is in the same `order` tier (the strategy then sees all of them).
    one_tier: bool,
    strategy: Strategy,
    clock: Arc<dyn Clock>,
    /// The group's random stream: each pick takes the next seed, so picks from any thread
    /// share no lock and a seeded router repeats itself.
    seed: AtomicU64,
}

/// Sort key of an `order` tier: lowest first, no order last.
fn tier(spec: &DeploymentSpec) -> (bool, Option<u32>) {
    (spec.order.is_none(), spec.order)
}

impl GroupTable {
    /// Whether a deployment other than `besides` could take a request right now (decides
    /// whether a retry needs a backoff).
    pub(crate) fn has_other_available(&self, besides: &DeploymentId, input_tokens: u64) -> bool {
        let now = self.clock.now();
        self.members.iter().any(|member| {
            let admission = &member.admission;
            admission.id() != besides && admission.admits(now, input_tokens)
        })
    }

    fn rng(&self) -> fastrand::Rng {
        let seed = self.seed.fetch_add(1, Ordering::Relaxed);
        fastrand::Rng::with_seed(fastrand::Rng::with_seed(seed).u64(..))
    }

    /// Picks a deployment and takes a slot on it, on the caller's thread.
    pub(crate) fn pick(&self, request: &Pick) -> Result<Reservation, NoDeployments> {
        let mut rng = self.rng();
        let mut refused: Vec<(usize, Refusal)> = Vec::new();
        let mut available: Vec<usize> = Vec::with_capacity(self.members.len());
        loop {
            let now = self.clock.now();
            available.clear();
            for (index, member) in self.members.iter().enumerate() {
                let admission = &member.admission;
                let in_scope = request
                    .pinned
                    .as_ref()
                    .is_none_or(|id| id == admission.id());
                if in_scope
                    && !refused.iter().any(|(i, _)| *i == index)
                    && admission.admits(now, request.input_tokens)
                {
                    available.push(index);
                }
            }
            let chosen = self.choose(request, &available, now, &mut rng);
            let Some(index) = chosen else {
                return Err(self.no_deployments(request, &refused, now));
            };
            let member = &self.members[index];
            match member.admission.reserve(now, request.input_tokens) {
                Ok(()) => return Ok(Reservation::new(member.clone(), self.clock.clone(), now)),
                Err(refusal) => refused.push((index, refusal)),
            }
        }
    }

    /// Prefers deployments not excluded, keeps the lowest `order` tier, runs the strategy.
    /// Returns an index into `members`.
    fn choose(
        &self,
        request: &Pick,
        available: &[usize],
        now: Instant,
        rng: &mut fastrand::Rng,
    ) -> Option<usize> {
        let member = |index: &usize| &self.members[*index].admission;
        let fresh: Vec<usize>;
        let pool = if request.exclude.is_empty() {
            available
        } else {
            fresh = available
                .iter()
                .copied()
                .filter(|index| !request.exclude.contains(member(index).id()))
                .collect();
            if fresh.is_empty() {
                available
            } else {
                &fresh
            }
        };
        if self.strategy == Strategy::SimpleShuffle
            && self.one_tier
            && pool.len() == self.members.len()
        {
            return self.weights.pick_all(rng);
        }
        let lowest = pool.iter().map(|index| tier(member(index).spec())).min()?;
        let tier: Vec<usize> = pool
            .iter()
            .copied()
            .filter(|index| tier(member(index).spec()) == lowest)
            .collect();
        // Each strategy gets what it ranks by and nothing else: only usage-based reads the token
        // windows, only latency-based the latency means (time to first token for streams).
        let usage = self.strategy == Strategy::UsageBased;
        let latency = matches!(self.strategy, Strategy::LatencyBased { .. });
        let candidates: Vec<Candidate<'_>> = tier
            .iter()
            .map(|index| {
                let admission = member(index);
                Candidate {
                    spec: admission.spec(),
                    weight: self.weights.weight(*index),
                    in_flight: admission.in_flight(),
                    tpm_used: if usage { admission.tpm_used(now) } else { 0 },
                    latency: latency.then(|| admission.latency().at(now)).flatten(),
                    ttft: (latency && request.stream)
                        .then(|| admission.ttft().at(now))
                        .flatten(),
                }
            })
            .collect();
        let chosen = self.strategy.pick(&candidates, rng)?;
        tier.get(chosen).copied()
    }

    /// Why nothing could be picked: each deployment in scope that cannot take the request, and
    /// the time until the earliest can.
    fn no_deployments(
        &self,
        request: &Pick,
        refused: &[(usize, Refusal)],
        now: Instant,
    ) -> NoDeployments {
        if let Some(pinned) = &request.pinned {
            if !self.members.iter().any(|m| m.admission.id() == pinned) {
                return NoDeployments::unavailable(
                    &self.name,
                    &format!("Deployment {pinned} is not in this model group."),
                );
            }
        }
        let mut cooling = Vec::new();
        let mut at_limit = false;
        let mut retry_after: Option<Duration> = None;
        for (index, member) in self.members.iter().enumerate() {
            let admission = &member.admission;
            if request
                .pinned
                .as_ref()
                .is_some_and(|id| id != admission.id())
            {
                continue;
            }
            let refusal = match refused.iter().find(|(i, _)| *i == index) {
                Some((_, refusal)) => Some(*refusal),
                None => admission.refusal(now, request.input_tokens),
            };
            let wait = match refusal {
                // Free again since the filter ran: it is back now.
                None => Duration::ZERO,
                Some(Refusal::Cooling(until)) => {
                    cooling.push(admission.id().clone());
                    until.saturating_duration_since(now)
                }
                Some(Refusal::AtLimit(wait)) => {
                    at_limit = true;
                    wait
                }
                Some(Refusal::Busy) => {
                    at_limit = true;
                    BUSY_RETRY_AFTER
                }
            };
            retry_after = Some(retry_after.map_or(wait, |earliest| earliest.min(wait)));
        }
        let retry_after = retry_after.unwrap_or(Duration::ZERO);
        let seconds = retry_after.as_secs_f64().ceil() as u64;
        let cooldown_list = cooling
            .iter()
            .map(|id| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(", ");
        NoDeployments {
            model_group: self.name.clone(),
            message: format!(
                "No deployments available for selected model, Try again in {seconds} seconds. Passed model={}. pre-call-checks=False, cooldown_list=[{cooldown_list}]{}",
                self.name,
                if at_limit { ", some deployments are at their rpm/tpm/max_parallel_requests limit" } else { "" }
            ),
            cooling,
            retry_after,
            at_limit,
        }
    }
}

/// The group's actor; see the module doc.
pub struct ModelGroup {
    table: Arc<GroupTable>,
}

impl ModelGroup {
    /// Starts the group's Deployment actors, then the group's own, on `arbiter`; returns the
    /// group's address and its table. `specs` are the group's deployments in config order.
    pub(crate) fn start(
        arbiter: &ArbiterHandle,
        name: String,
        specs: Vec<Arc<DeploymentSpec>>,
        setup: &GroupSetup,
        seed: u64,
    ) -> (Addr<ModelGroup>, Arc<GroupTable>) {
        let group_size = specs.len();
        let now = setup.clock.now();
        let weights = WeightTable::build(&specs.iter().map(Arc::as_ref).collect::<Vec<_>>());
        let one_tier = specs
            .windows(2)
            .all(|pair| tier(&pair[0]) == tier(&pair[1]));
        let members = specs
            .into_iter()
            .map(|spec| {
                Deployment::start(
                    arbiter,
                    spec,
                    group_size,
                    setup.cooldown.clone(),
                    setup.latency,
                    now,
                )
            })
            .collect();
        let table = Arc::new(GroupTable {
            name,
            members,
            weights,
            one_tier,
            strategy: setup.strategy.clone(),
            clock: setup.clock.clone(),
            seed: AtomicU64::new(seed),
        });
        let for_actor = table.clone();
        let addr = ModelGroup::start_in_arbiter(arbiter, move |_| ModelGroup { table: for_actor });
        (addr, table)
    }
}

impl Actor for ModelGroup {
    type Context = Context<Self>;
}

impl Handler<Pick> for ModelGroup {
    type Result = Result<Reservation, NoDeployments>;

    fn handle(&mut self, msg: Pick, _: &mut Context<Self>) -> Self::Result {
        self.table.pick(&msg)
    }
}
