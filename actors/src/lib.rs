//! The brain of llm-proxy: which deployment serves a request, and what happens when it fails.
//! No HTTP and no YAML: the config layer hands in [`DeploymentSpec`]s and [`RouterSettings`],
//! the HTTP layer calls [`Router::resolve`] and [`Router::execute`] with a closure that performs
//! one upstream attempt.
//!
//! # Model
//!
//! - One **[`Deployment`] actor** per deployment owns its limits and health. It creates the
//!   deployment's shared admission state (lock-free counters: in flight, requests and tokens over
//!   the sliding minute, `cooldown_until`), records every outcome (tokens, latency samples, this
//!   minute's successes and failures), decides cooldowns and writes them there, and publishes
//!   what it learned.
//! - One **[`ModelGroup`] actor** per `model_name` supervises its deployments: it starts their
//!   actors and builds the group's table (members, precomputed weights, order tiers). It answers
//!   [`Pick`]; the Router runs the same pick without the message.
//! - A **pick** runs on the caller's thread: it keeps the deployments that can take the request
//!   now, narrows to the lowest `order` tier, lets the [`Strategy`] (pure functions in
//!   [`strategy`]) choose, and takes a slot with one atomic check-and-increment that never lets
//!   rpm or `max_parallel_requests` be exceeded. The result is a [`Reservation`] (an RAII
//!   in-flight slot that reports exactly one [`Outcome`], `Cancelled` if dropped unreported) or
//!   [`NoDeployments`]. Reporting frees the slot at once and posts the outcome to the Deployment
//!   actor without waiting (the first post since the actor last drained wakes it with
//!   [`Settle`]); after a failure the router awaits a `Settle` (the actor's decision) before it
//!   picks again.
//! - All these actors live on one dedicated Arbiter started by [`Router::start`].
//! - The **[`Router`]** is a cheap `Arc` handle that resolves names (group, alias, deployment id,
//!   wildcard, litellm model) and runs the pick, retry and fallback loop on the caller's task, so
//!   a request that succeeds waits for no actor, the upstream I/O never enters an actor, and one
//!   slow provider never blocks a mailbox.
//!
//! # Time and randomness
//!
//! Nothing reads the clock except [`SystemClock`]: windows, cooldowns, latency samples and retry
//! backoffs all take an injected [`Clock`] (tests use [`ManualClock`], whose `sleep` advances
//! time instantly). Windows and cooldown expiry are evaluated lazily at the reader's `now`, so
//! no timers are needed. Randomness comes from seeded `fastrand::Rng`s
//! ([`Router::start_seeded`]).

mod admission;
mod clock;
mod cooldown;
mod deployment;
mod error;
mod fallback;
mod latency;
mod model_group;
mod reservation;
mod retry;
mod router;
mod settings;
pub mod strategy;
mod view;
mod wildcard;
pub mod window;

pub use clock::{Clock, ManualClock, Sleep, SystemClock};
pub use cooldown::{cooldown_for, CooldownConfig, CooldownRules, FailureFacts};
pub use deployment::{Deployment, Settle};
pub use error::{AttemptError, ErrorClass};
pub use fallback::fallback_groups;
pub use latency::{LatencySample, TIMEOUT_PENALTY_SECS};
pub use model_group::{ModelGroup, NoDeployments, Pick};
pub use reservation::{Outcome, Reservation};
pub use retry::{backoff, retry_budget, should_retry, RetrySources};
pub use router::{Attempt, Resolved, RouteError, RouteErrorKind, RouteRequest, Routed, Router};
pub use settings::{
    Alias, AllowedFailsPolicy, DeploymentId, DeploymentSpec, RetryPolicy, RouterSettings, Strategy,
};
pub use view::{DeploymentView, Refusal};
pub use wildcard::{upstream_model, Pattern};
