//! The router's hot path, with its baselines measured in the same run (as pingora's
//! `pingora-limits/benches/benchmark.rs` does):
//!
//! - `baseline/dashmap_get`: one `DashMap` read, the cost of a shared-map lookup;
//! - `baseline/actix_same_thread` and `baseline/actix_cross_thread`: an empty message round trip
//!   to an actor on this thread, and to one on another Arbiter (where the router's actors run:
//!   what a pick cost while it was a message);
//! - `baseline/actix_do_send_cross_thread`: one fire-and-forget message to an actor on another
//!   Arbiter, the one message a request still sends (its outcome);
//! - `execute/<strategy>/<n>`: one request through `Router::execute` with an attempt that
//!   succeeds at once: resolve, pick + reserve on this thread (strategy over the group's table
//!   and the deployments' atomics) → closure → `succeed` (slot back, `ReportOutcome` sent to the
//!   Deployment actor), for groups of 2, 10 and 100;
//! - `pick/<n>`: the same pick as a `Pick` message round trip to the group's actor, the
//!   reservation reported at once (the message path, kept for callers holding `Router::group`);
//! - `strategy/<name>/<n>`: each strategy function alone over n candidates (latency-based ranks
//!   the means the Deployment actors publish; averaging the samples is the actor's work).
//!
//! After criterion's own report, a table of each result as a multiple of the baselines.
//! `cargo bench -p llm-proxy-actors --bench router` (add `-- --quick` for a short run).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use criterion::{BenchmarkId, Criterion};
use dashmap::DashMap;
use llm_proxy_actors::strategy::{
    cost_based, latency_based, least_busy, simple_shuffle, usage_based, Candidate,
};
use llm_proxy_actors::{
    AttemptError, DeploymentSpec, ErrorClass, Pick, RouteRequest, Router, RouterSettings, Strategy,
    SystemClock,
};

const SIZES: [usize; 3] = [2, 10, 100];

#[derive(Debug)]
struct Never;

