//! Getting spans to the collector without ever holding up a request.
//!
//! A finished span goes into a bounded queue with `try_send`: when the
//! queue is full (the collector is slow or gone) the span is dropped and
//! counted, and the request goes on. One task per pipeline takes spans off
//! the queue in batches and posts each batch as OTLP/HTTP protobuf
//! (`opentelemetry-otlp`); a batch the collector does not take is dropped
//! and counted too. The queue and batch sizes are OpenTelemetry's batch
//! processor defaults (2048 and 512); the schedule is 1 s rather than 5 s
//! so a trace shows up while someone is still looking for it.

use crate::metrics::{Metrics, SpanDrop};
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Spans waiting for export, at most.
pub const QUEUE: usize = 2048;
/// Spans per export, at most.
pub const BATCH: usize = 512;
/// How long a span may wait for its batch to fill.
pub const SCHEDULE: Duration = Duration::from_secs(1);
/// One export's deadline (including the exporter's own retries).
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Who is reporting: the OpenTelemetry resource of every span.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Workload {
    /// `service.name`: the workload (Deployment, …) the pod belongs to.
    pub service: String,
    /// `k8s.namespace.name`.
    pub namespace: String,
    /// `k8s.pod.name` (empty outside Kubernetes).
    pub pod: String,
}

impl Workload {
    fn resource(&self) -> Resource {
        let mut attrs = vec![
            KeyValue::new("service.name", self.service.clone()),
            KeyValue::new("k8s.namespace.name", self.namespace.clone()),
        ];
        if !self.pod.is_empty() {
            attrs.push(KeyValue::new("k8s.pod.name", self.pod.clone()));
        }
        Resource::builder_empty().with_attributes(attrs).build()
    }
}

/// One collector's queue; dropping every sender ends its export task
/// once the queue is empty.
pub struct Pipeline {
    tx: mpsc::Sender<SpanData>,
    metrics: Arc<Metrics>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Pipeline {
    /// Starts the export task for `url` (from [`super::traces_url`]).
    pub fn start(url: &str, workload: &Workload, metrics: Arc<Metrics>) -> Result<Self, String> {
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        exporter.set_resource(&workload.resource());
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(rx, exporter, metrics.clone(), url.to_string()));
        Ok(Pipeline {
            tx,
            metrics,
            task: std::sync::Mutex::new(Some(task)),
        })
    }

    /// The export task, to wait for once every sender is gone.
    pub fn take_task(&self) -> Option<tokio::task::JoinHandle<()>> {
        self.task.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Queues a finished span, or drops it when the queue is full.
    pub fn send(&self, span: SpanData) {
        if self.tx.try_send(span).is_err() {
            self.metrics.spans_dropped(SpanDrop::QueueFull, 1);
        }
    }
}

async fn run(
    mut rx: mpsc::Receiver<SpanData>,
    exporter: opentelemetry_otlp::SpanExporter,
    metrics: Arc<Metrics>,
    url: String,
) {
    let mut failing = false;
    loop {
        let Some(first) = rx.recv().await else { break };
        let mut batch = Vec::with_capacity(BATCH);
        batch.push(first);
        let deadline = tokio::time::Instant::now() + SCHEDULE;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        match tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(batch)).await {
            Ok(Ok(())) => {
                metrics.spans_exported(n);
                if failing {
                    tracing::info!(collector = %url, "trace collector reachable again");
                    failing = false;
                }
            }
            result => {
                metrics.spans_dropped(SpanDrop::ExportFailed, n);
                // Said once per outage, not per batch: the metric counts.
                if !failing {
                    let error = match result {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {EXPORT_TIMEOUT:?}"),
                    };
                    tracing::warn!(collector = %url, %error, "exporting spans failed; dropping them until the collector answers");
                    failing = true;
                }
            }
        }
    }
}
