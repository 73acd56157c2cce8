//! Spans over OTLP: one span per request and direction (client kind on
//! outbound, server kind on inbound), reported to the mesh's trace
//! collector.
//!
//! [`context`] reads the caller's `traceparent` and decides whether the
//! request is recorded (the caller's sampled flag wins; a trace the proxy
//! starts is sampled at the configured rate). [`Spans::start`] applies the
//! decision to the request's headers: a recorded request leaves with this
//! proxy's span as its parent; a trace the proxy starts unrecorded leaves
//! with an unsampled `traceparent`, so every later hop agrees. With no
//! collector configured the proxy is not a hop at all: trace headers pass
//! through exactly as the app sent them. [`record`] turns a finished
//! request into OpenTelemetry span data (pure), and [`export`] queues and
//! ships it without ever holding up a request.
//!
//! The collector comes from the control plane (the mesh-wide setting,
//! `tracing.collector` in the chart), or from `--trace-collector`, which
//! wins (local mode, or one pod pointed elsewhere).

pub mod context;
pub mod export;
pub mod record;

pub use export::Workload;
pub use record::{Kind, Outcome};
pub use strait_api::collector::traces_url;

use crate::metrics::Metrics;
use arc_swap::ArcSwapOption;
use context::{Decision, TRACEPARENT, TraceParent};
use http::{HeaderName, HeaderValue, Request};
use opentelemetry::InstrumentationScope;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Parsed once (a `&str` key is parsed again at every insert).
static TRACEPARENT_NAME: HeaderName = HeaderName::from_static(TRACEPARENT);

thread_local! {
    /// Trace and span ids must be unique, not secret (W3C Trace Context
    /// asks for random ones, not unpredictable ones): a fast generator per
    /// thread, seeded from the OS-seeded one, draws them and the sampling
    /// decision.
    static IDS: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

/// A sampling draw in [0, 1), a trace id and a span id (neither zero,
/// which means "invalid" in trace context).
fn draw() -> (f64, u128, u64) {
    IDS.with(|rng| {
        let mut rng = rng.borrow_mut();
        (
            rng.random(),
            rng.random::<u128>().max(1),
            rng.random::<u64>().max(1),
        )
    })
}

/// Where spans go and how many traces the proxy starts recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Settings {
    /// The collector's OTLP/HTTP address (see [`traces_url`]).
    pub collector: String,
    /// Share of the traces the proxy starts that are recorded, 0 to 1.
    pub sampling: f64,
}

/// Marks a request whose span is recorded, so the forwarding code can say
/// who answered (the TLS peer) for it.
#[derive(Debug, Clone, Copy)]
pub struct Recorded;

struct Live {
    settings: Settings,
    pipeline: Arc<export::Pipeline>,
}

/// The proxy's span reporting: off until a collector is configured.
pub struct Spans {
    live: ArcSwapOption<Live>,
    /// `--trace-collector`: wins over the control plane.
    pinned: Option<Settings>,
    /// What the control plane said last (kept to compare).
    from_mesh: Mutex<Option<Settings>>,
    workload: Workload,
    scope: InstrumentationScope,
    metrics: Arc<Metrics>,
}

impl Spans {
    /// Span reporting for `workload`; exports at once when `pinned` names
    /// a collector. Must run inside the proxy's runtime.
    pub fn new(pinned: Option<Settings>, workload: Workload, metrics: Arc<Metrics>) -> Self {
        let spans = Spans {
            live: ArcSwapOption::empty(),
            pinned: pinned.clone(),
            from_mesh: Mutex::new(None),
            workload,
            scope: InstrumentationScope::builder("strait-proxy")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            metrics,
        };
        spans.switch(pinned);
        spans
    }

    /// The control plane's mesh-wide setting (`None`: no collector).
    /// Ignored while `--trace-collector` is set.
    pub fn set_from_mesh(&self, settings: Option<Settings>) {
        if self.pinned.is_some() {
            return;
        }
        let mut last = self.from_mesh.lock().unwrap_or_else(|e| e.into_inner());
        if *last != settings {
            *last = settings.clone();
            self.switch(settings);
        }
    }

