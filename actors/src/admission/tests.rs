//! Admission alone, and under many threads: limits never exceeded, slots never leaked.

use std::sync::atomic::AtomicU32;
use std::sync::Barrier;
use std::thread;

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::reservation::{Outcome, ReportOutcome};
use crate::settings::Strategy;

fn admission(clock: &ManualClock, edit: impl FnOnce(&mut DeploymentSpec)) -> Arc<Admission> {
    let mut spec = DeploymentSpec::new("a", "g", "openai/g");
    edit(&mut spec);
    let latency = LatencyConfig::for_strategy(&Strategy::SimpleShuffle);
    Arc::new(Admission::new(Arc::new(spec), latency, clock.now()))
}

#[test]
fn checks_cooldown_limits_and_parallelism_in_that_order() {
    let clock = ManualClock::new();
    let now = clock.now();
    let a = admission(&clock, |s| {
        s.rpm = Some(2);
        s.tpm = Some(100);
        s.max_parallel_requests = Some(1);
    });
    assert!(a.admits(now, 10));
    assert_eq!(a.refusal(now, 10), None);
    assert!(!a.admits(now, 101));
    assert_eq!(a.refusal(now, 101), Some(Refusal::AtLimit(WINDOW)));
    assert_eq!(a.reserve(now, 101), Err(Refusal::AtLimit(WINDOW)));

    a.reserve(now, 10).unwrap();
    assert!(!a.admits(now, 10));
    assert_eq!(a.refusal(now, 10), Some(Refusal::Busy));
    assert_eq!(a.reserve(now, 10), Err(Refusal::Busy));
    a.release();
    assert_eq!(
        a.view(now).rpm_used(now),
        1.0,
        "the Busy refusal took its rpm unit back"
    );

    a.reserve(now, 10).unwrap();
    a.release();
    // rpm 2 used: refused for rpm, with the wait until the two leave the minute, though a slot
    // is free.
    assert_eq!(a.refusal(now, 10), Some(Refusal::AtLimit(WINDOW)));
    assert_eq!(a.reserve(now, 10), Err(Refusal::AtLimit(WINDOW)));

    let b = admission(&clock, |s| s.tpm = Some(100));
    b.add_tokens(now, 95);
    assert_eq!(b.reserve(now, 5), Ok(()));
    assert!(matches!(b.reserve(now, 6), Err(Refusal::AtLimit(_))));

    let until = now + Duration::from_secs(5);
    b.cool_until(until);
    assert_eq!(b.refusal(now, 1), Some(Refusal::Cooling(until)));
    assert_eq!(b.reserve(now, 1), Err(Refusal::Cooling(until)));
    assert_eq!(b.view(now).cooldown_until, Some(until));
    assert_eq!(b.refusal(until, 1), None, "cooldown over at `until`");
    assert_eq!(b.view(until).cooldown_until, None);
}

#[test]
fn tokens_slide_out_of_the_minute() {
    let clock = ManualClock::new();
    let a = admission(&clock, |s| s.tpm = Some(1000));
    a.add_tokens(clock.now(), 600);
    clock.advance(Duration::from_secs(30));
    a.add_tokens(clock.now(), 300);
    assert_eq!(a.tpm_used(clock.now()), 900);
    assert!(!a.admits(clock.now(), 101));
    clock.advance(Duration::from_secs(30));
    assert_eq!(a.tpm_used(clock.now()), 300, "the first 600 left at 60 s");
    clock.advance(Duration::from_secs(90));
    assert_eq!(a.tpm_used(clock.now()), 0);
    assert!(a.admits(clock.now(), 1000));
}

/// Threads that reserve as fast as they can against one deployment, each holding its slot for
/// a moment; returns (admitted, most slots ever held at once as seen from outside).
fn hammer(a: &Admission, clock: &ManualClock, threads: usize, tries: usize) -> (u64, u32) {
    let admitted = AtomicU64::new(0);
    let holding = AtomicU32::new(0);
    let most_held = AtomicU32::new(0);
    thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for _ in 0..tries {
                    if a.reserve(clock.now(), 1).is_ok() {
                        admitted.fetch_add(1, Ordering::Relaxed);
                        let held = holding.fetch_add(1, Ordering::AcqRel) + 1;
                        most_held.fetch_max(held, Ordering::AcqRel);
                        thread::yield_now();
                        holding.fetch_sub(1, Ordering::AcqRel);
                        a.release();
                    }
                }
            });
        }
    });
    (
        admitted.load(Ordering::Relaxed),
        most_held.load(Ordering::Relaxed),
    )
}

