//! The Router: the registry of groups (names, aliases, deployment ids, wildcard patterns) and the
//! retry + fallback executor. It is a cheap `Arc` handle; [`Router::execute`] runs on the
//! caller's task, so the upstream I/O (the attempt closure) never enters an actor, and it picks
//! and reserves there too, from the tables and admission state the actors publish, so a request
//! that succeeds sends one message (its outcome, fire-and-forget) and waits for none.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use actix::prelude::*;

use crate::clock::Clock;
use crate::cooldown::CooldownConfig;
use crate::deployment::DeploymentHandle;
use crate::error::{AttemptError, ErrorClass};
use crate::fallback::fallback_groups;
use crate::latency::LatencyConfig;
use crate::model_group::{GroupSetup, GroupTable, ModelGroup, NoDeployments, Pick};
use crate::reservation::Reservation;
use crate::retry::{backoff, retry_budget, should_retry, RetrySources, MAX_BACKOFF};
use crate::settings::{DeploymentId, DeploymentSpec, RouterSettings};
use crate::view::DeploymentView;
use crate::wildcard::{upstream_model, Pattern};

/// Where a requested model name routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The group to pick from.
    pub group: String,
    /// Set when the name was a deployment id (or a deployment's litellm model): only that one.
    pub pinned: Option<DeploymentId>,
}

/// What [`Router::execute`] needs to know about the client's request.
#[derive(Clone, Debug, Default)]
pub struct RouteRequest {
    /// The model name the client sent.
    pub model: String,
    /// Estimated prompt tokens (checked against tpm).
    pub input_tokens: u64,
    /// Stream requests rank by time to first token under latency-based routing.
    pub stream: bool,
    /// The request's `num_retries`; wins over every configured count.
    pub num_retries: Option<u32>,
    /// The client's own fallback list; replaces the configured ones.
    pub fallbacks: Option<Vec<String>>,
    /// Skip fallbacks entirely.
    pub disable_fallbacks: bool,
}

/// One try, handed to the attempt closure.
#[derive(Debug)]
pub struct Attempt {
    /// The in-flight slot; report on it, or keep a clone in a stream that reports when it ends.
    pub reservation: Reservation,
    /// The chosen deployment.
    pub deployment: DeploymentId,
    /// The group being tried (a fallback group's name when falling back).
    pub model_group: String,
    /// For wildcard deployments, the litellm model with each `*` replaced by the captured text
    /// (`openai/*` + request `gpt-4o` under `*` gives `openai/gpt-4o`); `None` otherwise.
    pub upstream_model: Option<String>,
    /// 0-based, across the whole request (retries and fallbacks included).
    pub attempt_number: u32,
}

/// A successful attempt and how it was reached.
#[derive(Debug)]
pub struct Routed<T> {
    /// What the attempt closure returned.
    pub value: T,
    /// The deployment that answered.
    pub deployment: DeploymentId,
    /// The group it belongs to (a fallback group when falling back).
    pub model_group: String,
    /// Retries across the whole request.
    pub attempted_retries: u32,
    /// Fallback groups tried, the successful one included.
    pub attempted_fallbacks: u32,
    /// The retry budget of the last failure (the configured count when nothing failed).
    pub max_retries: u32,
}

/// Why a request failed, with what was tried.
#[derive(Debug)]
pub struct RouteError<E> {
    /// The error to show the client.
    pub kind: RouteErrorKind<E>,
    /// The group the request resolved to (not a fallback).
    pub model_group: String,
    /// The deployment of the last attempt.
    pub last_deployment: Option<DeploymentId>,
    /// Retries across the whole request.
    pub attempted_retries: u32,
    /// Fallback groups tried.
    pub attempted_fallbacks: u32,
    /// The retry budget of the last failure.
    pub max_retries: u32,
    /// The fallback groups tried, in order, as named in the config or request.
    pub fallbacks_tried: Vec<String>,
    /// Every other failed attempt in order, with its deployment; the error in `kind` is moved
    /// out of this list, so the last entry is the last fallback's error when `kind` is the
    /// original group's.
    pub failures: Vec<(DeploymentId, E)>,
}

