use super::*;
use http::StatusCode;

#[test]
fn p2c_table() {
    let costs = [5.0, 1.0, 3.0];
    // (a, b, want)
    for (a, b, want) in [
        (0, 0, 1),
        (0, 1, 2),
        (1, 0, 1),
        (1, 1, 1),
        (2, 0, 2),
        (2, 1, 1),
    ] {
        assert_eq!(p2c(3, a, b, |i| costs[i]), want, "a={a} b={b}");
    }
    // Ties keep the first draw.
    assert_eq!(p2c(2, 1, 0, |_| 1.0), 1);
}

#[test]
fn peak_ewma_jumps_up_and_decays_down() {
    assert_eq!(peak_ewma(1.0, 200.0, Duration::ZERO), 200.0);
    assert_eq!(peak_ewma(200.0, 1.0, Duration::ZERO), 200.0);
    let after_decay = peak_ewma(200.0, 1.0, DECAY);
    let e = std::f64::consts::E;
    assert!((after_decay - (200.0 / e + (1.0 - 1.0 / e))).abs() < 1e-9);
    assert!(peak_ewma(200.0, 1.0, DECAY * 10) < 1.01);
}

fn eps(n: u16) -> Vec<Endpoint> {
    (0..n)
        .map(|i| Endpoint {
            addr: SocketAddr::from(([127, 0, 0, 1], 1000 + i)),
            pod: None,
            identity: None,
        })
        .collect()
}

fn balancer(policy: &Policy, n: u16) -> Balancer {
    Balancer::new(
        policy,
        &eps(n),
        &|e| Arc::new(EndpointStats::new(e.addr, None)),
        None,
    )
}

fn with_breaker(max_pct: u32) -> Policy {
    Policy {
        circuit_breaker: Some(CircuitBreaker {
            consecutive_failures: 2,
            base_ejection_time: Duration::from_secs(60),
            max_ejection_time: Duration::from_secs(60),
            max_ejected_percent: max_pct,
            success_rate: None,
        }),
        ..Policy::default()
    }
}

const FAIL: Outcome = Outcome::Status(StatusCode::SERVICE_UNAVAILABLE);
const OK: Outcome = Outcome::Status(StatusCode::OK);

#[test]
fn round_robin_cycles() {
    let policy = Policy {
        load_balancer: LoadBalancer::RoundRobin,
        ..Policy::default()
    };
    let b = balancer(&policy, 3);
    let picks: Vec<u16> = (0..6).map(|_| b.pick().unwrap().addr.port()).collect();
    assert_eq!(picks, [1000, 1001, 1002, 1000, 1001, 1002]);
    assert_eq!(
        balancer(&policy, 0).pick().err(),
        Some(PickError::NoEndpoints)
    );
}

#[test]
fn ewma_avoids_a_slow_endpoint() {
    let b = balancer(&Policy::default(), 3);
    // Endpoint 0 has been slow (200 ms), the others fast (1 ms).
    b.endpoints()[0].observe(Instant::now(), Duration::from_millis(200));
    for e in &b.endpoints()[1..] {
        e.observe(Instant::now(), Duration::from_millis(1));
    }
    let slow = (0..3000)
        .filter(|_| b.pick().unwrap().addr.port() == 1000)
        .count();
    assert_eq!(
        slow, 0,
        "P2C never prefers the slow endpoint when two fast ones exist"
    );
}

#[test]
fn stats_survive_a_rebuild_and_in_flight_is_tracked() {
    let first = balancer(&Policy::default(), 2);
    let guard = first.endpoints()[0].start();
    let again = Balancer::new(
        &Policy::default(),
        &eps(3),
        &|ep| {
            let known = first.endpoints().iter().find(|e| e.addr == ep.addr);
            known
                .cloned()
                .unwrap_or_else(|| Arc::new(EndpointStats::new(ep.addr, None)))
        },
        Some(first.budget.clone()),
    );
    assert_eq!(again.endpoints()[0].in_flight(), 1);
    assert!(Arc::ptr_eq(&again.budget, &first.budget));
    drop(guard);
    assert_eq!(again.endpoints()[0].in_flight(), 0);
    assert_eq!(again.endpoints()[2].in_flight(), 0);
}

