//! A deployment's state as the request path reads it without a message: the counters a
//! reservation takes and gives back (in flight, requests over the sliding minute), and what only
//! the Deployment actor writes (tokens over the minute, `cooldown_until`, the fresh latency
//! means latency-based picks rank by), all lock-free; the actor's latest [`Record`] of outcomes
//! behind a lock, which only views read; and the outbox that carries outcomes to the actor.
//!
//! The Deployment actor creates it and stays the owner of the decisions: it alone records
//! outcomes, counts tokens, and decides and writes cooldowns. A worker thread only checks and
//! takes a slot ([`Admission::reserve`]) and gives it back ([`Admission::release`]); limits are
//! never exceeded (each counter is checked and taken in one atomic step, and backed out if the
//! step crossed the limit), though two requests racing for the last slot may both be refused.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::latency::{FreshMean, LatencyConfig, LatencySample};
use crate::reservation::ReportOutcome;
use crate::settings::{DeploymentId, DeploymentSpec};
use crate::view::{DeploymentView, Refusal};
use crate::window::{AtomicWindow, RateWindow, WINDOW};

/// What the Deployment actor learned from outcomes, published after each one it records.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    /// Successes over the sliding minute.
    pub(crate) successes: RateWindow,
    /// Failures over the sliding minute.
    pub(crate) failures: RateWindow,
    /// Recent latencies, seconds per output token when known.
    pub(crate) latency: Arc<[LatencySample]>,
    /// Recent times to first token (streams).
    pub(crate) ttft: Arc<[LatencySample]>,
}

/// One deployment's shared state; see the module doc.
#[derive(Debug)]
pub(crate) struct Admission {
    spec: Arc<DeploymentSpec>,
    /// Time zero of the windows and of `cooldown_until`.
    origin: Instant,
    in_flight: AtomicU32,
    /// Requests started over the sliding minute (rpm), counted by `reserve`.
    requests: AtomicWindow,
    /// Tokens the upstream reported over the sliding minute (tpm); written by the actor only.
    tokens: AtomicWindow,
    /// Nanoseconds after `origin` until which the deployment refuses requests; 0: never cooled.
    /// Written by the actor only.
    cooldown_until: AtomicU64,
    /// Mean recent latency (per output token when known); written by the actor only.
    latency: FreshMean,
    /// Mean recent time to first token (streams); written by the actor only.
    ttft: FreshMean,
    /// Written by the actor only.
    record: RwLock<Arc<Record>>,
    outbox: Mutex<Outbox>,
}

/// Outcomes on their way to the actor.
#[derive(Debug, Default)]
struct Outbox {
    outcomes: Vec<ReportOutcome>,
    /// The actor will look at the outbox again without being told (a wake-up is on its way, or
    /// it is polling).
    watched: bool,
}

impl Admission {
    /// A fresh deployment: nothing used, nothing measured.
    pub(crate) fn new(
        spec: Arc<DeploymentSpec>,
        latency: LatencyConfig,
        now: Instant,
    ) -> Admission {
        Admission {
            spec,
            origin: now,
            in_flight: AtomicU32::new(0),
            requests: AtomicWindow::new(now),
            tokens: AtomicWindow::new(now),
            cooldown_until: AtomicU64::new(0),
            latency: FreshMean::new(now, latency),
            ttft: FreshMean::new(now, latency),
            record: RwLock::new(Arc::new(Record {
                successes: RateWindow::new(now),
                failures: RateWindow::new(now),
                latency: Arc::from([]),
                ttft: Arc::from([]),
            })),
            outbox: Mutex::new(Outbox::default()),
        }
    }

    /// The static description (limits, weight, order, costs).
    pub(crate) fn spec(&self) -> &Arc<DeploymentSpec> {
        &self.spec
    }

    /// The deployment's id.
    pub(crate) fn id(&self) -> &DeploymentId {
        &self.spec.id
    }