/// The error to show the client.
#[derive(Debug)]
pub enum RouteErrorKind<E> {
    /// An upstream error: the original group's final error when its fallbacks also failed
    /// (LiteLLM's behaviour), or the last upstream error when the original group had no
    /// deployment available.
    Upstream(E),
    /// Nothing was available and no upstream was ever reached: LiteLLM's 429 "No deployments
    /// available". Also returned for a model name [`Router::resolve`] does not know.
    NoDeployments(NoDeployments),
}

impl<E: fmt::Display> fmt::Display for RouteError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            RouteErrorKind::Upstream(error) => error.fmt(f),
            RouteErrorKind::NoDeployments(none) => f.write_str(&none.message),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for RouteError<E> {}

/// A group as the router holds it.
struct Group {
    addr: Addr<ModelGroup>,
    table: Arc<GroupTable>,
    pattern: Option<Pattern>,
}

struct Inner {
    groups: foldhash::HashMap<String, Group>,
    group_order: Vec<String>,
    deployments: foldhash::HashMap<DeploymentId, Arc<DeploymentHandle>>,
    /// (litellm model, deployment) in config order.
    by_model: Vec<(String, DeploymentId)>,
    /// Wildcard group names, most specific first.
    wildcards: Vec<String>,
    settings: RouterSettings,
    clock: Arc<dyn Clock>,
    rng: Mutex<fastrand::Rng>,
    arbiter: Arbiter,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.arbiter.stop();
    }
}

/// Shared, cheap to clone, `Send + Sync`: see the module doc.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("groups", &self.inner.group_order)
            .finish_non_exhaustive()
    }
}

/// How a group gave up.
struct GroupFailure {
    /// Index in `Run::failures` of the group's last upstream error.
    last_upstream: Option<usize>,
    /// The class that ended the group (`None`: no deployment was available).
    class: Option<ErrorClass>,
    /// Set when the group ended with nothing available.
    no_deployments: Option<NoDeployments>,
    /// For the log line: the deployment and model of the last failure.
    last_attempt: Option<(DeploymentId, String, ErrorClass, u16)>,
}

/// What one `execute` call has done so far.
struct Run<E> {
    failures: Vec<(DeploymentId, E)>,
    attempt_number: u32,
    retries: u32,
    max_retries: u32,
    last_deployment: Option<DeploymentId>,
}

impl Router {
    /// Starts one ModelGroup actor per distinct `model_name`, each with a Deployment actor per
    /// spec, on a dedicated Arbiter. Must be called inside a running actix System. Deployment
    /// ids must be unique; a repeated id is logged and skipped.
    pub fn start(
        specs: Vec<DeploymentSpec>,
        settings: RouterSettings,
        clock: Arc<dyn Clock>,
    ) -> Router {
        Router::start_seeded(specs, settings, clock, fastrand::u64(..))
    }

    /// [`Router::start`] with the groups' random number generators seeded from `seed`, for
    /// reproducible tests.
    pub fn start_seeded(
        specs: Vec<DeploymentSpec>,
        settings: RouterSettings,
        clock: Arc<dyn Clock>,
        seed: u64,
    ) -> Router {
        let arbiter = Arbiter::new();
        let handle = arbiter.handle();
        let setup = GroupSetup {
            strategy: settings.strategy.clone(),
            cooldown: Arc::new(CooldownConfig::from_settings(&settings)),
            latency: LatencyConfig::for_strategy(&settings.strategy),
            clock: clock.clone(),
        };

        let mut seen = HashSet::new();
        let mut group_order: Vec<String> = Vec::new();
        let mut by_group: HashMap<String, Vec<Arc<DeploymentSpec>>> = HashMap::new();
        let mut by_model = Vec::new();
        for spec in specs {
            if !seen.insert(spec.id.clone()) {
                log::warn!(
                    "deployment id {} (model_name {}) is not unique; skipping the repeat",
                    spec.id,
                    spec.model_name
                );
                continue;
            }
            let spec = Arc::new(spec);
            if !by_group.contains_key(&spec.model_name) {
                group_order.push(spec.model_name.clone());
            }
            by_group
                .entry(spec.model_name.clone())
                .or_default()
                .push(spec.clone());
            by_model.push((spec.model.clone(), spec.id.clone()));
        }

        let mut rng = fastrand::Rng::with_seed(seed);
        let mut groups = foldhash::HashMap::default();
        let mut deployments = foldhash::HashMap::default();
        for name in &group_order {
            let specs = by_group.remove(name).unwrap_or_default();
            let (addr, table) =
                ModelGroup::start(&handle, name.clone(), specs, &setup, rng.u64(..));
            for member in &table.members {
                deployments.insert(member.admission.id().clone(), member.clone());
            }
            let group = Group {
                addr,
                table,
                pattern: Pattern::new(name),
            };
            groups.insert(name.clone(), group);
        }

        let mut wildcards: Vec<&Group> = groups.values().filter(|g| g.pattern.is_some()).collect();
        wildcards.sort_by_key(|group| {
            let specificity = group.pattern.as_ref().map(Pattern::specificity);
            let position = group_order.iter().position(|n| *n == group.table.name);
            (std::cmp::Reverse(specificity), position)
        });
        let wildcards = wildcards
            .into_iter()
            .map(|g| g.table.name.clone())
            .collect();

        Router {
            inner: Arc::new(Inner {
                groups,
                group_order,
                deployments,
                by_model,
                wildcards,
                settings,
                clock,
                rng: Mutex::new(rng),
                arbiter,
            }),
        }
    }

