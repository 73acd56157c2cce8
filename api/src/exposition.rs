//! Which metrics format a scraper gets: OpenMetrics (what Prometheus asks
//! for first) or the Prometheus text format 0.0.4 (what `promtool check
//! metrics`, older scrapers and plain `curl` read). Both processes encode
//! OpenMetrics; [`to_text_format`] rewrites it, a pure function.
//!
//! The two differ, for what Strait exports, only in that OpenMetrics names
//! a counter family without its `_total` suffix in `# HELP` / `# TYPE`, has
//! `# UNIT` lines, and ends with `# EOF`.

/// `Content-Type` of OpenMetrics text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of the Prometheus text format.
pub const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a scraper's `Accept` header asks for OpenMetrics.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// OpenMetrics text as the Prometheus text format 0.0.4.
pub fn to_text_format(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(prefix);
                out.push_str(name);
                out.push_str(suffix);
                if !tail.is_empty() {
                    out.push(' ');
                    out.push_str(tail);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_get_their_total_and_eof_goes() {
        let om = "# HELP strait_requests HTTP requests.\n# TYPE strait_requests counter\nstrait_requests_total{code=\"200\"} 3\n# HELP strait_endpoints Endpoints.\n# TYPE strait_endpoints gauge\n# UNIT strait_endpoints endpoints\nstrait_endpoints 2\n# TYPE d histogram\nd_bucket{le=\"+Inf\"} 1\nd_sum 0.5\nd_count 1\n# EOF\n";
        assert_eq!(
            to_text_format(om),
            "# HELP strait_requests_total HTTP requests.\n# TYPE strait_requests_total counter\nstrait_requests_total{code=\"200\"} 3\n# HELP strait_endpoints Endpoints.\n# TYPE strait_endpoints gauge\nstrait_endpoints 2\n# TYPE d histogram\nd_bucket{le=\"+Inf\"} 1\nd_sum 0.5\nd_count 1\n"
        );
    }

    #[test]
    fn accept_table() {
        for (accept, want) in [
            (None, false),
            (Some("*/*"), false),
            (Some("text/plain;version=0.0.4"), false),
            (
                Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
                true,
            ),
        ] {
            assert_eq!(wants_openmetrics(accept), want, "{accept:?}");
        }
    }
}
