//! Time, injected. The router reads the real clock in exactly one place ([`SystemClock`]); every
//! window, cooldown, latency sample and backoff takes its time from a [`Clock`], so tests drive
//! time by hand with [`ManualClock`] and never sleep.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A boxed sleep, as returned by [`Clock::sleep`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The router's source of time.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;

    /// Waits `duration` (the retry backoff). The default is a real timer on the caller's actix
    /// runtime; a fake clock advances itself instead, so backoffs cost nothing in tests.
    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(actix::clock::sleep(duration))
    }
}

/// The real clock: the only code in this crate that reads `Instant::now`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to: [`ManualClock::advance`], or [`Clock::sleep`], which
/// advances it by the requested duration and returns at once. Shared through `Arc`, so a test keeps
/// one handle and gives the router another.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    state: Mutex<ManualState>,
}

#[derive(Debug, Default)]
struct ManualState {
    elapsed: Duration,
    slept: Vec<Duration>,
}

impl ManualClock {
    /// A clock frozen at the present moment.
    pub fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            start: SystemClock.now(),
            state: Mutex::new(ManualState::default()),
        })
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.lock().elapsed += by;
    }

    /// Every duration passed to [`Clock::sleep`] so far, in order (to assert on backoffs).
    pub fn slept(&self) -> Vec<Duration> {
        self.lock().slept.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.lock().elapsed
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let mut state = self.lock();
        state.elapsed += duration;
        state.slept.push(duration);
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new();
        let t0 = clock.now();
        assert_eq!(clock.now(), t0);
        clock.advance(Duration::from_secs(3));
        assert_eq!(clock.now(), t0 + Duration::from_secs(3));
    }

    #[actix::test]
    async fn manual_sleep_advances_and_records() {
        let clock = ManualClock::new();
        let t0 = clock.now();
        clock.sleep(Duration::from_millis(1500)).await;
        assert_eq!(clock.now(), t0 + Duration::from_millis(1500));
        assert_eq!(clock.slept(), vec![Duration::from_millis(1500)]);
    }
}
