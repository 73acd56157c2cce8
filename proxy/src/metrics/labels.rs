//! The label sets of the proxy's metrics, and the enums their values come
//! from.
//!
//! A value the proxy chooses (a direction, a retry outcome, a shed reason)
//! is an enum spelled once here or in the module that decides it, so a
//! typo cannot start a new series and `docs/metrics.md` has one list to
//! match. Values that name config (services, routes, backends) are strings.

use crate::balance::Shed;
use crate::conn::Direction;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use std::fmt::Write;

/// Encodes an enum label value by its `label()` spelling.
macro_rules! label_value {
    ($($t:ty),* $(,)?) => {$(
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.label())
            }
        }
    )*};
}

label_value!(Direction, Shed, RetryOutcome, FaultKind, MirrorOutcome);

/// What happened to a request whose first attempt failed
/// (`strait_retries_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryOutcome {
    /// A retry succeeded.
    Success,
    /// Every attempt the rule allows failed.
    Exhausted,
    /// The backend's retry budget was spent.
    Budget,
    /// The method or the failure is not retried by the rule.
    NotRetryable,
    /// The body was too large to keep for a retry.
    BodyTooLarge,
}

impl RetryOutcome {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            RetryOutcome::Success => "success",
            RetryOutcome::Exhausted => "exhausted",
            RetryOutcome::Budget => "budget",
            RetryOutcome::NotRetryable => "not-retryable",
            RetryOutcome::BodyTooLarge => "body-too-large",
        }
    }
}

/// A fault a route injected (`strait_faults_injected_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// The request was held before forwarding.
    Delay,
    /// The request was answered with the fault's status.
    Abort,
}

impl FaultKind {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            FaultKind::Delay => "delay",
            FaultKind::Abort => "abort",
        }
    }
}

/// What became of a mirrored copy (`strait_mirrored_requests_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MirrorOutcome {
    /// The copy was sent.
    Sent,
    /// Not sent: the mirror limit was reached or the backend is unknown.
    Dropped,
    /// Sent, and the mirror backend did not answer.
    Failed,
}

impl MirrorOutcome {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            MirrorOutcome::Sent => "sent",
            MirrorOutcome::Dropped => "dropped",
            MirrorOutcome::Failed => "failed",
        }
    }
}

/// Why a span was not exported (`strait_spans_dropped_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpanDrop {
    /// The export queue was full (the collector is slow or gone).
    QueueFull,
    /// The collector refused the batch or did not answer.
    ExportFailed,
}

impl SpanDrop {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            SpanDrop::QueueFull => "queue_full",
            SpanDrop::ExportFailed => "export_failed",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct SpanDropLabels {
    /// [`SpanDrop::label`].
    pub reason: &'static str,
}

/// Labels of a finished request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Which listener took the request.
    pub direction: Direction,
    /// The Service port asked for, `namespace/name:port` (empty inbound).
    pub service: String,
    /// The rule that matched (`trafficroute/rule`, or `default`).
    pub route: String,
    /// The backend chosen by the split (empty when none was chosen).
    pub backend: String,
    /// HTTP status sent to the client.
    pub code: u16,
}

/// Labels of a request latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Which listener took the request.
    pub direction: Direction,
    /// As in [`RequestLabels`].
    pub service: String,
    /// As in [`RequestLabels`].
    pub route: String,
    /// As in [`RequestLabels`].
    pub backend: String,
}

/// `strait_mesh_requests_total` and `strait_mesh_connections_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct MeshLabels {
    pub direction: Direction,
    /// `true` when the request or connection crossed mesh TLS.
    pub tls: &'static str,
    /// The other proxy's verified identity (its SPIFFE ID); empty without
    /// mesh TLS. Bounded: identities are per ServiceAccount.
    pub peer_identity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct InboundRefusedLabels {
    /// Why: `plaintext-to-strict`, `tls-handshake` or `no-certificate`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct DirectionLabels {
    pub direction: Direction,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct BytesLabels {
    pub direction: Direction,
    /// `src`: bytes received from the connecting client; `dst`: bytes sent
    /// back to it (what the destination answered).
    pub peer: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReloadLabels {
    /// `success` or `failure`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct BackendLabels {
    /// The backend, `namespace/name:port`.
    pub backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RetryLabels {
    pub service: String,
    pub route: String,
    pub backend: String,
    pub outcome: RetryOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct EndpointStateLabels {
    pub backend: String,
    /// `ready` or `ejected`.
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ShedLabels {
    pub backend: String,
    pub reason: Shed,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct FaultLabels {
    pub route: String,
    pub kind: FaultKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct MirrorLabels {
    pub route: String,
    pub kind: MirrorOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct OverflowLabels {
    /// Which label: `inbound_backend`.
    pub label: &'static str,
}