#[test]
fn concurrent_reservations_never_exceed_rpm_or_max_parallel() {
    const RPM: u64 = 500;
    const MAX_PARALLEL: u32 = 3;
    let clock = ManualClock::new();
    let a = admission(&clock, |s| {
        s.rpm = Some(RPM);
        s.max_parallel_requests = Some(MAX_PARALLEL);
    });
    // 8 threads x 400 tries = 3200 attempts for 500 units, all in the same second.
    let (admitted, most_held) = hammer(&a, &clock, 8, 400);
    assert!(admitted <= RPM, "{admitted} admitted over rpm {RPM}");
    assert!(most_held <= MAX_PARALLEL, "{most_held} held at once");
    assert_eq!(a.in_flight(), 0, "every slot came back");
    assert_eq!(
        a.requests.total(clock.now()),
        admitted,
        "refusals took their units back"
    );
    // Whatever was spuriously refused under the race is still there to take, one at a time.
    let mut rest = 0;
    while a.reserve(clock.now(), 1).is_ok() {
        a.release();
        rest += 1;
    }
    assert_eq!(admitted + rest, RPM, "exactly rpm in the minute");
}

#[test]
fn concurrent_reservations_respect_the_sliding_minute() {
    const RPM: u64 = 120;
    const THREADS: usize = 6;
    let clock = ManualClock::new();
    let a = admission(&clock, |s| s.rpm = Some(RPM));
    // Each second, every thread tries 40 reservations (240 a second for rpm 120), then the clock
    // moves on; over 150 s the window fills, slides and expires many times.
    let seconds: usize = 150;
    let per_second: Vec<AtomicU64> = (0..seconds).map(|_| AtomicU64::new(0)).collect();
    let barrier = Barrier::new(THREADS);
    thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for counter in &per_second {
                    for _ in 0..40 {
                        if a.reserve(clock.now(), 1).is_ok() {
                            counter.fetch_add(1, Ordering::Relaxed);
                            a.release();
                        }
                    }
                    // Everyone is done with this second; one thread moves the clock, and nobody
                    // starts the next second before it has.
                    if barrier.wait().is_leader() {
                        clock.advance(Duration::from_secs(1));
                    }
                    barrier.wait();
                }
            });
        }
    });
    let counts: Vec<u64> = per_second
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    for end in 0..seconds {
        let minute: u64 = counts[end.saturating_sub(59)..=end].iter().sum();
        assert!(minute <= RPM, "{minute} in the minute ending at {end} s");
    }
    // The whole budget is used: the first second takes all of it, and each time the minute
    // slides past a full second the same amount comes back.
    assert_eq!(counts[0], RPM);
    assert_eq!(counts[60], RPM);
    assert_eq!(counts[120], RPM);
    assert!(counts
        .iter()
        .enumerate()
        .all(|(s, c)| s % 60 == 0 || *c == 0));
}

#[test]
fn cancelled_and_finished_reservations_free_slots_at_once() {
    let clock = ManualClock::new();
    let a = admission(&clock, |s| s.max_parallel_requests = Some(2));
    a.reserve(clock.now(), 0).unwrap();
    a.reserve(clock.now(), 0).unwrap();
    assert_eq!(a.reserve(clock.now(), 0), Err(Refusal::Busy));
    a.release();
    assert_eq!(a.reserve(clock.now(), 0), Ok(()));
    a.release();
    a.release();
    a.release();
    assert_eq!(a.in_flight(), 0, "an extra release never underflows");
    assert_eq!(a.view(clock.now()).rpm_used(clock.now()), 3.0);
}

#[test]
fn posting_wakes_the_actor_only_when_it_is_not_looking() {
    let clock = ManualClock::new();
    let a = admission(&clock, |_| {});
    let report = ReportOutcome {
        outcome: Outcome::Cancelled,
        at: clock.now(),
    };
    assert!(a.post(report), "an idle actor is woken");
    assert!(!a.post(report), "a wake-up is on its way");
    assert!(!a.post(report));
    let mut batch = Vec::new();
    a.drain_into(&mut batch);
    assert_eq!(batch, vec![report; 3], "one wake-up, every outcome");
    // It found some, so it looks again later: posts meanwhile send nothing.
    assert!(!a.post(report));
    batch.clear();
    a.drain_into(&mut batch);
    assert_eq!(batch, vec![report]);
    // Nothing came since: it stops looking, and the next post wakes it.
    batch.clear();
    a.drain_into(&mut batch);
    assert!(batch.is_empty());
    assert!(a.post(report));
}