    fn since_origin(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The end of the cooldown in force at `now`, if any.
    pub(crate) fn cooling_until(&self, now: Instant) -> Option<Instant> {
        let until = self.cooldown_until.load(Ordering::Acquire);
        (until != 0 && self.since_origin(now) < until)
            .then(|| self.origin + Duration::from_nanos(until))
    }

    /// Requests in flight.
    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Tokens over the sliding minute ending at `now`.
    pub(crate) fn tpm_used(&self, now: Instant) -> u64 {
        self.tokens.total(now)
    }

    /// Mean recent latency, seconds (per output token when known): readers call `at(now)`,
    /// the actor `publish`es.
    pub(crate) fn latency(&self) -> &FreshMean {
        &self.latency
    }

    /// Mean recent time to first token, seconds; as [`Admission::latency`].
    pub(crate) fn ttft(&self) -> &FreshMean {
        &self.ttft
    }

    /// Whether a request of `input_tokens` may start at `now`: not cooling, one more request
    /// within rpm, the tokens within tpm (at least one token of budget left), a slot under
    /// `max_parallel_requests`. A few loads, no allocation: the picker's filter.
    pub(crate) fn admits(&self, now: Instant, input_tokens: u64) -> bool {
        let spec = &self.spec;
        self.cooling_until(now).is_none()
            && spec
                .tpm
                .is_none_or(|tpm| self.tokens.total(now).saturating_add(input_tokens.max(1)) <= tpm)
            && spec
                .rpm
                .is_none_or(|rpm| self.requests.total(now).saturating_add(1) <= rpm)
            && spec
                .max_parallel_requests
                .is_none_or(|max| self.in_flight() < max)
    }

    /// Why a request of `input_tokens` cannot start at `now` (`None`: it can). Cooldown first,
    /// then rpm/tpm with the wait until both have room, then `max_parallel_requests`.
    pub(crate) fn refusal(&self, now: Instant, input_tokens: u64) -> Option<Refusal> {
        if let Some(until) = self.cooling_until(now) {
            return Some(Refusal::Cooling(until));
        }
        self.limit_wait(now, input_tokens)
            .map(Refusal::AtLimit)
            .or_else(|| {
                let busy = self
                    .spec
                    .max_parallel_requests
                    .is_some_and(|max| self.in_flight() >= max);
                busy.then_some(Refusal::Busy)
            })
    }

    /// The wait until rpm and tpm both have room, when either is full now.
    fn limit_wait(&self, now: Instant, input_tokens: u64) -> Option<Duration> {
        let limits = [
            (&self.requests, 1, self.spec.rpm),
            (&self.tokens, input_tokens.max(1), self.spec.tpm),
        ];
        let mut wait = None;
        for (window, amount, limit) in limits {
            let Some(limit) = limit else { continue };
            if window.total(now).saturating_add(amount) > limit {
                let room = window
                    .snapshot(now)
                    .wait_for_room(now, amount, limit)
                    .unwrap_or(WINDOW);
                wait = Some(wait.map_or(room, |wait: Duration| wait.max(room)));
            }
        }
        wait
    }

    /// Takes an in-flight slot and counts the request in the rpm window, if the deployment can
    /// serve `input_tokens` at `now`; on the caller's thread, lock-free. The limits hold under
    /// any number of concurrent callers (see the module doc).
    pub(crate) fn reserve(&self, now: Instant, input_tokens: u64) -> Result<(), Refusal> {
        if let Some(until) = self.cooling_until(now) {
            return Err(Refusal::Cooling(until));
        }
        let at_limit = |admission: &Admission| {
            Refusal::AtLimit(
                admission
                    .limit_wait(now, input_tokens)
                    .unwrap_or(Duration::ZERO),
            )
        };
        if let Some(tpm) = self.spec.tpm {
            if self.tokens.total(now).saturating_add(input_tokens.max(1)) > tpm {
                return Err(at_limit(self));
            }
        }
        let counted = match self.spec.rpm {
            Some(rpm) => match self.requests.try_add(now, 1, rpm) {
                Some(bucket) => Some(bucket),
                None => return Err(at_limit(self)),
            },
            None => None,
        };
        if !self.take_slot() {
            if let Some(bucket) = counted {
                self.requests.remove(bucket, 1);
            }
            return Err(Refusal::Busy);
        }
        if counted.is_none() {
            // No rpm limit: counted all the same, for the view.
            self.requests.add(now, 1);
        }
        Ok(())
    }

    /// One more in flight, unless at `max_parallel_requests`.
    fn take_slot(&self) -> bool {
        match self.spec.max_parallel_requests {
            None => {
                self.in_flight.fetch_add(1, Ordering::AcqRel);
                true
            }
            Some(max) => self
                .in_flight
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < max).then_some(n + 1)
                })
                .is_ok(),
        }
    }

    /// Gives back the slot a successful [`Admission::reserve`] took.
    pub(crate) fn release(&self) {
        // Saturating: a release never pairs with anything but its own reserve, but an underflow
        // would block the deployment for good.
        let _ = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Queues an outcome for the actor. Returns whether the caller must wake it (send it a
    /// message): only when the actor is not already going to look (see
    /// [`Admission::drain_into`]), so under load no outcome costs a wake-up.
    pub(crate) fn post(&self, report: ReportOutcome) -> bool {
        let mut outbox = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
        outbox.outcomes.push(report);
        !std::mem::replace(&mut outbox.watched, true)
    }

    /// Actor only: moves the queued outcomes into `into` (empty; its capacity is reused). If
    /// there were some, the actor must look again later (it polls while outcomes keep coming);
    /// if there were none, it may stop, and the next post wakes it.
    pub(crate) fn drain_into(&self, into: &mut Vec<ReportOutcome>) {
        let mut outbox = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut outbox.outcomes, into);
        outbox.watched = !into.is_empty();
    }

    /// The actor's latest record.
    pub(crate) fn record(&self) -> Arc<Record> {
        self.record
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Actor only: counts tokens an upstream reported.
    pub(crate) fn add_tokens(&self, at: Instant, tokens: u64) {
        self.tokens.add(at, tokens);
    }

    /// Actor only: refuses requests until `until`.
    pub(crate) fn cool_until(&self, until: Instant) {
        self.cooldown_until
            .store(self.since_origin(until).max(1), Ordering::Release);
    }

    /// Actor only: publishes what it learned.
    pub(crate) fn publish(&self, record: Record) {
        *self.record.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(record);
    }

    /// Everything at once, as of `now` (for `/model/info`, metrics and tests).
    pub(crate) fn view(&self, now: Instant) -> DeploymentView {
        let record = self.record();
        DeploymentView {
            spec: self.spec.clone(),
            in_flight: self.in_flight(),
            requests: self.requests.snapshot(now),
            tokens: self.tokens.snapshot(now),
            successes: record.successes,
            failures: record.failures,
            latency: record.latency.clone(),
            ttft: record.ttft.clone(),
            cooldown_until: self.cooling_until(now),
        }
    }
}

#[cfg(test)]
mod tests;
