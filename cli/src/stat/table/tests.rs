use super::*;

fn p(text: &str) -> Vec<Sample> {
    prom::parse(text)
}

#[test]
fn increase_follows_prometheus_reset_rules() {
    for (prev, cur, want) in [
        (10.0, 15.0, 5.0),
        (10.0, 10.0, 0.0),
        (0.0, 7.0, 7.0),
        // Went down: the proxy restarted and counted 3 since.
        (10.0, 3.0, 3.0),
        (10.0, 0.0, 0.0),
    ] {
        assert_eq!(increase(prev, cur), want, "{prev} -> {cur}");
    }
}

const START_A: &str = "process_start_time_seconds 1000\n";
const START_B: &str = "process_start_time_seconds 2000\n";

#[test]
fn deltas_of_one_proxy() {
    let prev = p(&format!(
        "{START_A}strait_requests_total{{direction=\"outbound\",code=\"200\"}} 100\nstrait_endpoints{{state=\"ejected\"}} 1\n"
    ));
    let cur = p(&format!(
        "{START_A}strait_requests_total{{direction=\"outbound\",code=\"200\"}} 130\nstrait_requests_total{{direction=\"outbound\",code=\"503\"}} 4\nstrait_endpoints{{state=\"ejected\"}} 2\n"
    ));
    let d = deltas(&prev, &cur);
    let value = |code: &str| {
        d.iter()
            .find(|s| s.name == "strait_requests_total" && s.label("code") == code)
            .map(|s| s.value)
    };
    assert_eq!(value("200"), Some(30.0), "counter increase");
    assert_eq!(value("503"), Some(4.0), "a new series counts from zero");
    let ejected = d.iter().find(|s| s.name == "strait_endpoints");
    assert_eq!(
        ejected.map(|s| s.value),
        Some(2.0),
        "a gauge keeps its value"
    );
}

#[test]
fn a_restarted_proxy_counts_from_zero_even_when_its_counters_grew_past_the_old_value() {
    let prev = p(&format!(
        "{START_A}strait_requests_total{{direction=\"outbound\",code=\"200\"}} 100\n"
    ));
    // Restarted, then served 150: a plain difference would say 50.
    let cur = p(&format!(
        "{START_B}strait_requests_total{{direction=\"outbound\",code=\"200\"}} 150\n"
    ));
    let d = deltas(&prev, &cur);
    assert_eq!(d.iter().map(|s| s.value).sum::<f64>(), 150.0 + 2000.0);
    let req = d.iter().find(|s| s.name == "strait_requests_total");
    assert_eq!(req.map(|s| s.value), Some(150.0));
}

const PREV: &str = r#"process_start_time_seconds 1000
strait_requests_total{direction="outbound",service="s/web:80",route="web/ab",backend="s/v1:80",code="200"} 100
strait_requests_total{direction="outbound",service="s/web:80",route="web/ab",backend="s/v1:80",code="503"} 0
strait_request_duration_seconds_bucket{direction="outbound",service="s/web:80",route="web/ab",backend="s/v1:80",le="0.01"} 100
strait_request_duration_seconds_bucket{direction="outbound",service="s/web:80",route="web/ab",backend="s/v1:80",le="0.1"} 100
strait_request_duration_seconds_bucket{direction="outbound",service="s/web:80",route="web/ab",backend="s/v1:80",le="+Inf"} 100
strait_retry_attempts_total{backend="s/v1:80"} 5
strait_requests_total{direction="inbound",service="",route="",backend="127.0.0.1:8080",code="200"} 900
"#;
const CUR: &str = r#"process_start_time_seconds 1000
strait_requests_total{direction="outbound",service="s/web:80",route="web/ab",backend="s/v1:80",code="200"} 280
strait_requests_total{direction="outbound",service="s/web:80",route="web/ab",backend="s/v1:80",code="503"} 20
strait_requests_total{direction="inbound",service="",route="",backend="127.0.0.1:8080",code="200"} 999
strait_request_duration_seconds_bucket{direction="outbound",service="s/web:80",route="web/ab",backend="s/v1:80",le="0.01"} 200
strait_request_duration_seconds_bucket{direction="outbound",service="s/web:80",route="web/ab",backend="s/v1:80",le="0.1"} 300
strait_request_duration_seconds_bucket{direction="outbound",service="s/web:80",route="web/ab",backend="s/v1:80",le="+Inf"} 300
strait_retry_attempts_total{backend="s/v1:80"} 25
strait_endpoints{backend="s/v1:80",state="ejected"} 1
strait_endpoints{backend="s/v1:80",state="ready"} 2
"#;

