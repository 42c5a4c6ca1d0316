//! The ModelGroup actor: one per `model_name`, supervising that group's deployments. A [`Pick`]
//! reads the deployments' published views (no message round trip), keeps those that can take the
//! request now, narrows to the lowest `order` tier, lets the strategy choose, and asks the chosen
//! Deployment to [`Reserve`]. A refusal (the view was a moment stale) drops that deployment and
//! the strategy chooses again; when nothing is left the answer is [`NoDeployments`] with the
//! time until the earliest deployment comes back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::clock::Clock;
use crate::deployment::{Deployment, Reserve};
use crate::reservation::Reservation;
use crate::settings::{DeploymentId, DeploymentSpec, Strategy};
use crate::strategy::simple_shuffle::WeightTable;
use crate::strategy::{Candidate, PickContext};
use crate::view::{Board, DeploymentView, Refusal, BUSY_RETRY_AFTER};

/// Mailbox bound for a group: every request of the group passes through it.
const MAILBOX_CAPACITY: usize = 4096;

/// Asks a group for a deployment and an in-flight slot on it.
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

/// One deployment as its group knows it.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub(crate) spec: Arc<DeploymentSpec>,
    pub(crate) addr: Addr<Deployment>,
}

/// What a group's picks need, shared (read-only) by the actor, its pick futures and the Router.
pub(crate) struct GroupShared {
    pub(crate) name: String,
    pub(crate) members: Vec<Member>,
    table: WeightTable,
    strategy: Strategy,
    board: Arc<Board>,
    clock: Arc<dyn Clock>,
}

impl GroupShared {
    pub(crate) fn new(
        name: String,
        members: Vec<Member>,
        strategy: Strategy,
        board: Arc<Board>,
        clock: Arc<dyn Clock>,
    ) -> GroupShared {
        let specs: Vec<&DeploymentSpec> = members.iter().map(|m| m.spec.as_ref()).collect();
        let table = WeightTable::build(&specs);
        GroupShared {
            name,
            members,
            table,
            strategy,
            board,
            clock,
        }
    }

    fn view(&self, member: &Member) -> Option<Arc<DeploymentView>> {
        self.board
            .get(&member.spec.id)
            .map(|entry| entry.value().clone())
    }

    /// Whether a deployment other than `besides` could take a request right now (decides
    /// whether a retry needs a backoff).
    pub(crate) fn has_other_available(&self, besides: &DeploymentId, input_tokens: u64) -> bool {
        let now = self.clock.now();
        self.members.iter().any(|member| {
            member.spec.id != *besides
                && self
                    .view(member)
                    .is_some_and(|view| view.availability(now, input_tokens).is_ok())
        })
    }

    async fn pick(
        &self,
        request: Pick,
        rng: &mut fastrand::Rng,
    ) -> Result<Reservation, NoDeployments> {
        let mut refused: Vec<(usize, Refusal)> = Vec::new();
        let mut unreachable: Vec<usize> = Vec::new();
        loop {
            let now = self.clock.now();
            let mut available: Vec<(usize, Arc<DeploymentView>)> = Vec::new();
            let mut blocked: Vec<(usize, Refusal)> = refused.clone();
            for (index, member) in self.members.iter().enumerate() {
                let in_scope = request
                    .pinned
                    .as_ref()
                    .is_none_or(|id| *id == member.spec.id);
                let skipped =
                    refused.iter().any(|(i, _)| *i == index) || unreachable.contains(&index);
                if !in_scope || skipped {
                    continue;
                }
                let Some(view) = self.view(member) else {
                    continue;
                };
                match view.availability(now, request.input_tokens) {
                    Ok(()) => available.push((index, view)),
                    Err(refusal) => blocked.push((index, refusal)),
                }
            }
            if available.is_empty() {
                return Err(self.no_deployments(&request, &blocked, now));
            }
            let Some(member) = self.choose(&request, &available, now, rng) else {
                return Err(self.no_deployments(&request, &blocked, now));
            };
            let addr = &self.members[member].addr;
            match addr
                .send(Reserve {
                    input_tokens: request.input_tokens,
                })
                .await
            {
                Ok(Ok(reservation)) => return Ok(reservation),
                Ok(Err(refusal)) => refused.push((member, refusal)),
                Err(error) => {
                    log::warn!(
                        "deployment {} unreachable: {error}",
                        self.members[member].spec.id
                    );
                    unreachable.push(member);
                }
            }
        }
    }

    /// Prefers deployments not excluded, keeps the lowest `order` tier, runs the strategy.
    /// Returns an index into `members`.
    fn choose(
        &self,
        request: &Pick,
        available: &[(usize, Arc<DeploymentView>)],
        now: Instant,
        rng: &mut fastrand::Rng,
    ) -> Option<usize> {
        let fresh: Vec<&(usize, Arc<DeploymentView>)> = available
            .iter()
            .filter(|(_, view)| !request.exclude.contains(view.id()))
            .collect();
        let pool: Vec<&(usize, Arc<DeploymentView>)> = if fresh.is_empty() {
            available.iter().collect()
        } else {
            fresh
        };
        let tier_of = |view: &DeploymentView| (view.spec.order.is_none(), view.spec.order);
        let tier = pool.iter().map(|(_, view)| tier_of(view)).min()?;
        let tier: Vec<&(usize, Arc<DeploymentView>)> = pool
            .into_iter()
            .filter(|(_, view)| tier_of(view) == tier)
            .collect();
        if self.strategy == Strategy::SimpleShuffle && tier.len() == self.members.len() {
            return self.table.pick_all(rng);
        }
        let candidates: Vec<Candidate<'_>> = tier
            .iter()
            .map(|(index, view)| Candidate {
                view: view.as_ref(),
                weight: self.table.weight(*index),
            })
            .collect();
        let context = PickContext {
            input_tokens: request.input_tokens,
            stream: request.stream,
            now,
        };
        let chosen = self.strategy.pick(&candidates, &context, rng)?;
        tier.get(chosen).map(|(index, _)| *index)
    }

    fn no_deployments(
        &self,
        request: &Pick,
        blocked: &[(usize, Refusal)],
        now: Instant,
    ) -> NoDeployments {
        if let Some(pinned) = &request.pinned {
            if !self.members.iter().any(|m| m.spec.id == *pinned) {
                return NoDeployments::unavailable(
                    &self.name,
                    &format!("Deployment {pinned} is not in this model group."),
                );
            }
        }
        let mut cooling = Vec::new();
        let mut at_limit = false;
        let mut retry_after: Option<Duration> = None;
        for (index, refusal) in blocked {
            let wait = match refusal {
                Refusal::Cooling(until) => {
                    cooling.push(self.members[*index].spec.id.clone());
                    until.saturating_duration_since(now)
                }
                Refusal::AtLimit(wait) => {
                    at_limit = true;
                    *wait
                }
                Refusal::Busy => {
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
    shared: Arc<GroupShared>,
    rng: fastrand::Rng,
}

impl ModelGroup {
    pub(crate) fn new(shared: Arc<GroupShared>, seed: u64) -> ModelGroup {
        ModelGroup {
            shared,
            rng: fastrand::Rng::with_seed(seed),
        }
    }
}

impl Actor for ModelGroup {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Handler<Pick> for ModelGroup {
    type Result = ResponseFuture<Result<Reservation, NoDeployments>>;

    fn handle(&mut self, msg: Pick, _: &mut Context<Self>) -> Self::Result {
        let shared = self.shared.clone();
        let mut rng = fastrand::Rng::with_seed(self.rng.u64(..));
        Box::pin(async move { shared.pick(msg, &mut rng).await })
    }
}
