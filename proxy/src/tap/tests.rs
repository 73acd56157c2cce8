use super::*;

fn event() -> Event {
    Event {
        direction: "outbound",
        method: "GET".into(),
        authority: "web.shop".into(),
        path: "/api/items?x=1".into(),
        route: "web/ab-test".into(),
        backend: "shop/web-v2:80".into(),
        status: 503,
        latency_ms: 1.5,
        tls_peer: Some(Arc::from("spiffe://cluster.local/ns/shop/sa/web")),
    }
}

#[test]
fn filter_table() {
    for (query, want) in [
        ("", true),
        ("direction=outbound", true),
        ("direction=inbound", false),
        ("method=get", true),
        ("method=POST", false),
        ("authority=WEB.shop", true),
        ("authority=web", false),
        ("path=/api", true),
        ("path=/api/items%3Fx%3D1", true),
        ("path=/other", false),
        ("route=web/ab-test", true),
        ("route=web/canary", false),
        ("backend=shop/web-v2:80", true),
        ("backend=shop/web-v1:80", false),
        ("status=503", true),
        ("status=5xx", true),
        ("status=500", false),
        ("status=2xx", false),
        ("method=GET&status=5xx&path=/api", true),
        ("method=GET&status=2xx", false),
    ] {
        let f = Filter::from_query(query).unwrap();
        assert_eq!(f.matches(&event()), want, "{query}");
    }
}

#[test]
fn bad_filters_say_why() {
    for (query, want) in [
        ("verb=GET", FilterError::Unknown("verb".into())),
        ("status=600", FilterError::Status("600".into())),
        ("status=6xx", FilterError::Status("6xx".into())),
        ("status=abc", FilterError::Status("abc".into())),
        ("direction=up", FilterError::Direction("up".into())),
    ] {
        assert_eq!(Filter::from_query(query), Err(want), "{query}");
    }
}

#[test]
fn lines_are_json_objects() {
    let line = serde_json::to_value(Line::Event(Arc::new(event()))).unwrap();
    assert_eq!(line["method"], "GET");
    assert_eq!(line["status"], 503);
    assert_eq!(line["tls_peer"], "spiffe://cluster.local/ns/shop/sa/web");
    let mut plain = event();
    plain.tls_peer = None;
    let line = serde_json::to_value(Line::Event(Arc::new(plain))).unwrap();
    assert!(line.get("tls_peer").is_none(), "{line}");
    let lost = serde_json::to_value(Line::Lost { lost: 7 }).unwrap();
    assert_eq!(lost, serde_json::json!({"lost": 7}));
}

#[tokio::test]
async fn a_slow_tap_loses_events_and_is_told_how_many() {
    let taps = Arc::new(Taps::default());
    assert!(!taps.active(), "nobody taps yet");
    let mut tap = taps.open().unwrap();
    assert!(taps.active());
    // The request path never waits: more events than the backlog.
    for _ in 0..BACKLOG + 10 {
        taps.publish(event());
    }
    let all = Filter::default();
    assert_eq!(tap.next(&all).await, Some(Line::Lost { lost: 10 }));
    assert!(matches!(tap.next(&all).await, Some(Line::Event(_))));
    drop(tap);
    assert!(!taps.active(), "a closed tap costs requests nothing again");
}

#[test]
fn at_most_max_taps_are_open() {
    let taps = Arc::new(Taps::default());
    let open: Vec<Tap> = (0..MAX_TAPS).map(|_| taps.open().unwrap()).collect();
    assert!(taps.open().is_none());
    drop(open);
    assert!(taps.open().is_some());
}
