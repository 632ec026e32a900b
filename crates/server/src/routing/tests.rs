//! Routing behaviour with an injected clock and a seeded random source: each strategy's
//! order, the circuit breaker's cooldown, probes and backoff, and 429 handling.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ewma::{PeakEwma, SuccessRate};
use super::*;
use crate::config::{Config, Env, Model};

const SEC: Duration = Duration::from_secs(1);

/// A model `m` priced 1 + 2 USD per 1M tokens, with one deployment per `(provider, weight,
/// extra)`; `extra` is appended to the deployment's table (e.g. its own prices).
fn model(deployments: &[(&str, u32, &str)]) -> Arc<Model> {
    let mut toml = String::new();
    for (name, _, _) in deployments {
        if !toml.contains(&format!("name = \"{name}\"")) {
            toml +=
                &format!("[[providers]]\nname = \"{name}\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9\"\n\n");
        }
    }
    toml += "[[models]]\nid = \"m\"\ncontext_window = 1000\nmax_output_tokens = 100\n";
    toml += "input_price = \"1\"\noutput_price = \"2\"\n\n";
    for (name, weight, extra) in deployments {
        toml += &format!(
            "[[models.deployments]]\nprovider = \"{name}\"\nupstream_model = \"up\"\nweight = {weight}\n{extra}\n\n"
        );
    }
    let config = Config::from_toml(&toml, &Env::default()).unwrap();
    config.model("m").unwrap().clone()
}

fn names(order: &[&Deployment]) -> Vec<String> {
    order.iter().map(|d| d.provider.name.clone()).collect()
}

fn order(routing: &Routing, model: &Model, strategy: Strategy, now: Instant) -> Vec<String> {
    names(&routing.order(model, strategy, now).unwrap())
}

fn succeed(routing: &Routing, d: &Deployment, ttfb: Duration, now: Instant) {
    routing.begin(d, now).unwrap().succeeded(ttfb, now);
}

fn fail(routing: &Routing, d: &Deployment, failure: Failure, now: Instant) {
    routing.begin(d, now).unwrap().failed(failure, now);
}

/// Cools `d` with three server errors at `now`.
fn cool(routing: &Routing, d: &Deployment, now: Instant) {
    for _ in 0..FAILURE_THRESHOLD {
        fail(routing, d, Failure::ServerError, now);
    }
}

fn in_flight(routing: &Routing, d: &Deployment) -> u32 {
    slots::find(&routing.slots.load(), d).map_or(0, |slot| slot.lock().in_flight)
}

#[test]
fn routing_is_shared_between_threads() {
    fn shared<T: Send + Sync + Default>() {}
    shared::<Routing>();
}

#[test]
fn cost_puts_the_cheapest_first_and_keeps_config_order_on_ties() {
    let m = model(&[
        ("pricey", 1, "input_price = \"3\"\noutput_price = \"3\""),
        ("list", 1, ""),
        ("cheap", 1, "input_price = \"0.5\"\noutput_price = \"0.5\""),
        ("same", 1, "input_price = \"2\"\noutput_price = \"1\""),
    ]);
    let routing = Routing::with_seed(1);
    assert_eq!(order(&routing, &m, Strategy::Cost, Instant::now()), ["cheap", "list", "same", "pricey"]);
}

#[test]
fn availability_puts_the_best_success_rate_first() {
    let m = model(&[("a", 1, ""), ("b", 1, ""), ("c", 1, "")]);
    let routing = Routing::with_seed(1);
    let t = Instant::now();
    assert_eq!(order(&routing, &m, Strategy::Availability, t), ["a", "b", "c"]);
    let [a, b, c] = [&m.deployments[0], &m.deployments[1], &m.deployments[2]];
    fail(&routing, a, Failure::ServerError, t);
    succeed(&routing, a, SEC, t);
    fail(&routing, b, Failure::Timeout, t);
    fail(&routing, b, Failure::Timeout, t);
    succeed(&routing, c, SEC, t);
    assert_eq!(order(&routing, &m, Strategy::Availability, t), ["c", "a", "b"]);
}

#[test]
fn success_rate_drifts_back_toward_one_while_idle() {
    let t = Instant::now();
    let mut rate = SuccessRate::default();
    rate.record(false, t);
    assert!((rate.at(t) - 0.9).abs() < 1e-9);
    assert!(rate.at(t + 60 * SEC) > 0.96 && rate.at(t + 600 * SEC) > 0.9999);
}

