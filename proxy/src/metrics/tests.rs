//! The series cache and the label budget, counted through the families.

use super::Metrics;
use super::labels::{OverflowLabels, RouteLabels};
use super::series::{
    CODES_CACHED, LabelBudget, OVERFLOW_LABEL, RequestSeries, SERIES_CACHED, SeriesCache,
};
use crate::conn::Direction;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

#[test]
fn a_label_budget_admits_up_to_its_cap_then_overflows_and_counts() {
    let overflow = Family::<OverflowLabels, Counter>::default();
    let budget = LabelBudget::new("inbound_backend", 2);
    let got: Vec<String> = ["a", "b", "a", "c", "b", "d"]
        .iter()
        .map(|v| budget.admit(v.to_string(), &overflow))
        .collect();
    assert_eq!(got, ["a", "b", "a", OVERFLOW_LABEL, "b", OVERFLOW_LABEL]);
    let counted = overflow
        .get_or_create(&OverflowLabels {
            label: "inbound_backend",
        })
        .get();
    assert_eq!(counted, 2);
}

fn labels(route: &str) -> RouteLabels {
    RouteLabels {
        direction: Direction::Outbound,
        service: "ns/web:80".into(),
        route: route.into(),
        backend: "ns/web-v1:80".into(),
    }
}

#[test]
fn cached_series_count_into_the_families() {
    let m = Metrics::new();
    let cache = SeriesCache::<String>::default();
    for (route, code) in [("a", 200), ("a", 200), ("a", 503), ("b", 200)] {
        let s = cache.get_or_insert(
            |k| k == route,
            || (route.to_string(), RequestSeries::new(&m, labels(route))),
        );
        s.record(&m, code, 0.001);
    }
    let text = m.encode();
    let line = |route: &str, code: u16| {
        format!(
            "strait_requests_total{{direction=\"outbound\",service=\"ns/web:80\",route=\"{route}\",backend=\"ns/web-v1:80\",code=\"{code}\"}}"
        )
    };
    assert!(text.contains(&format!("{} 2", line("a", 200))), "{text}");
    assert!(text.contains(&format!("{} 1", line("a", 503))), "{text}");
    assert!(text.contains(&format!("{} 1", line("b", 200))), "{text}");
    assert!(text.contains("strait_request_duration_seconds_count{direction=\"outbound\",service=\"ns/web:80\",route=\"a\",backend=\"ns/web-v1:80\"} 3"), "{text}");
}

#[test]
fn past_its_bounds_a_series_still_counts() {
    let m = Metrics::new();
    let cache = SeriesCache::<usize>::default();
    let s = cache.get_or_insert(|_| false, || (0, RequestSeries::new(&m, labels("r"))));
    for code in 100..(100 + CODES_CACHED as u16 + 4) {
        s.record(&m, code, 0.0);
        s.record(&m, code, 0.0);
    }
    let text = m.encode();
    let rare = 100 + CODES_CACHED as u16 + 3;
    assert!(text.contains(&format!("code=\"{rare}\"}} 2")), "{text}");
    for i in 0..SERIES_CACHED + 3 {
        cache.get_or_insert(
            |k| *k == i + 1,
            || (i + 1, RequestSeries::new(&m, labels("r"))),
        );
    }
    assert_eq!(
        cache.entries.read().map(|e| e.len()).unwrap_or(0),
        SERIES_CACHED
    );
}