#[test]
fn rows_from_two_scrapes_of_one_proxy() {
    let rows = rows(&deltas(&p(PREV), &p(CUR)), 2.0, Direction::All);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let inbound = &rows[0];
    assert_eq!(
        (inbound.direction.as_str(), inbound.backend.as_str()),
        ("inbound", "127.0.0.1:8080")
    );
    assert_eq!(inbound.rps, 49.5, "99 requests in 2 s");
    assert_eq!((inbound.retries, inbound.ejected), (0.0, 0.0));
    let r = &rows[1];
    assert_eq!(
        (r.service.as_str(), r.route.as_str(), r.backend.as_str()),
        ("s/web:80", "web/ab", "s/v1:80")
    );
    assert_eq!(r.rps, 100.0, "200 requests in 2 s");
    assert_eq!(r.success, Some(0.9));
    // 100 of the 200 new observations ≤ 10 ms, the rest ≤ 100 ms.
    assert_eq!(r.p50, Some(0.01));
    assert!((r.p99.unwrap() - 0.0982).abs() < 1e-9, "{:?}", r.p99);
    assert_eq!(r.retries, 10.0);
    assert_eq!(r.ejected, 1.0);
}

#[test]
fn direction_filter() {
    let d = deltas(&p(PREV), &p(CUR));
    for (dir, want) in [
        (Direction::Outbound, vec!["outbound"]),
        (Direction::Inbound, vec!["inbound"]),
        (Direction::All, vec!["inbound", "outbound"]),
    ] {
        let got: Vec<String> = rows(&d, 1.0, dir)
            .into_iter()
            .map(|r| r.direction)
            .collect();
        assert_eq!(got, want, "{dir:?}");
    }
}

#[test]
fn proxies_are_summed_after_each_ones_reset_is_handled() {
    // Proxy A served 180 more; proxy B restarted and served 20 since.
    let a = deltas(&p(PREV), &p(CUR));
    let b_prev = p(CUR);
    let b_cur = p(&CUR
        .replace(
            "process_start_time_seconds 1000",
            "process_start_time_seconds 5000",
        )
        .replace("} 280", "} 20")
        .replace("} 999", "} 10"));
    let b = deltas(&b_prev, &b_cur);
    let all: Vec<Sample> = a.into_iter().chain(b).collect();
    let rows = rows(&all, 1.0, Direction::Outbound);
    assert_eq!(rows.len(), 1);
    // A: 180 ok + 20 failed; B since its restart: 20 ok + 20 failed.
    assert_eq!(rows[0].rps, 240.0);
    assert_eq!(rows[0].success, Some(200.0 / 240.0));
    let inbound = super::rows(&all, 1.0, Direction::Inbound);
    assert_eq!(inbound[0].rps, 99.0 + 10.0, "never negative after a reset");
}

#[test]
fn quiet_proxies() {
    let d = deltas(&p(CUR), &p(CUR));
    assert!(
        rows(&d, 1.0, Direction::All)
            .iter()
            .all(|r| r.rps == 0.0 && r.success.is_none())
    );
    assert!(render(&[]).contains("no requests yet"));
}

#[test]
fn render_dashes_empty_labels() {
    let rows = rows(&deltas(&p(PREV), &p(CUR)), 2.0, Direction::All);
    let table = render(&rows);
    let inbound = table
        .lines()
        .find(|l| l.starts_with("inbound"))
        .expect("an inbound line");
    let cols: Vec<&str> = inbound.split_whitespace().collect();
    assert_eq!(&cols[..4], &["inbound", "-", "-", "127.0.0.1:8080"]);
    assert!(
        table.contains("90.00%") && table.contains("100.0"),
        "{table}"
    );
}
