//! Reading Prometheus / OpenMetrics exposition text: samples with labels,
//! and quantiles estimated from histogram buckets the way PromQL's
//! `histogram_quantile` does (linear interpolation inside a bucket).

use std::collections::BTreeMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Series name, e.g. `strait_requests_total`.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    /// A label's value, empty when absent.
    pub fn label(&self, k: &str) -> &str {
        self.labels.get(k).map(String::as_str).unwrap_or("")
    }
}

/// Parses every sample line; comments and malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find('{') {
        Some(i) => (&line[..i], &line[i..]),
        None => {
            let (n, v) = line.split_once(' ')?;
            return Some(Sample {
                name: n.to_string(),
                labels: BTreeMap::new(),
                value: first_number(v)?,
            });
        }
    };
    let mut labels = BTreeMap::new();
    let mut s = &rest[1..];
    loop {
        s = s.trim_start_matches(',');
        if let Some(after) = s.strip_prefix('}') {
            return Some(Sample {
                name: name.to_string(),
                labels,
                value: first_number(after)?,
            });
        }
        let (k, after) = s.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => {
                    let (_, e) = chars.next()?;
                    value.push(match e {
                        'n' => '\n',
                        other => other,
                    });
                }
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.insert(k.to_string(), value);
        s = &after[end + 1..];
    }
}

fn first_number(s: &str) -> Option<f64> {
    s.split_whitespace().next()?.parse().ok()
}

/// `q`-quantile from cumulative `(upper bound, count)` buckets, sorted by
/// bound and ending with `+Inf`. `None` with no observations.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                // Beyond the last finite bound: report that bound.
                return Some(prev.0);
            }
            let in_bucket = count - prev.1;
            if in_bucket <= 0.0 {
                return Some(le);
            }
            return Some(prev.0 + (le - prev.0) * (rank - prev.1) / in_bucket);
        }
        prev = (le, count);
    }
    Some(prev.0)
}

/// Buckets of one histogram series (`<name>_bucket`) whose labels include
/// every pair in `filter`, summed across the other labels.
pub fn buckets(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> Vec<(f64, f64)> {
    let bucket_name = format!("{name}_bucket");
    let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for s in samples
        .iter()
        .filter(|s| s.name == bucket_name && filter.iter().all(|(k, v)| s.label(k) == *v))
    {
        let le: f64 = match s.label("le") {
            "+Inf" => f64::INFINITY,
            v => match v.parse() {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        by_le.entry(le.to_bits()).or_insert((le, 0.0)).1 += s.value;
    }
    let mut out: Vec<(f64, f64)> = by_le.into_values().collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_and_values() {
        let text = "# HELP x y\nstrait_requests_total{direction=\"outbound\",route=\"a\\\"b\",code=\"200\"} 42\nup 1\nbroken{x=\"1\" \n";
        let s = parse(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "strait_requests_total");
        assert_eq!(s[0].label("route"), "a\"b");
        assert_eq!(s[0].label("code"), "200");
        assert_eq!(s[0].value, 42.0);
        assert_eq!((s[1].name.as_str(), s[1].value), ("up", 1.0));
    }

    #[test]
    fn quantile_table() {
        let b = [
            (0.1, 50.0),
            (0.2, 90.0),
            (0.5, 100.0),
            (f64::INFINITY, 100.0),
        ];
        for (q, want) in [
            (0.5, 0.1),
            (0.25, 0.05),
            (0.7, 0.15),
            (0.95, 0.35),
            (1.0, 0.5),
        ] {
            let got = quantile(q, &b).unwrap();
            assert!((got - want).abs() < 1e-9, "q={q}: {got} != {want}");
        }
        assert_eq!(quantile(0.5, &[(1.0, 0.0), (f64::INFINITY, 0.0)]), None);
        assert_eq!(
            quantile(0.99, &[(1.0, 1.0), (f64::INFINITY, 10.0)]),
            Some(1.0)
        );
    }

    #[test]
    fn buckets_are_summed_across_other_labels() {
        let text = "h_bucket{a=\"x\",b=\"1\",le=\"0.1\"} 1\nh_bucket{a=\"x\",b=\"2\",le=\"0.1\"} 2\nh_bucket{a=\"x\",b=\"1\",le=\"+Inf\"} 3\nh_bucket{a=\"x\",b=\"2\",le=\"+Inf\"} 4\nh_bucket{a=\"y\",le=\"+Inf\"} 100\n";
        let b = buckets(&parse(text), "h", &[("a", "x")]);
        assert_eq!(b, vec![(0.1, 3.0), (f64::INFINITY, 7.0)]);
    }
}