#[test]
fn peak_ewma_jumps_up_at_once_and_decays_down_with_time() {
    let t = Instant::now();
    let mut ewma = PeakEwma::default();
    assert_eq!(ewma.at(t), None);
    ewma.record(Duration::from_millis(100), t);
    ewma.record(Duration::from_millis(500), t + SEC);
    assert!((ewma.at(t + SEC).unwrap() - 0.5).abs() < 1e-9);
    // A lower sample 10 s (one time constant) later: 0.5·e⁻¹ + 0.1·(1 − e⁻¹).
    ewma.record(Duration::from_millis(100), t + 11 * SEC);
    let expected = 0.5 * (-1f64).exp() + 0.1 * (1.0 - (-1f64).exp());
    assert!((ewma.at(t + 11 * SEC).unwrap() - expected).abs() < 1e-9);
    // Idle, it decays toward zero so the deployment is measured again.
    assert!(ewma.at(t + 41 * SEC).unwrap() < expected / 10.0);
}

#[test]
fn latency_prefers_the_fastest_and_orders_the_rest_by_score() {
    let m = model(&[("slow", 1, ""), ("fast", 1, ""), ("mid", 1, "")]);
    let routing = Routing::with_seed(7);
    let t = Instant::now();
    for (d, ms) in m.deployments.iter().zip([300, 100, 200]) {
        succeed(&routing, d, Duration::from_millis(ms), t);
    }
    let mut firsts = std::collections::HashMap::<String, u32>::new();
    for _ in 0..300 {
        let order = order(&routing, &m, Strategy::Latency, t);
        match order[0].as_str() {
            "fast" => assert_eq!(order, ["fast", "mid", "slow"]),
            "mid" => assert_eq!(order, ["mid", "fast", "slow"]),
            other => panic!("{other} first: the slowest never wins a pair"),
        }
        *firsts.entry(order[0].clone()).or_default() += 1;
    }
    // Two random candidates of three: "fast" is in 2 of the 3 pairs, "mid" wins the third.
    assert!((170..=230).contains(&firsts["fast"]), "{firsts:?}");
    assert!((70..=130).contains(&firsts["mid"]), "{firsts:?}");
}

#[test]
fn latency_alone_or_unmeasured() {
    let t = Instant::now();
    let routing = Routing::with_seed(3);
    let one = model(&[("only", 1, "")]);
    assert_eq!(order(&routing, &one, Strategy::Latency, t), ["only"]);

    // An unmeasured deployment counts as the fastest measured one, so it gets tried.
    let m = model(&[("known", 1, ""), ("new", 1, "")]);
    succeed(&routing, &m.deployments[0], Duration::from_millis(100), t);
    let new_first = (0..200).filter(|_| order(&routing, &m, Strategy::Latency, t)[0] == "new").count();
    assert!((70..=130).contains(&new_first), "{new_first}");
}

#[test]
fn latency_moves_load_off_the_fastest_when_it_is_busy() {
    let m = model(&[("fast", 1, ""), ("slower", 1, "")]);
    let routing = Routing::with_seed(11);
    let t = Instant::now();
    succeed(&routing, &m.deployments[0], Duration::from_millis(100), t);
    succeed(&routing, &m.deployments[1], Duration::from_millis(230), t);
    assert_eq!(order(&routing, &m, Strategy::Latency, t), ["fast", "slower"]);

    // Each request sent where the order says, none finished yet: the fast one takes
    // requests until 100 ms × (in flight + 1) exceeds 230 ms, then the slower one shares.
    let mut attempts = Vec::new();
    let mut sent = [0u32; 2];
    for _ in 0..10 {
        let first = routing.order(&m, Strategy::Latency, t).unwrap()[0];
        sent[usize::from(first.provider.name == "slower")] += 1;
        attempts.push(routing.begin(first, t).unwrap());
    }
    assert_eq!(sent, [7, 3], "the fast one is not sent everything");
    assert_eq!(in_flight(&routing, &m.deployments[0]), 7);
    drop(attempts);
    assert_eq!(in_flight(&routing, &m.deployments[0]), 0);
}

#[test]
fn round_robin_follows_the_weights() {
    let m = model(&[("light", 1, ""), ("heavy", 3, "")]);
    let routing = Routing::with_seed(1);
    let t = Instant::now();
    let mut light = 0;
    for _ in 0..1000 {
        let order = order(&routing, &m, Strategy::RoundRobin, t);
        assert_eq!(order.len(), 2);
        light += usize::from(order[0] == "light");
    }
    let share = light as f64 / 1000.0;
    assert!((share - 0.25).abs() <= 0.05 * 0.25, "light share {share}");
}