    /// Public model names for `/v1/models`: non-hidden aliases first, then each distinct
    /// `model_name` in config order (wildcard names included literally).
    pub fn model_names(&self) -> Vec<String> {
        let aliases = self
            .inner
            .settings
            .aliases
            .iter()
            .filter(|alias| !alias.hidden)
            .map(|alias| alias.name.clone());
        aliases
            .chain(self.inner.group_order.iter().cloned())
            .collect()
    }

    /// The settings the router runs with (fallback lists, retries, cooldowns).
    pub fn settings(&self) -> &RouterSettings {
        &self.inner.settings
    }

    /// The deployment with this id, as configured.
    pub fn deployment(&self, id: &str) -> Option<&DeploymentSpec> {
        self.inner
            .deployments
            .get(id)
            .map(|handle| handle.admission.spec().as_ref())
    }

    /// A deployment's state now: its live counters and cooldown, and the latest record its
    /// actor published (for `/model/info`, metrics and tests).
    pub fn view(&self, id: &str) -> Option<Arc<DeploymentView>> {
        let handle = self.inner.deployments.get(id)?;
        Some(Arc::new(handle.admission.view(self.inner.clock.now())))
    }

    /// The address of a group's actor, to send it [`Pick`] directly (the Router itself picks
    /// without it).
    pub fn group(&self, name: &str) -> Option<Addr<ModelGroup>> {
        self.inner.groups.get(name).map(|group| group.addr.clone())
    }

    /// The deployments of a group, in config order.
    pub fn group_deployments(&self, group: &str) -> Vec<&DeploymentSpec> {
        self.inner
            .groups
            .get(group)
            .map(|g| {
                let members = g.table.members.iter();
                members.map(|m| m.admission.spec().as_ref()).collect()
            })
            .unwrap_or_default()
    }

    /// Resolves a requested model name: exact group, then alias (whose target may be a group or
    /// a name a wildcard pattern matches), then deployment id (pinned), then wildcard pattern
    /// (most specific first), then a deployment whose litellm `model` is the name (pinned to the
    /// first in config order). `None`: unknown model (HTTP 400).
    pub fn resolve(&self, requested: &str) -> Option<Resolved> {
        let inner = &self.inner;
        if let Some(resolved) = self.resolve_group(requested) {
            return Some(resolved);
        }
        if let Some(alias) = self.alias(requested) {
            let target = &alias.target;
            if let Some(resolved) = self
                .resolve_group(target)
                .or_else(|| self.resolve_pattern(target))
            {
                return Some(resolved);
            }
        }
        if let Some(spec) = self.deployment(requested) {
            return Some(Resolved {
                group: spec.model_name.clone(),
                pinned: Some(spec.id.clone()),
            });
        }
        if let Some(resolved) = self.resolve_pattern(requested) {
            return Some(resolved);
        }
        let (_, id) = inner
            .by_model
            .iter()
            .find(|(model, _)| model == requested)?;
        let spec = self.deployment(id)?;
        Some(Resolved {
            group: spec.model_name.clone(),
            pinned: Some(spec.id.clone()),
        })
    }