    /// What is in effect now.
    pub fn settings(&self) -> Option<Settings> {
        self.live.load().as_ref().map(|l| l.settings.clone())
    }

    fn switch(&self, settings: Option<Settings>) {
        let live = settings.and_then(|settings| {
            let url = match traces_url(&settings.collector) {
                Ok(url) => url,
                Err(e) => {
                    tracing::error!(error = %e, "span export stays off");
                    return None;
                }
            };
            match export::Pipeline::start(&url, &self.workload, self.metrics.clone()) {
                Ok(pipeline) => {
                    tracing::info!(collector = %url, sampling = settings.sampling, "exporting spans");
                    Some(Arc::new(Live {
                        settings,
                        pipeline: Arc::new(pipeline),
                    }))
                }
                Err(e) => {
                    tracing::error!(collector = %url, error = %e, "span export stays off");
                    None
                }
            }
        });
        if live.is_none() && self.live.load().is_some() {
            tracing::info!("span export off");
        }
        // The old pipeline's task ends once its last span is sent.
        self.live.store(live);
    }

    /// Stops exporting and sends what is queued, waiting at most `grace`
    /// (the proxy is draining: its last spans should not be lost).
    pub async fn flush(&self, grace: std::time::Duration) {
        let Some(live) = self.live.swap(None) else {
            return;
        };
        let task = live.pipeline.take_task();
        // The queue's last sender goes with the last in-flight request.
        drop(live);
        if let Some(task) = task
            && tokio::time::timeout(grace, task).await.is_err()
        {
            tracing::warn!(?grace, "spans still queued at exit were not sent");
        }
    }

    /// Applies the sampling decision to a request as it arrives; returns
    /// the span to finish when the request is recorded.
    pub fn start<B>(&self, req: &mut Request<B>, kind: Kind) -> Option<Active> {
        let guard = self.live.load();
        let live = guard.as_ref()?;
        let incoming = req
            .headers()
            .get(&TRACEPARENT_NAME)
            .and_then(|v| context::parse(v.as_bytes()));
        let (sample, new_trace, span_id) = draw();
        let (trace_id, parent) = match context::decide(incoming, live.settings.sampling, sample) {
            Decision::Follow => return None,
            Decision::Join(tp) => (tp.trace_id, Some(tp.span_id)),
            Decision::Start { sampled: false } => {
                let tp = TraceParent {
                    trace_id: new_trace,
                    span_id,
                    sampled: false,
                };
                set_traceparent(req, &tp);
                return None;
            }
            Decision::Start { sampled: true } => (new_trace, None),
        };
        set_traceparent(
            req,
            &TraceParent {
                trace_id,
                span_id,
                sampled: true,
            },
        );
        req.extensions_mut().insert(Recorded);
        let header = |name| {
            req.headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        let started = record::Started {
            kind,
            trace_id,
            span_id,
            parent,
            start: SystemTime::now(),
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            authority: req
                .uri()
                .authority()
                .map(|a| a.as_str())
                .or_else(|| header("host"))
                .unwrap_or_default()
                .to_string(),
            protocol: match req.version() {
                http::Version::HTTP_10 => "1.0",
                http::Version::HTTP_2 => "2",
                _ => "1.1",
            },
            user_agent: header("user-agent").map(str::to_string),
        };
        Some(Active {
            started,
            pipeline: live.pipeline.clone(),
            scope: self.scope.clone(),
        })
    }
}

fn set_traceparent<B>(req: &mut Request<B>, tp: &TraceParent) {
    if let Ok(v) = HeaderValue::from_bytes(&context::format(tp)) {
        req.headers_mut().insert(TRACEPARENT_NAME.clone(), v);
    }
}

/// A recorded request's span, until the response is ready.
pub struct Active {
    started: record::Started,
    pipeline: Arc<export::Pipeline>,
    scope: InstrumentationScope,
}

impl Active {
    /// Ends the span and queues it for export.
    pub fn finish(self, outcome: &Outcome<'_>) {
        let span = record::span_data(self.started, outcome, SystemTime::now(), &self.scope);
        self.pipeline.send(span);
    }
}