#[test]
fn round_robin_is_smooth_puts_the_rest_in_config_order_and_skips_cooling() {
    let m = model(&[("a", 1, ""), ("b", 1, ""), ("c", 1, "")]);
    let routing = Routing::with_seed(1);
    let t = Instant::now();
    let rr = |now| order(&routing, &m, Strategy::RoundRobin, now);
    assert_eq!([rr(t), rr(t), rr(t)], [["a", "b", "c"], ["b", "a", "c"], ["c", "a", "b"]]);
    cool(&routing, &m.deployments[1], t);
    let firsts: Vec<String> = (0..4).map(|_| rr(t)[0].clone()).collect();
    assert_eq!(firsts, ["a", "c", "a", "c"]);
    assert_eq!(rr(t), ["a", "c"]);
}

#[test]
fn three_failures_cool_a_deployment_out_of_every_order() {
    let m = model(&[("a", 1, "input_price = \"0.1\""), ("b", 1, "")]);
    let routing = Routing::with_seed(1);
    let t = Instant::now();
    let a = &m.deployments[0];
    fail(&routing, a, Failure::Connect, t);
    fail(&routing, a, Failure::Timeout, t);
    assert_eq!(order(&routing, &m, Strategy::Cost, t), ["a", "b"]);
    fail(&routing, a, Failure::ServerError, t);
    for strategy in [Strategy::Cost, Strategy::Latency, Strategy::Availability, Strategy::RoundRobin] {
        assert_eq!(order(&routing, &m, strategy, t + 4 * SEC), ["b"], "{strategy:?}");
    }
    assert!(routing.begin(a, t + 4 * SEC).is_none(), "a cooling deployment admits no attempt");
    // After 5 s it is half-open: back in the order for its probe.
    assert_eq!(order(&routing, &m, Strategy::Cost, t + 5 * SEC), ["a", "b"]);
}

#[test]
fn any_success_resets_consecutive_failures() {
    let m = model(&[("a", 1, "")]);
    let routing = Routing::with_seed(1);
    let t = Instant::now();
    let a = &m.deployments[0];
    fail(&routing, a, Failure::ServerError, t);
    fail(&routing, a, Failure::ServerError, t);
    succeed(&routing, a, SEC, t);
    fail(&routing, a, Failure::ServerError, t);
    fail(&routing, a, Failure::ServerError, t);
    assert_eq!(order(&routing, &m, Strategy::Cost, t), ["a"]);
}

#[test]
fn all_cooling_reports_when_the_first_may_be_probed() {
    let m = model(&[("a", 1, ""), ("b", 1, "")]);
    let routing = Routing::with_seed(1);
    let t = Instant::now();
    cool(&routing, &m.deployments[0], t);
    cool(&routing, &m.deployments[1], t + 2 * SEC);
    let err = routing.order(&m, Strategy::Cost, t + 3 * SEC).unwrap_err();
    assert_eq!(err, AllCooling { retry_after: 2 * SEC });
    assert_eq!(order(&routing, &m, Strategy::Cost, t + 5 * SEC), ["a"]);
}

#[test]
fn half_open_admits_a_single_probe() {
    let m = model(&[("a", 1, "")]);
    let routing = Routing::with_seed(1);
    let t = Instant::now();
    let a = &m.deployments[0];
    cool(&routing, a, t);
    let open = t + 5 * SEC;
    let probe = routing.begin(a, open).unwrap();
    assert!(probe.is_probe());
    assert!(routing.begin(a, open).is_none(), "a second attempt while the probe is out");
    let err = routing.order(&m, Strategy::Cost, open).unwrap_err();
    assert_eq!(err.retry_after, PROBE_IN_FLIGHT_RETRY);

    // A probe dropped without a verdict gives its slot back.
    drop(probe);
    assert_eq!(order(&routing, &m, Strategy::Cost, open), ["a"]);
    let probe = routing.begin(a, open).unwrap();
    assert!(probe.is_probe());

    // Its success closes the circuit: any number of attempts, three failures to cool again.
    probe.succeeded(SEC, open);
    let attempts: Vec<_> = (0..3).map(|_| routing.begin(a, open).unwrap()).collect();
    assert!(attempts.iter().all(|attempt| !attempt.is_probe()));
    drop(attempts);
    fail(&routing, a, Failure::ServerError, open);
    fail(&routing, a, Failure::ServerError, open);
    assert_eq!(order(&routing, &m, Strategy::Cost, open), ["a"]);
    fail(&routing, a, Failure::ServerError, open);
    let err = routing.order(&m, Strategy::Cost, open).unwrap_err();
    assert_eq!(err.retry_after, BASE_BACKOFF, "back to the first backoff after a recovery");
}