    /// An exact group name.
    fn resolve_group(&self, name: &str) -> Option<Resolved> {
        self.inner.groups.contains_key(name).then(|| Resolved {
            group: name.to_owned(),
            pinned: None,
        })
    }

    /// The most specific wildcard group whose pattern matches `name`.
    fn resolve_pattern(&self, name: &str) -> Option<Resolved> {
        let inner = &self.inner;
        let group = inner.wildcards.iter().find(|group| {
            inner
                .groups
                .get(*group)
                .and_then(|g| g.pattern.as_ref())
                .is_some_and(|pattern| pattern.captures(name).is_some())
        })?;
        Some(Resolved {
            group: group.clone(),
            pinned: None,
        })
    }

    /// The alias named `name`, unless a group of that name shadows it.
    fn alias(&self, name: &str) -> Option<&crate::settings::Alias> {
        if self.inner.groups.contains_key(name) {
            return None;
        }
        self.inner
            .settings
            .aliases
            .iter()
            .find(|alias| alias.name == name)
    }

    /// The name wildcard captures come from: an alias's target, else the name itself.
    fn capture_name<'a>(&'a self, requested: &'a str) -> &'a str {
        self.alias(requested)
            .map_or(requested, |alias| alias.target.as_str())
    }

    /// Runs the request: picks a deployment, calls `attempt`, retries transient failures within
    /// the group (preferring deployments not yet tried), then walks the fallback groups. Runs on
    /// the caller's task; the attempt future may be `!Send`. The closure enforces its own
    /// timeouts (returning an error of class `Timeout`). On `Err(e)` the reservation gets
    /// `fail(e.class(), e.status(), e.retry_after())` unless something was reported already; on
    /// `Ok` with nothing reported and no clone kept, it gets `succeed(0, 0)`.
    pub async fn execute<T, E, F, Fut>(
        &self,
        request: &RouteRequest,
        mut attempt: F,
    ) -> Result<Routed<T>, RouteError<E>>
    where
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: AttemptError,
    {
        let settings = &self.inner.settings;
        let mut run = Run {
            failures: Vec::new(),
            attempt_number: 0,
            retries: 0,
            max_retries: request.num_retries.unwrap_or(settings.num_retries),
            last_deployment: None,
        };
        let Some(resolved) = self.resolve(&request.model) else {
            let none = NoDeployments::unavailable(&request.model, "Unknown model name.");
            return Err(self.give_up(&request.model, run, None, Some(none), Vec::new()));
        };
        let original = resolved.group.clone();
        // With nowhere to fall back to, a group whose deployments are all briefly unavailable
        // is waited for (within the retry budget) instead of failing at once.
        let may_wait = request.disable_fallbacks
            || request.fallbacks.as_ref().map_or_else(
                || fallback_groups(settings, &request.model, &original, None).is_empty(),
                Vec::is_empty,
            );
        let first = match self
            .run_group(
                &mut run,
                request,
                self.capture_name(&request.model),
                &resolved,
                may_wait,
                &mut attempt,
            )
            .await
        {
            Ok(routed) => return Ok(routed),
            Err(failure) => failure,
        };

        let plan = if request.disable_fallbacks {
            Vec::new()
        } else if let Some(client) = &request.fallbacks {
            client.clone()
        } else {
            fallback_groups(settings, &request.model, &original, first.class)
        };
        let mut pending: VecDeque<String> = plan.into();
        let mut visited: Vec<String> = vec![original.clone()];
        let mut fallbacks_tried: Vec<String> = Vec::new();
        let mut failure = first;
        let original_upstream = failure.last_upstream;
        let original_none = failure.no_deployments.clone();
        loop {
            let next = self.next_fallback(&mut pending, &visited, fallbacks_tried.len());
            log_group_failure(
                &request.model,
                &failure,
                next.as_ref().map(|(name, _)| name.as_str()),
            );
            let Some((name, resolved)) = next else { break };
            visited.push(resolved.group.clone());
            fallbacks_tried.push(name.clone());
            match self
                .run_group(
                    &mut run,
                    request,
                    self.capture_name(&name),
                    &resolved,
                    false,
                    &mut attempt,
                )
                .await
            {
                Ok(mut routed) => {
                    routed.attempted_fallbacks =
                        u32::try_from(fallbacks_tried.len()).unwrap_or(u32::MAX);
                    return Ok(routed);
                }
                Err(next_failure) => {
                    if request.fallbacks.is_none() && !request.disable_fallbacks {
                        // The fallback group's own fallbacks come next, before the rest of the list.
                        let nested =
                            fallback_groups(settings, &name, &resolved.group, next_failure.class);
                        for group in nested.into_iter().rev() {
                            pending.push_front(group);
                        }
                    }
                    failure = next_failure;
                }
            }
        }
        Err(self.give_up(
            &original,
            run,
            original_upstream,
            original_none,
            fallbacks_tried,
        ))
    }