impl AttemptError for Never {
    fn class(&self) -> ErrorClass {
        ErrorClass::ServerError
    }
    fn status(&self) -> u16 {
        500
    }
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

struct Ping;

impl Message for Ping {
    type Result = u64;
}

struct Echo;

impl Actor for Echo {
    type Context = Context<Self>;
}

impl Handler<Ping> for Echo {
    type Result = u64;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> u64 {
        1
    }
}

fn specs(n: usize) -> Vec<DeploymentSpec> {
    (0..n)
        .map(|i| {
            let mut spec = DeploymentSpec::new(&format!("dep-{i}"), "gpt-4o", "openai/gpt-4o");
            spec.rpm = Some(1_000_000_000);
            spec
        })
        .collect()
}

fn settings(strategy: Strategy) -> RouterSettings {
    RouterSettings {
        strategy,
        ..RouterSettings::default()
    }
}

fn baselines(c: &mut Criterion, sys: &SystemRunner) {
    let mut g = c.benchmark_group("baseline");
    let board: DashMap<Arc<str>, Arc<u64>> = (0..100)
        .map(|i| (Arc::from(format!("dep-{i}").as_str()), Arc::new(i)))
        .collect();
    let key: Arc<str> = Arc::from("dep-42");
    g.bench_function("dashmap_get", |b| {
        b.iter(|| board.get(black_box(&key)).map(|v| *v.value().clone()))
    });
    let local = sys.block_on(async { Echo.start() });
    g.bench_function("actix_same_thread", |b| {
        b.iter_custom(|iters| {
            let addr = local.clone();
            sys.block_on(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(addr.send(Ping).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    let arbiter = sys.block_on(async { Arbiter::new() });
    let remote = sys.block_on(async { Echo::start_in_arbiter(&arbiter.handle(), |_| Echo) });
    g.bench_function("actix_cross_thread", |b| {
        b.iter_custom(|iters| {
            let addr = remote.clone();
            sys.block_on(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(addr.send(Ping).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("actix_do_send_cross_thread", |b| {
        b.iter_custom(|iters| {
            let addr = remote.clone();
            sys.block_on(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    addr.do_send(Ping);
                }
                let elapsed = start.elapsed();
                // Let the receiver drain before the next sample.
                addr.send(Ping).await.unwrap();
                elapsed
            })
        })
    });
    g.finish();
    arbiter.stop();
}

fn execute(c: &mut Criterion, sys: &SystemRunner) {
    let strategies = [
        ("simple-shuffle", Strategy::SimpleShuffle),
        ("least-busy", Strategy::LeastBusy),
        ("latency-based", Strategy::latency_based_default()),
    ];
    let mut g = c.benchmark_group("execute");
    for (name, strategy) in strategies {
        for n in SIZES {
            let router = sys.block_on(async {
                Router::start_seeded(
                    specs(n),
                    settings(strategy.clone()),
                    Arc::new(SystemClock),
                    7,
                )
            });
            let request = RouteRequest {
                model: "gpt-4o".to_owned(),
                input_tokens: 250,
                ..RouteRequest::default()
            };
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter_custom(|iters| {
                    let (router, request) = (router.clone(), request.clone());
                    sys.block_on(async move {
                        let start = Instant::now();
                        for _ in 0..iters {
                            let routed = router
                                .execute(&request, |attempt| async move {
                                    attempt.reservation.succeed(250, 40);
                                    Ok::<_, Never>(())
                                })
                                .await;
                            black_box(routed.is_ok());
                        }
                        start.elapsed()
                    })
                })
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("pick");
    for n in SIZES {
        let router = sys.block_on(async {
            Router::start_seeded(
                specs(n),
                settings(Strategy::SimpleShuffle),
                Arc::new(SystemClock),
                7,
            )
        });
        let group = router.group("gpt-4o").unwrap();
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_custom(|iters| {
                let group = group.clone();
                sys.block_on(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let reservation = group
                            .send(Pick {
                                exclude: Vec::new(),
                                input_tokens: 250,
                                stream: false,
                                pinned: None,
                            })
                            .await
                            .unwrap()
                            .unwrap();
                        reservation.succeed(250, 40);
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
}

fn strategies(c: &mut Criterion) {
    let mut g = c.benchmark_group("strategy");
    for n in SIZES {
        let specs: Vec<DeploymentSpec> = (0..n)
            .map(|i| {
                let mut spec = DeploymentSpec::new(&format!("dep-{i}"), "g", "openai/m");
                spec.input_cost_per_token = Some(1e-6 * (1 + i % 3) as f64);
                spec.output_cost_per_token = Some(2e-6);
                spec
            })
            .collect();
        let candidates: Vec<Candidate<'_>> = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| Candidate {
                spec,
                weight: 1.0,
                in_flight: (i % 5) as u32,
                tpm_used: (i * 100) as u64,
                latency: Some(0.01 * (1 + i % 7) as f64),
                ttft: None,
            })
            .collect();
        let weights: Vec<f64> = candidates.iter().map(|c| c.weight).collect();
        let table = simple_shuffle::WeightTable::build(&specs.iter().collect::<Vec<_>>());
        let mut rng = fastrand::Rng::with_seed(3);
        g.bench_with_input(BenchmarkId::new("simple_shuffle_table", n), &n, |b, _| {
            b.iter(|| table.pick_all(&mut rng))
        });
        g.bench_with_input(BenchmarkId::new("simple_shuffle_subset", n), &n, |b, _| {
            b.iter(|| simple_shuffle::pick(black_box(&weights), &mut rng))
        });
        g.bench_with_input(BenchmarkId::new("least_busy", n), &n, |b, _| {
            b.iter(|| least_busy::pick(black_box(&candidates), &mut rng))
        });
        g.bench_with_input(BenchmarkId::new("usage_based", n), &n, |b, _| {
            b.iter(|| usage_based::pick(black_box(&candidates), &mut rng))
        });
        g.bench_with_input(BenchmarkId::new("latency_based", n), &n, |b, _| {
            b.iter(|| latency_based::pick(black_box(&candidates), 0.0, &mut rng))
        });
        g.bench_with_input(BenchmarkId::new("cost_based", n), &n, |b, _| {
            b.iter(|| cost_based::pick(black_box(&candidates), &mut rng))
        });
    }
    g.finish();
}

/// Where criterion writes (set explicitly so the ratio table can read it back).
fn output_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("criterion")
}

/// The mean point estimate (ns) criterion saved for one benchmark id.
fn mean_ns(dir: &std::path::Path, id: &str) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join(id).join("new/estimates.json")).ok()?;
    let mean = &text[text.find("\"mean\"")?..];
    let value = &mean[mean.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = value.find([',', '}'])?;
    value[..end].trim().parse().ok()
}

fn ratio_table(dir: &std::path::Path) {
    let dashmap = mean_ns(dir, "baseline/dashmap_get");
    let same = mean_ns(dir, "baseline/actix_same_thread");
    let cross = mean_ns(dir, "baseline/actix_cross_thread");
    let do_send = mean_ns(dir, "baseline/actix_do_send_cross_thread");
    let mut ids: Vec<String> = Vec::new();
    for name in ["simple-shuffle", "least-busy", "latency-based"] {
        ids.extend(SIZES.iter().map(|n| format!("execute/{name}/{n}")));
    }
    ids.extend(SIZES.iter().map(|n| format!("pick/{n}")));
    for name in [
        "simple_shuffle_table",
        "simple_shuffle_subset",
        "least_busy",
        "usage_based",
        "latency_based",
        "cost_based",
    ] {
        ids.extend(SIZES.iter().map(|n| format!("strategy/{name}/{n}")));
    }
    let fmt = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{:.2} µs", v / 1000.0));
    let times = |v: Option<f64>, base: Option<f64>| match (v, base) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.1}×", v / b),
        _ => "—".to_owned(),
    };
    println!();
    println!("Ratios against the baselines of this run (mean times):");
    println!();
    println!(
        "| benchmark | mean | × DashMap get ({}) | × actix same-thread round trip ({}) | × actix cross-thread round trip ({}) | × actix cross-thread do_send ({}) |",
        fmt(dashmap),
        fmt(same),
        fmt(cross),
        fmt(do_send)
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for id in ids {
        let v = mean_ns(dir, &id);
        if v.is_none() {
            continue;
        }
        println!(
            "| {id} | {} | {} | {} | {} | {} |",
            fmt(v),
            times(v, dashmap),
            times(v, same),
            times(v, cross),
            times(v, do_send)
        );
    }
}

fn main() {
    let dir = output_dir();
    let mut c = Criterion::default()
        .output_directory(&dir)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let sys = System::new();
    baselines(&mut c, &sys);
    execute(&mut c, &sys);
    strategies(&mut c);
    c.final_summary();
    ratio_table(&dir);
}
