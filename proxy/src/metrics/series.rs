//! Series looked up once and kept: a request series with its status
//! counters, a small cache of them per backend, and the budget that bounds a
//! label whose values clients choose.

use super::Metrics;
use super::labels::{OverflowLabels, RequestLabels, RouteLabels};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::{Arc, RwLock};

/// The value a label takes once its budget of distinct values is spent.
pub const OVERFLOW_LABEL: &str = "overflow";

/// The `service` label of requests for a Service the config does not know:
/// what a client names is not a label value, or every made-up `Host` would
/// add series forever.
pub const UNKNOWN_SERVICE_LABEL: &str = "unknown";

/// Distinct inbound `backend` label values (the app's `address:port`; a
/// peer picks the port). Past this, requests share [`OVERFLOW_LABEL`].
pub const INBOUND_BACKENDS_MAX: usize = 64;

/// Distinct values admitted for a label whose values clients choose, up to
/// a cap: every series costs memory for the life of the process, so a
/// client must not be able to add them without bound. Values past the cap
/// share [`OVERFLOW_LABEL`] and are counted in
/// `strait_metric_label_overflow_total`.
pub struct LabelBudget {
    label: &'static str,
    cap: usize,
    admitted: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl LabelBudget {
    /// A budget of `cap` distinct values for `label`.
    pub fn new(label: &'static str, cap: usize) -> Self {
        Self {
            label,
            cap,
            admitted: Default::default(),
        }
    }

    /// `value` if it is admitted (already, or now, within the cap), else
    /// [`OVERFLOW_LABEL`], counted in `overflow`.
    pub(super) fn admit(
        &self,
        value: String,
        overflow: &Family<OverflowLabels, Counter>,
    ) -> String {
        let Ok(mut admitted) = self.admitted.lock() else {
            return OVERFLOW_LABEL.to_string();
        };
        if admitted.contains(&value) {
            return value;
        }
        if admitted.len() < self.cap {
            admitted.insert(value.clone());
            return value;
        }
        overflow
            .get_or_create(&OverflowLabels { label: self.label })
            .inc();
        OVERFLOW_LABEL.to_string()
    }
}

/// One request series, `(direction, service, route, backend)`, resolved once
/// and then updated without building or hashing labels: the latency
/// histogram and a counter per status code seen. The families still own the
/// series (handles share their storage), so `/metrics` is unchanged; this
/// only takes label work off the per-request path.
pub struct RequestSeries {
    /// Its labels (also what the retry metrics and access log name).
    pub labels: RouteLabels,
    duration: Histogram,
    codes: RwLock<Vec<(u16, Counter)>>,
}

/// Status codes remembered per series; a rarer code still counts, through
/// the family.
pub(super) const CODES_CACHED: usize = 16;

impl RequestSeries {
    /// Looks the series up in `metrics` (creating it).
    pub fn new(metrics: &Metrics, labels: RouteLabels) -> Self {
        let duration = (*metrics.request_duration.get_or_create(&labels)).clone();
        Self {
            labels,
            duration,
            codes: RwLock::new(Vec::new()),
        }
    }

    /// Records one answered request.
    pub fn record(&self, metrics: &Metrics, code: u16, seconds: f64) {
        self.duration.observe(seconds);
        if let Ok(codes) = self.codes.read()
            && let Some((_, c)) = codes.iter().find(|(k, _)| *k == code)
        {
            c.inc();
            return;
        }
        let counter = (*metrics.requests.get_or_create(&RequestLabels {
            direction: self.labels.direction,
            service: self.labels.service.clone(),
            route: self.labels.route.clone(),
            backend: self.labels.backend.clone(),
            code,
        }))
        .clone();
        counter.inc();
        if let Ok(mut codes) = self.codes.write()
            && codes.len() < CODES_CACHED
            && !codes.iter().any(|(k, _)| *k == code)
        {
            codes.push((code, counter));
        }
    }
}

/// A few [`RequestSeries`] found by a key without hashing: a backend is
/// reached through one or a handful of (service, route) pairs, so a short
/// scan beats building label strings. Bounded; past the bound a series is
/// still recorded, just not remembered.
pub struct SeriesCache<K> {
    pub(super) entries: RwLock<Vec<(K, Arc<RequestSeries>)>>,
}

impl<K> Default for SeriesCache<K> {
    fn default() -> Self {
        Self {
            entries: RwLock::new(Vec::new()),
        }
    }
}

/// Entries a [`SeriesCache`] keeps.
pub(super) const SERIES_CACHED: usize = 64;

impl<K> SeriesCache<K> {
    /// The series whose key `matches`, or the one `make` builds (then kept).
    pub fn get_or_insert(
        &self,
        matches: impl Fn(&K) -> bool,
        make: impl FnOnce() -> (K, RequestSeries),
    ) -> Arc<RequestSeries> {
        if let Ok(entries) = self.entries.read()
            && let Some((_, s)) = entries.iter().find(|(k, _)| matches(k))
        {
            return s.clone();
        }
        let (key, series) = make();
        let series = Arc::new(series);
        if let Ok(mut entries) = self.entries.write()
            && entries.len() < SERIES_CACHED
        {
            entries.push((key, series.clone()));
        }
        series
    }
}