    /// The next fallback worth trying: known, not yet visited, within `max_fallbacks`.
    fn next_fallback(
        &self,
        pending: &mut VecDeque<String>,
        visited: &[String],
        tried: usize,
    ) -> Option<(String, Resolved)> {
        if tried >= usize::try_from(self.inner.settings.max_fallbacks).unwrap_or(usize::MAX) {
            return None;
        }
        while let Some(name) = pending.pop_front() {
            match self.resolve(&name) {
                Some(resolved) if !visited.contains(&resolved.group) => {
                    return Some((name, resolved))
                }
                Some(_) => {}
                None => log::warn!("fallback model group {name} is not configured; skipping it"),
            }
        }
        None
    }

    /// The final error: the original group's last upstream error; else the last upstream error
    /// of any fallback; else the original group's NoDeployments.
    fn give_up<E>(
        &self,
        original: &str,
        mut run: Run<E>,
        original_upstream: Option<usize>,
        original_none: Option<NoDeployments>,
        fallbacks_tried: Vec<String>,
    ) -> RouteError<E> {
        let upstream = match original_upstream {
            Some(index) if index < run.failures.len() => Some(run.failures.remove(index).1),
            _ => run.failures.pop().map(|(_, error)| error),
        };
        let kind = match (upstream, original_none) {
            (Some(error), _) => RouteErrorKind::Upstream(error),
            (None, Some(none)) => RouteErrorKind::NoDeployments(none),
            (None, None) => RouteErrorKind::NoDeployments(NoDeployments::unavailable(
                original,
                "Nothing was attempted.",
            )),
        };
        RouteError {
            kind,
            model_group: original.to_owned(),
            last_deployment: run.last_deployment,
            attempted_retries: run.retries,
            attempted_fallbacks: u32::try_from(fallbacks_tried.len()).unwrap_or(u32::MAX),
            max_retries: run.max_retries,
            fallbacks_tried,
            failures: run.failures,
        }
    }