#[test]
fn ejected_endpoints_are_skipped_within_the_cap() {
    let b = balancer(&with_breaker(50), 4);
    let e0 = b.endpoints()[0].clone();
    assert_eq!(b.record(&e0, FAIL), Change::None);
    assert!(matches!(b.record(&e0, FAIL), Change::Ejected(_)));
    assert!(e0.is_ejected());
    assert!(
        (0..500).all(|_| b.pick().unwrap().addr != e0.addr),
        "an ejected endpoint gets no traffic"
    );
    let e1 = b.endpoints()[1].clone();
    b.record(&e1, FAIL);
    assert!(
        matches!(b.record(&e1, FAIL), Change::Ejected(_)),
        "2 of 4 = 50 %"
    );
    let e2 = b.endpoints()[2].clone();
    b.record(&e2, FAIL);
    assert_eq!(
        b.record(&e2, FAIL),
        Change::None,
        "a third would exceed 50 %"
    );
    assert_eq!(b.ejected(), 2);
    // Successes keep endpoints in service.
    assert_eq!(b.record(&b.endpoints()[3].clone(), OK), Change::None);
}

#[test]
fn all_ejected_still_tries_the_least_bad() {
    let b = balancer(&with_breaker(100), 2);
    for e in b.endpoints().to_vec() {
        b.record(&e, FAIL);
        assert!(matches!(b.record(&e, FAIL), Change::Ejected(_)));
    }
    assert_eq!(b.ejected(), 2);
    assert!(
        b.pick().is_ok(),
        "fails open to the endpoint whose ejection ends first"
    );
}

#[test]
fn probe_after_ejection_restores() {
    let policy = Policy {
        circuit_breaker: Some(CircuitBreaker {
            base_ejection_time: Duration::from_millis(1),
            max_ejection_time: Duration::from_millis(1),
            ..with_breaker(50).circuit_breaker.unwrap()
        }),
        ..Policy::default()
    };
    let b = balancer(&policy, 2);
    let e0 = b.endpoints()[0].clone();
    b.record(&e0, FAIL);
    b.record(&e0, FAIL);
    assert!(e0.is_ejected());
    std::thread::sleep(Duration::from_millis(5));
    let probe = b.pick().unwrap().clone();
    assert_eq!(
        probe.addr, e0.addr,
        "the next request after the ejection is the probe"
    );
    assert_ne!(b.pick().unwrap().addr, e0.addr, "only one probe at a time");
    assert_eq!(b.record(&e0, OK), Change::Restored);
    assert!(!e0.is_ejected());
}

#[test]
fn max_connections_per_endpoint() {
    let policy = Policy {
        limits: Limits {
            max_connections: Some(1),
            ..Limits::default()
        },
        ..Policy::default()
    };
    let b = balancer(&policy, 2);
    let g1 = b.pick().unwrap().start();
    let g2 = b.pick().unwrap().start();
    assert_ne!(
        b.endpoints()[0].in_flight(),
        2,
        "the second request went to the free endpoint"
    );
    assert_eq!(b.pick().err(), Some(PickError::MaxConnections));
    drop(g1);
    assert!(b.pick().is_ok(), "recovers when a request finishes");
    drop(g2);
}

#[tokio::test]
async fn max_requests_with_bounded_pending() {
    let policy = Policy {
        limits: Limits {
            max_requests: Some(1),
            max_pending_requests: Some(1),
            ..Limits::default()
        },
        ..Policy::default()
    };
    let b = Arc::new(balancer(&policy, 1));
    let first = b.admit().await.unwrap();
    let b2 = b.clone();
    let waiter = tokio::spawn(async move { b2.admit().await.map(|p| p.is_some()) });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        b.admit().await.err(),
        Some(Shed::MaxPendingRequests),
        "one waits, the next is shed"
    );
    drop(first);
    assert_eq!(
        waiter.await.unwrap(),
        Ok(true),
        "the waiting request gets the freed slot"
    );
    assert!(b.admit().await.is_ok(), "recovers");
}