#[test]
fn failed_probes_double_the_cooldown_up_to_five_minutes() {
    let m = model(&[("a", 1, "")]);
    let routing = Routing::with_seed(1);
    let a = &m.deployments[0];
    let mut now = Instant::now();
    cool(&routing, a, now);
    let mut cooldowns = Vec::new();
    for _ in 0..8 {
        let err = routing.order(&m, Strategy::Cost, now).unwrap_err();
        cooldowns.push(err.retry_after.as_secs());
        now += err.retry_after;
        let probe = routing.begin(a, now).unwrap();
        assert!(probe.is_probe());
        probe.failed(Failure::Timeout, now);
    }
    assert_eq!(cooldowns, [5, 10, 20, 40, 80, 160, 300, 300]);
    assert_eq!(MAX_COOLDOWN.as_secs(), 300);
}

#[test]
fn rate_limits_cool_only_that_deployment_for_retry_after() {
    let m = model(&[("a", 1, ""), ("b", 1, "")]);
    let routing = Routing::with_seed(1);
    let t = Instant::now();
    let [a, b] = [&m.deployments[0], &m.deployments[1]];
    fail(&routing, a, Failure::RateLimited { retry_after: Some(30 * SEC) }, t);
    assert_eq!(order(&routing, &m, Strategy::Cost, t + 29 * SEC), ["b"]);
    assert_eq!(order(&routing, &m, Strategy::Cost, t + 30 * SEC), ["a", "b"]);

    // Without Retry-After: 5 s. The backoff does not grow: a failed probe then cools for 5 s.
    let probe = routing.begin(a, t + 30 * SEC).unwrap();
    probe.failed(Failure::RateLimited { retry_after: None }, t + 30 * SEC);
    assert_eq!(routing.order(&m, Strategy::Cost, t + 30 * SEC).map(|o| names(&o)), Ok(vec!["b".to_owned()]));
    let probe = routing.begin(a, t + 35 * SEC).unwrap();
    assert!(probe.is_probe());
    probe.failed(Failure::ServerError, t + 35 * SEC);
    fail(&routing, b, Failure::RateLimited { retry_after: Some(3600 * SEC) }, t + 35 * SEC);
    let err = routing.order(&m, Strategy::Cost, t + 35 * SEC).unwrap_err();
    assert_eq!(err.retry_after, BASE_BACKOFF);

    // A Retry-After longer than five minutes is capped.
    assert_eq!(order(&routing, &m, Strategy::Cost, t + 40 * SEC), ["a"]);
    assert!(routing.begin(b, t + 35 * SEC + MAX_COOLDOWN - SEC).is_none());
    assert!(routing.begin(b, t + 35 * SEC + MAX_COOLDOWN).is_some());
}

#[test]
fn a_dropped_attempt_is_neutral() {
    let m = model(&[("a", 1, ""), ("b", 1, "")]);
    let routing = Routing::with_seed(1);
    let t = Instant::now();
    let a = &m.deployments[0];
    fail(&routing, a, Failure::ServerError, t);
    fail(&routing, a, Failure::ServerError, t);
    for _ in 0..5 {
        drop(routing.begin(a, t).unwrap());
    }
    assert_eq!(in_flight(&routing, a), 0);
    let stats = slots::find(&routing.slots.load(), a).unwrap().lock().clone();
    assert!((stats.success.at(t) - 0.81).abs() < 1e-9, "only the two failures counted");
    assert_eq!(order(&routing, &m, Strategy::Cost, t), ["a", "b"]);
    fail(&routing, a, Failure::ServerError, t);
    assert_eq!(order(&routing, &m, Strategy::Cost, t), ["b"], "drops neither reset nor add failures");
}

#[test]
fn state_survives_a_config_reload_and_stale_entries_are_forgotten() {
    let routing = Routing::with_seed(1);
    let t = Instant::now();
    let before = model(&[("a", 1, ""), ("b", 1, "")]);
    cool(&routing, &before.deployments[0], t);
    let reloaded = model(&[("b", 1, ""), ("a", 1, "")]);
    assert_eq!(order(&routing, &reloaded, Strategy::Cost, t + SEC), ["b"]);
    assert_eq!(routing.slots.len(), 1);

    // An hour idle, a pair is dropped when another is first used.
    let later = t + slots::FORGET_AFTER + SEC;
    let other = model(&[("c", 1, "")]);
    succeed(&routing, &other.deployments[0], SEC, later);
    assert_eq!(routing.slots.len(), 1);
    assert_eq!(order(&routing, &reloaded, Strategy::Cost, later), ["b", "a"]);
}