    /// Tries one group with its retries. `requested` is the name wildcard captures come from;
    /// `may_wait` lets a retry wait up to [`MAX_BACKOFF`] for a deployment to come back.
    async fn run_group<T, E, F, Fut>(
        &self,
        run: &mut Run<E>,
        request: &RouteRequest,
        requested: &str,
        resolved: &Resolved,
        may_wait: bool,
        attempt: &mut F,
    ) -> Result<Routed<T>, GroupFailure>
    where
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: AttemptError,
    {
        let inner = &self.inner;
        let settings = &inner.settings;
        let group_name = resolved.group.as_str();
        let mut failure = GroupFailure {
            last_upstream: None,
            class: None,
            no_deployments: None,
            last_attempt: None,
        };
        let Some(group) = inner.groups.get(group_name) else {
            failure.no_deployments = Some(NoDeployments::unavailable(
                group_name,
                "Unknown model group.",
            ));
            return Err(failure);
        };
        let mut tried: Vec<DeploymentId> = Vec::new();
        let mut retries_here = 0;
        // Waits for a deployment to come back, bounded by the retry budget.
        let mut waits = 0;
        // Whether the next pick is already counted as a retry.
        let mut retrying = false;
        loop {
            let pick = Pick {
                exclude: tried.clone(),
                input_tokens: request.input_tokens,
                stream: request.stream,
                pinned: resolved.pinned.clone(),
            };
            let reservation = match group.table.pick(&pick) {
                Ok(reservation) => reservation,
                Err(none) => {
                    let budget = run.max_retries;
                    let wait = none.retry_after;
                    if may_wait && waits < budget && !wait.is_zero() && wait <= MAX_BACKOFF {
                        log::warn!(
                            "no deployment of group {group_name} available; picking again in {:.2}s, when the earliest is back",
                            wait.as_secs_f64()
                        );
                        inner.clock.sleep(wait).await;
                        waits += 1;
                        // A pick that was already a retry stays one retry; a first pick becomes one.
                        if !retrying {
                            retries_here += 1;
                            run.retries += 1;
                            retrying = true;
                        }
                        continue;
                    }
                    failure.class = None;
                    failure.no_deployments = Some(none);
                    return Err(failure);
                }
            };
            let deployment = reservation.deployment().clone();
            let spec = self.deployment(&deployment);
            let wildcard_model = spec.filter(|spec| spec.is_wildcard()).and_then(|spec| {
                Pattern::new(&spec.model_name).map(|p| upstream_model(&p, &spec.model, requested))
            });
            let handle = reservation.clone();
            let number = run.attempt_number;
            run.attempt_number += 1;
            run.last_deployment = Some(deployment.clone());
            let outcome = attempt(Attempt {
                reservation,
                deployment: deployment.clone(),
                model_group: group_name.to_owned(),
                upstream_model: wildcard_model,
                attempt_number: number,
            })
            .await;
            let error = match outcome {
                Ok(value) => {
                    if !handle.is_reported() && handle.is_last_handle() {
                        handle.succeed(0, 0);
                    }
                    return Ok(Routed {
                        value,
                        deployment,
                        model_group: group_name.to_owned(),
                        attempted_retries: run.retries,
                        attempted_fallbacks: 0,
                        max_retries: run.max_retries,
                    });
                }
                Err(error) => error,
            };
            let (class, status, retry_after) = (error.class(), error.status(), error.retry_after());
            handle.fail(class, status, retry_after);
            // Whatever follows this failure (a retry, a fallback, the client's next request)
            // sees the cooldown it caused: the actor decides, and this waits for the decision.
            handle.settle().await;
            drop(handle);
            let model = spec.map(|s| s.model.clone()).unwrap_or_default();
            let budget = retry_budget(
                class,
                &RetrySources {
                    request: request.num_retries,
                    group_policy: settings.model_group_retry_policy.get(group_name),
                    policy: settings.retry_policy.as_ref(),
                    deployment: spec.and_then(|s| s.num_retries),
                    router: settings.num_retries,
                },
            );
            run.max_retries = budget;
            run.failures.push((deployment.clone(), error));
            failure.last_upstream = Some(run.failures.len() - 1);
            if !should_retry(class, retries_here, budget) {
                failure.class = Some(class);
                failure.last_attempt = Some((deployment, model, class, status));
                return Err(failure);
            }
            let other_available = resolved.pinned.is_none()
                && group
                    .table
                    .has_other_available(&deployment, request.input_tokens);
            let jitter = inner
                .rng
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .f64();
            let wait = backoff(
                retries_here,
                retry_after,
                settings.retry_after,
                other_available,
                jitter,
            );
            log::warn!(
                "attempt {number} on deployment {deployment} (model {model}) in group {group_name} failed: {class:?} (status {status}); retry {} of {budget} in group {group_name} after {:.2}s",
                retries_here + 1,
                wait.as_secs_f64()
            );
            if !wait.is_zero() {
                inner.clock.sleep(wait).await;
            }
            retries_here += 1;
            run.retries += 1;
            retrying = true;
            if !tried.contains(&deployment) {
                tried.push(deployment);
            }
        }
    }
}

/// Logs how a group gave up and what happens next.
fn log_group_failure(requested: &str, failure: &GroupFailure, next: Option<&str>) {
    let next = match next {
        Some(group) => format!("falling back to group {group}"),
        None => format!("giving up on model {requested}"),
    };
    match (&failure.last_attempt, &failure.no_deployments) {
        (Some((deployment, model, class, status)), _) => log::warn!(
            "deployment {deployment} (model {model}) failed: {class:?} (status {status}); no retry left in its group; {next}"
        ),
        (None, Some(none)) => log::warn!("{}; {next}", none.message),
        (None, None) => log::warn!("model group failed; {next}"),
    }
}

#[cfg(test)]
mod tests;
