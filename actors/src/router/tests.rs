//! The Router through real actors: picks, reservations, retries, fallbacks, cooldown and limits,
//! with a manual clock (backoffs cost nothing) and scripted attempt closures.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::ManualClock;
use crate::settings::{Alias, Strategy};

#[derive(Clone, Copy, Debug, PartialEq)]
struct TestError {
    class: ErrorClass,
    status: u16,
    retry_after: Option<Duration>,
}

impl AttemptError for TestError {
    fn class(&self) -> ErrorClass {
        self.class
    }
    fn status(&self) -> u16 {
        self.status
    }
    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

fn err(class: ErrorClass, status: u16) -> TestError {
    TestError {
        class,
        status,
        retry_after: None,
    }
}

fn spec(id: &str, group: &str) -> DeploymentSpec {
    DeploymentSpec::new(id, group, &format!("openai/{group}"))
}

fn entry(key: &str, targets: &[&str]) -> (String, Vec<String>) {
    (
        key.to_owned(),
        targets.iter().map(|t| (*t).to_owned()).collect(),
    )
}

fn start(specs: Vec<DeploymentSpec>, settings: RouterSettings) -> (Router, Arc<ManualClock>) {
    let clock = ManualClock::new();
    let router = Router::start_seeded(specs, settings, clock.clone(), 17);
    (router, clock)
}

fn request(model: &str) -> RouteRequest {
    RouteRequest {
        model: model.to_owned(),
        ..RouteRequest::default()
    }
}

/// Waits (in real time, bounded) until outcomes sent to the arbiter thread are recorded. Slots
/// come back synchronously and a failure's cooldown is in force when `execute` returns; only
/// what the actor learns from successes (tokens, samples, counts) arrives later.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        actix::clock::sleep(Duration::from_millis(2)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// What each attempt saw, in order.
type Log = Rc<RefCell<Vec<(String, String)>>>;

/// Runs `execute` with answers taken in order from `script` (Ok(()) once it runs out), keyed by
/// nothing but the attempt order; records (group, deployment) per attempt.
async fn run_script(
    router: &Router,
    request: &RouteRequest,
    script: Vec<Result<(), TestError>>,
) -> (
    Result<Routed<()>, RouteError<TestError>>,
    Vec<(String, String)>,
) {
    let log: Log = Rc::default();
    let script = Rc::new(RefCell::new(VecDeque::from(script)));
    let result = router
        .execute(request, |attempt: Attempt| {
            let log = log.clone();
            let script = script.clone();
            async move {
                log.borrow_mut()
                    .push((attempt.model_group.clone(), attempt.deployment.to_string()));
                let answer = script.borrow_mut().pop_front().unwrap_or(Ok(()));
                if answer.is_ok() {
                    attempt.reservation.succeed(10, 5);
                }
                answer
            }
        })
        .await;
    let seen = log.borrow().clone();
    (result, seen)
}

fn groups(log: &[(String, String)]) -> Vec<&str> {
    log.iter().map(|(group, _)| group.as_str()).collect()
}

#[actix::test]
async fn pick_reserve_and_report_through_actors() {
    let specs = vec![DeploymentSpec {
        tpm: Some(1000),
        ..spec("a", "g")
    }];
    let (router, clock) = start(specs, RouterSettings::default());
    let group = router.group("g").unwrap();
    let pick = Pick {
        exclude: Vec::new(),
        input_tokens: 10,
        stream: false,
        pinned: None,
    };
    let reservation = group.send(pick.clone()).await.unwrap().unwrap();
    assert_eq!(&**reservation.deployment(), "a");
    assert_eq!(router.view("a").unwrap().in_flight, 1);
    reservation.succeed(100, 50);
    assert_eq!(
        router.view("a").unwrap().in_flight,
        0,
        "the slot is back at once"
    );
    eventually("outcome recorded", || {
        router.view("a").unwrap().tpm_used(clock.now()) == 150.0
    })
    .await;

    // A reservation dropped without an outcome frees its slot as Cancelled, synchronously.
    let reservation = group.send(pick).await.unwrap().unwrap();
    assert_eq!(router.view("a").unwrap().in_flight, 1);
    drop(reservation);
    assert_eq!(router.view("a").unwrap().in_flight, 0);
    let view = router.view("a").unwrap();
    assert_eq!(view.successes.estimate(clock.now()), 1.0);
    assert_eq!(view.failures.estimate(clock.now()), 0.0);
}

#[actix::test]
async fn rate_limit_then_ok_lands_on_another_deployment() {
    let (router, clock) = start(
        vec![spec("a", "g"), spec("b", "g")],
        RouterSettings::default(),
    );
    let (result, log) = run_script(
        &router,
        &request("g"),
        vec![Err(err(ErrorClass::RateLimit, 429))],
    )
    .await;
    let routed = result.unwrap();
    assert_eq!(log.len(), 2);
    assert_ne!(
        log[0].1, log[1].1,
        "the retry avoids the deployment that failed"
    );
    assert_eq!(routed.deployment.as_ref(), log[1].1);
    assert_eq!(routed.attempted_retries, 1);
    assert_eq!(routed.attempted_fallbacks, 0);
    assert!(
        clock.slept().is_empty(),
        "no backoff when another deployment is free"
    );
    // v2: a 429 in a group of two cools the deployment down, before `execute` moved on.
    let failed = log[0].1.clone();
    assert!(router.view(&failed).unwrap().cooldown_until.is_some());
}

#[actix::test]
async fn lone_deployment_retries_with_backoff() {
    let (router, clock) = start(vec![spec("a", "g")], RouterSettings::default());
    let retry_after = Some(Duration::from_secs(3));
    let script = vec![
        Err(err(ErrorClass::ServerError, 500)),
        Err(TestError {
            retry_after,
            ..err(ErrorClass::RateLimit, 429)
        }),
    ];
    let (result, log) = run_script(&router, &request("g"), script).await;
    assert!(result.is_ok());
    assert_eq!(log.len(), 3);
    let slept = clock.slept();
    assert_eq!(slept.len(), 2);
    assert!(
        slept[0] >= Duration::from_millis(500) && slept[0] < Duration::from_millis(551),
        "{slept:?}"
    );
    assert_eq!(
        slept[1],
        Duration::from_secs(3),
        "upstream Retry-After honoured"
    );
}

#[actix::test]
async fn non_retryable_errors_are_not_retried() {
    let (router, _clock) = start(
        vec![spec("a", "g"), spec("b", "g")],
        RouterSettings::default(),
    );
    let (result, log) = run_script(
        &router,
        &request("g"),
        vec![Err(err(ErrorClass::BadRequest, 400))],
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(log.len(), 1);
    assert!(matches!(error.kind, RouteErrorKind::Upstream(e) if e.status == 400));
    assert_eq!(error.attempted_retries, 0);
}

#[actix::test]
async fn retry_budget_comes_from_the_request_first() {
    let settings = RouterSettings {
        num_retries: 5,
        ..RouterSettings::default()
    };
    let (router, _clock) = start(vec![spec("a", "g")], settings);
    let failing = vec![Err(err(ErrorClass::ServerError, 500)); 10];
    let mut req = request("g");
    req.num_retries = Some(1);
    let (result, log) = run_script(&router, &req, failing.clone()).await;
    let error = result.unwrap_err();
    assert_eq!(log.len(), 2);
    assert_eq!((error.attempted_retries, error.max_retries), (1, 1));
    let (result, log) = run_script(&router, &request("g"), failing).await;
    assert_eq!(log.len(), 6);
    assert_eq!(result.unwrap_err().attempted_retries, 5);
}

#[actix::test]
async fn all_failing_walks_the_fallbacks_in_order() {
    let settings = RouterSettings {
        num_retries: 1,
        fallbacks: vec![entry("g", &["f1", "f2"])],
        ..RouterSettings::default()
    };
    let specs = vec![spec("g1", "g"), spec("f1a", "f1"), spec("f2a", "f2")];
    let (router, _clock) = start(specs, settings);
    let script = vec![Err(err(ErrorClass::ServerError, 500)); 4];
    let (result, log) = run_script(&router, &request("g"), script).await;
    let routed = result.unwrap();
    assert_eq!(groups(&log), vec!["g", "g", "f1", "f1", "f2"]);
    assert_eq!(routed.model_group, "f2");
    assert_eq!(routed.deployment.as_ref(), "f2a");
    assert_eq!(routed.attempted_fallbacks, 2);
    assert_eq!(routed.attempted_retries, 2);
}

#[actix::test]
async fn when_everything_fails_the_original_error_is_returned() {
    let settings = RouterSettings {
        num_retries: 0,
        fallbacks: vec![entry("g", &["f1", "missing"]), entry("f1", &["f2", "g"])],
        ..RouterSettings::default()
    };
    let specs = vec![spec("g1", "g"), spec("f1a", "f1"), spec("f2a", "f2")];
    let (router, _clock) = start(specs, settings);
    let script = vec![
        Err(err(ErrorClass::ServerError, 500)),
        Err(err(ErrorClass::RateLimit, 429)),
        Err(err(ErrorClass::Timeout, 408)),
    ];
    let (result, log) = run_script(&router, &request("g"), script).await;
    let error = result.unwrap_err();
    // f1's own fallbacks (f2) run before the rest of g's list; g is never revisited.
    assert_eq!(groups(&log), vec!["g", "f1", "f2"]);
    assert!(matches!(error.kind, RouteErrorKind::Upstream(e) if e.status == 500));
    assert_eq!(error.model_group, "g");
    assert_eq!(error.fallbacks_tried, vec!["f1", "f2"]);
    assert_eq!(error.attempted_fallbacks, 2);
    let statuses: Vec<u16> = error.failures.iter().map(|(_, e)| e.status).collect();
    assert_eq!(statuses, vec![429, 408]);
    assert_eq!(error.last_deployment.as_deref(), Some("f2a"));
}

#[actix::test]
async fn max_fallbacks_bounds_the_walk() {
    let settings = RouterSettings {
        num_retries: 0,
        max_fallbacks: 1,
        fallbacks: vec![entry("g", &["f1", "f2"])],
        ..RouterSettings::default()
    };
    let specs = vec![spec("g1", "g"), spec("f1a", "f1"), spec("f2a", "f2")];
    let (router, _clock) = start(specs, settings);
    let (result, log) = run_script(
        &router,
        &request("g"),
        vec![Err(err(ErrorClass::ServerError, 500)); 3],
    )
    .await;
    assert_eq!(groups(&log), vec!["g", "f1"]);
    assert_eq!(result.unwrap_err().fallbacks_tried, vec!["f1"]);
}

#[actix::test]
async fn context_window_errors_go_to_context_window_fallbacks() {
    let settings = RouterSettings {
        fallbacks: vec![entry("g", &["other"])],
        context_window_fallbacks: vec![entry("g", &["big"])],
        ..RouterSettings::default()
    };
    let specs = vec![
        spec("g1", "g"),
        spec("g2", "g"),
        spec("o", "other"),
        spec("b", "big"),
    ];
    let (router, _clock) = start(specs, settings);
    let script = vec![Err(err(ErrorClass::ContextWindowExceeded, 400))];
    let (result, log) = run_script(&router, &request("g"), script).await;
    assert_eq!(
        groups(&log),
        vec!["g", "big"],
        "no retry, straight to the context-window list"
    );
    assert_eq!(result.unwrap().attempted_fallbacks, 1);

    // A content-policy error with no content-policy list uses the generic fallbacks.
    let script = vec![Err(err(ErrorClass::ContentPolicy, 400))];
    let (result, log) = run_script(&router, &request("g"), script).await;
    assert_eq!(groups(&log), vec!["g", "other"]);
    assert!(result.is_ok());
}

#[actix::test]
async fn client_fallbacks_replace_configured_ones_and_can_be_disabled() {
    let settings = RouterSettings {
        num_retries: 0,
        fallbacks: vec![entry("g", &["f1"])],
        ..RouterSettings::default()
    };
    let specs = vec![spec("g1", "g"), spec("f1a", "f1"), spec("f2a", "f2")];
    let (router, _clock) = start(specs, settings);
    let mut req = request("g");
    req.fallbacks = Some(vec!["f2".to_owned()]);
    let (result, log) =
        run_script(&router, &req, vec![Err(err(ErrorClass::ServerError, 500))]).await;
    assert_eq!(groups(&log), vec!["g", "f2"]);
    assert!(result.is_ok());

    let mut req = request("g");
    req.disable_fallbacks = true;
    let (result, log) =
        run_script(&router, &req, vec![Err(err(ErrorClass::ServerError, 500))]).await;
    assert_eq!(groups(&log), vec!["g"]);
    assert!(result.unwrap_err().fallbacks_tried.is_empty());
}

#[actix::test]
async fn fallbacks_are_looked_up_under_the_alias_first() {
    let settings = RouterSettings {
        num_retries: 0,
        fallbacks: vec![entry("g", &["f1"]), entry("nice", &["f2"])],
        aliases: vec![Alias {
            name: "nice".to_owned(),
            target: "g".to_owned(),
            hidden: false,
        }],
        ..RouterSettings::default()
    };
    let specs = vec![spec("g1", "g"), spec("f1a", "f1"), spec("f2a", "f2")];
    let (router, _clock) = start(specs, settings);
    let (_, log) = run_script(
        &router,
        &request("nice"),
        vec![Err(err(ErrorClass::ServerError, 500))],
    )
    .await;
    assert_eq!(groups(&log), vec!["g", "f2"]);
}

#[actix::test]
async fn cooldown_after_failures_then_recovery_when_time_passes() {
    let settings = RouterSettings {
        num_retries: 0,
        allowed_fails: Some(1),
        ..RouterSettings::default()
    };
    let (router, clock) = start(vec![spec("a", "g")], settings);
    for _ in 0..2 {
        let (result, _) = run_script(
            &router,
            &request("g"),
            vec![Err(err(ErrorClass::ServerError, 500))],
        )
        .await;
        assert!(result.is_err());
    }
    assert!(router.view("a").unwrap().cooldown_until.is_some());

    let (result, log) = run_script(&router, &request("g"), vec![]).await;
    assert!(log.is_empty(), "nothing attempted while cooling down");
    let RouteErrorKind::NoDeployments(none) = result.unwrap_err().kind else {
        panic!("expected NoDeployments");
    };
    assert_eq!(none.cooling, vec![Arc::<str>::from("a")]);
    assert!(!none.at_limit);
    assert_eq!(none.retry_after, Duration::from_secs(5));
    assert!(
        none.message.starts_with(
            "No deployments available for selected model, Try again in 5 seconds. Passed model=g."
        ),
        "{}",
        none.message
    );

    clock.advance(Duration::from_secs(2));
    let (result, _) = run_script(&router, &request("g"), vec![]).await;
    assert!(
        matches!(result.unwrap_err().kind, RouteErrorKind::NoDeployments(n) if n.retry_after == Duration::from_secs(3))
    );

    clock.advance(Duration::from_secs(3));
    let (result, log) = run_script(&router, &request("g"), vec![]).await;
    assert!(result.is_ok());
    assert_eq!(log.len(), 1);
}

#[actix::test]
async fn rpm_limit_gives_no_deployments_with_retry_after() {
    let (router, clock) = start(
        vec![DeploymentSpec {
            rpm: Some(2),
            ..spec("a", "g")
        }],
        RouterSettings::default(),
    );
    for _ in 0..2 {
        let (result, _) = run_script(&router, &request("g"), vec![]).await;
        assert!(result.is_ok(), "the rpm-th request in a minute is allowed");
    }
    let (result, log) = run_script(&router, &request("g"), vec![]).await;
    assert!(log.is_empty());
    let RouteErrorKind::NoDeployments(none) = result.unwrap_err().kind else {
        panic!("expected NoDeployments");
    };
    assert!(none.at_limit);
    assert!(none.cooling.is_empty());
    // Two requests at the start of the minute: one more fits when they leave it, 60 s later.
    assert_eq!(none.retry_after, Duration::from_secs(60));
    clock.advance(none.retry_after);
    let (result, _) = run_script(&router, &request("g"), vec![]).await;
    assert!(result.is_ok());
}

#[actix::test]
async fn no_deployments_in_the_original_group_falls_back() {
    let settings = RouterSettings {
        fallbacks: vec![entry("g", &["f1"])],
        ..RouterSettings::default()
    };
    let specs = vec![
        DeploymentSpec {
            rpm: Some(1),
            ..spec("a", "g")
        },
        spec("f1a", "f1"),
    ];
    let (router, _clock) = start(specs, settings);
    let (result, _) = run_script(&router, &request("g"), vec![]).await;
    assert_eq!(result.unwrap().model_group, "g");
    let (result, log) = run_script(&router, &request("g"), vec![]).await;
    assert_eq!(groups(&log), vec!["f1"]);
    assert_eq!(result.unwrap().attempted_fallbacks, 1);
    // The fallback fails too: its upstream error is shown, not the 429-style NoDeployments.
    let (result, _) = run_script(
        &router,
        &request("g"),
        vec![Err(err(ErrorClass::Auth, 401))],
    )
    .await;
    assert!(matches!(result.unwrap_err().kind, RouteErrorKind::Upstream(e) if e.status == 401));
}

#[actix::test]
async fn wildcard_attempts_get_the_rewritten_upstream_model() {
    let specs = vec![
        DeploymentSpec::new("any", "*", "openai/*"),
        DeploymentSpec::new("engine", "llmengine/*", "openai/*"),
        spec("plain", "gpt-4o"),
    ];
    let (router, _clock) = start(specs, RouterSettings::default());
    let seen: Rc<RefCell<Vec<Option<String>>>> = Rc::default();
    for model in ["claude-3", "llmengine/x", "gpt-4o"] {
        let seen = seen.clone();
        let result = router
            .execute(&request(model), move |attempt: Attempt| {
                seen.borrow_mut().push(attempt.upstream_model.clone());
                async { Ok::<_, TestError>(()) }
            })
            .await;
        assert!(result.is_ok());
    }
    let expected = vec![
        Some("openai/claude-3".to_owned()),
        Some("openai/x".to_owned()),
        None,
    ];
    assert_eq!(*seen.borrow(), expected);
}

#[actix::test]
async fn resolution_order_and_model_names() {
    let specs = vec![
        spec("id-1", "gpt-4o"),
        DeploymentSpec::new("id-2", "gpt-4o", "azure/gpt-4o-deploy"),
        DeploymentSpec::new("w1", "*", "*"),
        DeploymentSpec::new("w2", "openai/*", "openai/*"),
    ];
    let settings = RouterSettings {
        aliases: vec![
            Alias {
                name: "shown".to_owned(),
                target: "gpt-4o".to_owned(),
                hidden: false,
            },
            Alias {
                name: "secret".to_owned(),
                target: "gpt-4o".to_owned(),
                hidden: true,
            },
        ],
        ..RouterSettings::default()
    };
    let (router, _clock) = start(specs, settings);
    let group = |g: &str| {
        Some(Resolved {
            group: g.to_owned(),
            pinned: None,
        })
    };
    let pinned = |g: &str, id: &str| {
        Some(Resolved {
            group: g.to_owned(),
            pinned: Some(Arc::from(id)),
        })
    };
    assert_eq!(router.resolve("gpt-4o"), group("gpt-4o"));
    assert_eq!(router.resolve("shown"), group("gpt-4o"));
    assert_eq!(router.resolve("secret"), group("gpt-4o"));
    assert_eq!(router.resolve("id-2"), pinned("gpt-4o", "id-2"));
    assert_eq!(
        router.resolve("openai/gpt-3.5"),
        group("openai/*"),
        "the more specific pattern wins"
    );
    assert_eq!(router.resolve("mistral"), group("*"));
    assert_eq!(
        router.model_names(),
        vec!["shown", "gpt-4o", "*", "openai/*"]
    );

    // A litellm model name pins its deployment when no pattern catches it first.
    let (router, _clock) = start(
        vec![DeploymentSpec::new("id-2", "gpt-4o", "azure/gpt-4o-deploy")],
        RouterSettings::default(),
    );
    assert_eq!(
        router.resolve("azure/gpt-4o-deploy"),
        pinned("gpt-4o", "id-2")
    );
    assert_eq!(router.resolve("unknown"), None);
}

#[actix::test]
async fn a_pinned_deployment_is_the_only_one_tried() {
    let (router, _clock) = start(
        vec![spec("a", "g"), spec("b", "g")],
        RouterSettings::default(),
    );
    for _ in 0..20 {
        let (result, log) = run_script(&router, &request("b"), vec![]).await;
        assert_eq!(result.unwrap().deployment.as_ref(), "b");
        assert_eq!(log[0].1, "b");
    }
    let script = vec![Err(err(ErrorClass::ServerError, 500)); 3];
    let (result, log) = run_script(&router, &request("b"), script).await;
    assert!(log.iter().all(|(_, d)| d == "b"));
    assert_eq!(result.unwrap_err().attempted_retries, 2);
}

#[actix::test]
async fn unknown_model_is_reported_without_attempting() {
    let (router, _clock) = start(vec![spec("a", "g")], RouterSettings::default());
    let (result, log) = run_script(&router, &request("nope"), vec![]).await;
    assert!(log.is_empty());
    assert!(
        matches!(result.unwrap_err().kind, RouteErrorKind::NoDeployments(n) if n.model_group == "nope")
    );
}

#[actix::test]
async fn unreported_success_is_recorded_and_kept_clones_report_later() {
    let (router, clock) = start(vec![spec("a", "g")], RouterSettings::default());
    // The closure drops its Attempt and reports nothing: execute records a success.
    let result = router
        .execute(&request("g"), |_attempt: Attempt| async {
            Ok::<_, TestError>(())
        })
        .await;
    assert!(result.is_ok());
    assert_eq!(router.view("a").unwrap().in_flight, 0);
    eventually("success recorded", || {
        router.view("a").unwrap().successes.estimate(clock.now()) == 1.0
    })
    .await;

    // The closure keeps the reservation (a stream still running): nothing is reported until it
    // ends; dropping it unreported counts as Cancelled.
    let routed = router
        .execute(&request("g"), |attempt: Attempt| async move {
            Ok::<_, TestError>(attempt.reservation)
        })
        .await
        .unwrap();
    assert_eq!(router.view("a").unwrap().in_flight, 1);
    drop(routed);
    assert_eq!(router.view("a").unwrap().in_flight, 0);
    assert_eq!(
        router.view("a").unwrap().successes.estimate(clock.now()),
        1.0
    );
}

#[actix::test]
async fn order_tiers_and_least_busy_through_the_group() {
    let settings = RouterSettings {
        strategy: Strategy::LeastBusy,
        ..RouterSettings::default()
    };
    let specs = vec![
        DeploymentSpec {
            order: Some(2),
            ..spec("backup", "g")
        },
        DeploymentSpec {
            order: Some(1),
            ..spec("p1", "g")
        },
        DeploymentSpec {
            order: Some(1),
            ..spec("p2", "g")
        },
    ];
    let (router, _clock) = start(specs, settings);
    let group = router.group("g").unwrap();
    let pick = Pick {
        exclude: Vec::new(),
        input_tokens: 0,
        stream: false,
        pinned: None,
    };
    let first = group.send(pick.clone()).await.unwrap().unwrap();
    let first_id = first.deployment().clone();
    assert_eq!(router.view(&first_id).unwrap().in_flight, 1);
    let second = group.send(pick.clone()).await.unwrap().unwrap();
    let mut ids = [first_id.to_string(), second.deployment().to_string()];
    ids.sort();
    assert_eq!(
        ids,
        ["p1", "p2"],
        "least-busy spreads over the order-1 tier"
    );
    // Excluding both of the first tier falls through to the backup tier.
    let excluded = group
        .send(Pick {
            exclude: vec![Arc::from("p1"), Arc::from("p2")],
            ..pick
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(excluded.deployment().as_ref(), "backup");
}

#[actix::test]
async fn an_alias_may_target_a_name_a_wildcard_serves() {
    let settings = RouterSettings {
        aliases: vec![Alias {
            name: "fast".to_owned(),
            target: "openai/gpt-4o-mini".to_owned(),
            hidden: true,
        }],
        ..RouterSettings::default()
    };
    let (router, _clock) = start(
        vec![DeploymentSpec::new("w", "openai/*", "openai/*")],
        settings,
    );
    assert_eq!(
        router.resolve("fast"),
        Some(Resolved {
            group: "openai/*".to_owned(),
            pinned: None
        })
    );
    let routed = router
        .execute(&request("fast"), |attempt: Attempt| async move {
            Ok::<_, TestError>(attempt.upstream_model)
        })
        .await
        .unwrap();
    assert_eq!(routed.value.as_deref(), Some("openai/gpt-4o-mini"));
    assert!(
        router.model_names().iter().all(|name| name != "fast"),
        "hidden"
    );
}

#[actix::test]
async fn max_parallel_requests_is_enforced_by_the_deployment() {
    let specs = vec![
        DeploymentSpec {
            max_parallel_requests: Some(1),
            ..spec("a", "g")
        },
        DeploymentSpec {
            max_parallel_requests: Some(1),
            ..spec("b", "g")
        },
    ];
    let (router, _clock) = start(specs, RouterSettings::default());
    let group = router.group("g").unwrap();
    let pick = Pick {
        exclude: Vec::new(),
        input_tokens: 0,
        stream: false,
        pinned: None,
    };
    // Sent back to back: the second pick sees the first slot taken and moves on, the third
    // finds both busy.
    let picks = send_all(&group, &pick, 3).await;
    let granted: Vec<&Reservation> = picks.iter().filter_map(|p| p.as_ref().ok()).collect();
    assert_eq!(granted.len(), 2);
    assert_ne!(granted[0].deployment(), granted[1].deployment());
    let refused = picks.iter().find_map(|p| p.as_ref().err()).unwrap();
    assert!(refused.at_limit);
    assert_eq!(refused.retry_after, crate::view::BUSY_RETRY_AFTER);
}

/// Sends `count` picks without waiting for replies in between, then collects them.
async fn send_all(
    group: &Addr<ModelGroup>,
    pick: &Pick,
    count: usize,
) -> Vec<Result<Reservation, NoDeployments>> {
    let pending: Vec<_> = (0..count).map(|_| group.send(pick.clone())).collect();
    let mut results = Vec::new();
    for request in pending {
        results.push(request.await.unwrap());
    }
    results
}

#[test]
fn router_and_reservation_are_shareable_across_threads() {
    fn shareable<T: Send + Sync + Clone>() {}
    shareable::<Router>();
    shareable::<Reservation>();
}

#[actix::test]
async fn with_no_fallbacks_a_short_cooldown_is_waited_out() {
    let settings = RouterSettings {
        allowed_fails: Some(0),
        ..RouterSettings::default()
    };
    let (router, clock) = start(vec![spec("a", "g")], settings);
    let (result, log) = run_script(
        &router,
        &request("g"),
        vec![Err(err(ErrorClass::ServerError, 500))],
    )
    .await;
    let routed = result.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(
        routed.attempted_retries, 1,
        "the wait belongs to the retry it delayed"
    );
    let slept = clock.slept();
    assert_eq!(slept.len(), 2, "{slept:?}");
    assert_eq!(
        slept.iter().sum::<Duration>(),
        Duration::from_secs(5),
        "backoff, then the rest of the cooldown"
    );

    // With a fallback configured, the group is not waited for: the fallback runs at once.
    let settings = RouterSettings {
        allowed_fails: Some(0),
        fallbacks: vec![entry("g", &["f"])],
        ..RouterSettings::default()
    };
    let (router, clock) = start(vec![spec("a", "g"), spec("fa", "f")], settings);
    let (result, log) = run_script(
        &router,
        &request("g"),
        vec![Err(err(ErrorClass::ServerError, 500))],
    )
    .await;
    assert_eq!(groups(&log), vec!["g", "f"]);
    assert_eq!(result.unwrap().model_group, "f");
    assert_eq!(
        clock.slept().len(),
        1,
        "only the backoff before the retry pick"
    );
}

#[actix::test]
async fn a_cooldown_the_actor_decides_is_seen_by_pickers_on_every_thread() {
    let settings = RouterSettings {
        num_retries: 0,
        ..RouterSettings::default()
    };
    let (router, clock) = start(vec![spec("a", "g"), spec("b", "g")], settings);
    // A 429 on "a" (pinned): in a group of two, its actor cools it down for 5 s.
    let (result, _) = run_script(
        &router,
        &request("a"),
        vec![Err(err(ErrorClass::RateLimit, 429))],
    )
    .await;
    assert!(result.is_err());

    // Pickers on other threads (as the HTTP workers are) all avoid it.
    let picked: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let router = router.clone();
                scope.spawn(move || {
                    actix_rt::System::new().block_on(async move {
                        let mut picked = Vec::new();
                        for _ in 0..25 {
                            let routed = router
                                .execute(&request("g"), |attempt: Attempt| async move {
                                    Ok::<_, TestError>(attempt.deployment)
                                })
                                .await
                                .unwrap();
                            picked.push(routed.value.to_string());
                        }
                        picked
                    })
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap())
            .collect()
    });
    assert_eq!(picked.len(), 100);
    assert!(picked.iter().all(|id| id == "b"), "{picked:?}");
    // The Pick message sees it too.
    let pinned = Pick {
        exclude: Vec::new(),
        input_tokens: 0,
        stream: false,
        pinned: Some(Arc::from("a")),
    };
    let none = router.group("g").unwrap().send(pinned.clone()).await;
    assert_eq!(
        none.unwrap().unwrap_err().cooling,
        vec![Arc::<str>::from("a")]
    );

    // When the time is up it is back, with no message to the actor.
    clock.advance(Duration::from_secs(5));
    let back = router.group("g").unwrap().send(pinned).await.unwrap();
    assert_eq!(back.unwrap().deployment().as_ref(), "a");
}

#[actix::test]
async fn latency_based_ranks_streams_by_time_to_first_token() {
    let settings = RouterSettings {
        strategy: Strategy::latency_based_default(),
        ..RouterSettings::default()
    };
    let (router, clock) = start(vec![spec("a", "g"), spec("b", "g")], settings);
    let group = router.group("g").unwrap();
    let pick = |pinned: Option<&str>, stream: bool| Pick {
        exclude: Vec::new(),
        input_tokens: 0,
        stream,
        pinned: pinned.map(Arc::from),
    };
    // "a": 0.01 s per token but 0.9 s to the first; "b": 0.05 s per token, 0.1 s to the first.
    for (id, ttft, total) in [("a", 900, 1000), ("b", 100, 5000)] {
        let reservation = group.send(pick(Some(id), true)).await.unwrap().unwrap();
        clock.advance(Duration::from_millis(ttft));
        reservation.first_token();
        clock.advance(Duration::from_millis(total - ttft));
        reservation.succeed(10, 100);
        reservation.settle().await;
    }
    for _ in 0..20 {
        let plain = group.send(pick(None, false)).await.unwrap().unwrap();
        assert_eq!(plain.deployment().as_ref(), "a", "lowest latency per token");
        let stream = group.send(pick(None, true)).await.unwrap().unwrap();
        assert_eq!(
            stream.deployment().as_ref(),
            "b",
            "lowest time to first token"
        );
    }
}

#[actix::test]
async fn outcomes_posted_while_the_actor_collects_are_all_recorded() {
    // Only a post to an idle actor wakes it; the rest are collected by its timer. Were that
    // broken, the outcomes posted after its first drain would never be recorded.
    let (router, clock) = start(vec![spec("a", "g")], RouterSettings::default());
    let group = router.group("g").unwrap();
    let pick = Pick {
        exclude: Vec::new(),
        input_tokens: 0,
        stream: false,
        pinned: None,
    };
    for _ in 0..200 {
        let reservation = group.send(pick.clone()).await.unwrap().unwrap();
        reservation.succeed(1, 1);
    }
    eventually("all 200 recorded", || {
        let view = router.view("a").unwrap();
        view.successes.estimate(clock.now()) == 200.0 && view.tpm_used(clock.now()) == 400.0
    })
    .await;
}
