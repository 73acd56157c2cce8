//! Serde mirrors of Strait's CRDs, `TrafficRoute` and `DestinationPolicy`
//! (`strait.dev/v1alpha1`). Field names are the user-facing contract
//! (docs/configuration.md); unknown fields are refused so typos surface.
//!
//! These are wire shapes only: strings for durations and decimals, optional
//! everything. [`crate::translate`] validates them into the domain model.

use super::ObjectMeta;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// `TrafficRoute`: ordered routing rules for one Service (port).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TrafficRoute {
    /// Name and namespace; a TrafficRoute applies in its own namespace.
    pub metadata: ObjectMeta,
    /// The Service port it routes and its rules.
    pub spec: TrafficRouteSpec,
}

/// `TrafficRoute.spec`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficRouteSpec {
    /// The Service whose traffic this routes.
    pub parent_ref: ParentRef,
    /// Rules, first match wins.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 64)))]
    pub rules: Vec<RouteRule>,
}

/// Which Service (and optionally which port) a route attaches to.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParentRef {
    /// Service name, in the route's namespace.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 253)))]
    pub name: String,
    /// Service port; all ports when absent.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub port: Option<u16>,
}

/// One rule.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "has(self.backends)",
            "message": "at least one backend is required",
            "fieldPath": ".backends",
            "reason": "FieldValueRequired",
        },
        {
            "rule": "!has(self.backends) || self.backends.exists(b, !has(b.weight) || b.weight > 0)",
            "message": "at least one backend needs a weight above 0",
            "fieldPath": ".backends",
        },
        {
            "rule": "!has(self.timeout) || !has(self.retry) || !has(self.retry.perTryTimeout) || duration(self.retry.perTryTimeout) <= duration(self.timeout)",
            "message": "must not be longer than the rule's timeout",
            "fieldPath": ".retry.perTryTimeout",
        },
    ]))
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteRule {
    /// Name, used in metrics (`route` label) and `/config`.
    #[serde(default)]
    pub name: Option<String>,
    /// Any of these matches selects the rule; none means every request.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(length(max = 32)))]
    pub matches: Vec<RouteMatchSpec>,
    /// Weighted backends (Services).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 32)))]
    pub backends: Vec<BackendRef>,
    /// Sticky split key.
    #[serde(default)]
    pub session_affinity: Option<SessionAffinity>,
    /// Request timeout, e.g. `2s`.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(crate::duration::PATTERN), length(max = 32), extend("x-kubernetes-validations" = [{"rule": "duration(self) <= duration('1h')", "message": "must be at most 1h"}]))
    )]
    pub timeout: Option<String>,
    /// How failed requests are retried (none when absent).
    #[serde(default)]
    pub retry: Option<RetrySpec>,
    /// Fault injection.
    #[serde(default)]
    pub fault: Option<FaultSpec>,
    /// Request header changes.
    #[serde(default)]
    pub request_headers: Option<HeaderModifierSpec>,
    /// Response header changes.
    #[serde(default)]
    pub response_headers: Option<HeaderModifierSpec>,
    /// Traffic mirroring.
    #[serde(default)]
    pub mirror: Option<MirrorSpec>,
}

/// All conditions of one match must hold.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteMatchSpec {
    /// Path condition.
    #[serde(default)]
    pub path: Option<PathMatchSpec>,
    /// Header conditions.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(length(max = 16)))]
    pub headers: Vec<ValueMatchSpec>,
    /// HTTP method, e.g. `GET`.
    #[serde(default)]
    pub method: Option<String>,
    /// Query parameter conditions.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(length(max = 16)))]
    pub query_params: Vec<ValueMatchSpec>,
}

/// Path condition.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PathMatchSpec {
    /// `Exact`, `PathPrefix` (default) or `RegularExpression`.
    #[serde(default, rename = "type")]
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["Exact", "PathPrefix", "RegularExpression"])))]
    pub kind: Option<String>,
    /// The path, prefix or pattern.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 1024)))]
    pub value: String,
}

/// Header or query-parameter condition.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(extend("x-kubernetes-validations" = [{
        "rule": "has(self.value) || (has(self.type) && self.type == 'Present')",
        "message": "value is required unless type is Present",
        "fieldPath": ".value",
        "reason": "FieldValueRequired",
    }]))
)]
#[serde(deny_unknown_fields)]
pub struct ValueMatchSpec {
    /// Header / parameter name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 256)))]
    pub name: String,
    /// `Exact` (default), `RegularExpression` or `Present`.
    #[serde(default, rename = "type")]
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["Exact", "RegularExpression", "Present"])))]
    pub kind: Option<String>,
    /// The value or pattern (not used by `Present`).
    #[serde(default)]
    pub value: Option<String>,
}

/// A weighted backend Service.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendRef {
    /// Service name, in the route's namespace.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 253)))]
    pub name: String,
    /// Service port; may be left out when the Service has one port.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub port: Option<u16>,
    /// Relative weight, default 1.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(max = 1000000)))]
    pub weight: Option<u32>,
}

/// Sticky split: exactly one of `header` or `cookie`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(extend("x-kubernetes-validations" = [{
        "rule": "has(self.header) != has(self.cookie)",
        "message": "set exactly one of header or cookie",
    }]))
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionAffinity {
    /// Header whose value keys the split (e.g. `x-user-id`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 256)))]
    pub header: Option<String>,
    /// Cookie whose value keys the split.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 256)))]
    pub cookie: Option<String>,
}

/// Retry settings of a rule.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetrySpec {
    /// Total tries including the first.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 10)))]
    pub attempts: Option<u32>,
    /// Timeout of each try.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(crate::duration::PATTERN), length(max = 32), extend("x-kubernetes-validations" = [{"rule": "duration(self) <= duration('1h')", "message": "must be at most 1h"}]))
    )]
    pub per_try_timeout: Option<String>,
    /// Retry-on classes.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("items" = {"type": "string", "enum": ["5xx", "gateway-error", "connect-failure", "reset", "retriable-codes"]})))]
    pub on: Vec<String>,
    /// Status codes for the `retriable-codes` class.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(inner(range(min = 100, max = 599))))]
    pub retriable_codes: Vec<u16>,
    /// Base backoff.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(crate::duration::PATTERN), length(max = 32), extend("x-kubernetes-validations" = [{"rule": "duration(self) <= duration('1m')", "message": "must be at most 1m"}]))
    )]
    pub backoff: Option<String>,
    /// Allow retrying non-idempotent methods.
    #[serde(default)]
    pub non_idempotent: Option<bool>,
}

/// Fault injection.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Added delay.
    #[serde(default)]
    pub delay: Option<FaultDelaySpec>,
    /// Synthetic error.
    #[serde(default)]
    pub abort: Option<FaultAbortSpec>,
}

/// `fault.delay`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FaultDelaySpec {
    /// Share of requests, 0–100.
    #[cfg_attr(feature = "schema", schemars(range(max = 100)))]
    pub percent: u32,
    /// How long.
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(crate::duration::PATTERN), length(max = 32), extend("x-kubernetes-validations" = [{"rule": "duration(self) <= duration('1h')", "message": "must be at most 1h"}]))
    )]
    pub duration: String,
}

/// `fault.abort`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FaultAbortSpec {
    /// Share of requests, 0–100.
    #[cfg_attr(feature = "schema", schemars(range(max = 100)))]
    pub percent: u32,
    /// Status returned.
    #[cfg_attr(feature = "schema", schemars(range(min = 100, max = 599)))]
    pub status: u16,
}

/// Header changes.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HeaderModifierSpec {
    /// Replace or add.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Headers added, keeping any value already there.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Header names removed.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Sending a copy of a share of requests to another backend, whose answers are dropped.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct MirrorSpec {
    /// Mirror Service name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 253)))]
    pub name: String,
    /// Mirror Service port.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub port: Option<u16>,
    /// Share of requests mirrored, 0–100 (default 100).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(max = 100)))]
    pub percent: Option<u32>,
}

/// `DestinationPolicy`: how traffic to one Service is balanced and protected.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct DestinationPolicy {
    /// Name and namespace; the policy applies to a Service in its namespace.
    pub metadata: ObjectMeta,
    /// The target Service and the policy for it.
    pub spec: DestinationPolicySpec,
}

/// `DestinationPolicy.spec`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationPolicySpec {
    /// The Service this applies to.
    pub target_ref: TargetRef,
    /// `PeakEwma` (default), `RoundRobin`, `LeastRequest`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["PeakEwma", "RoundRobin", "LeastRequest"])))]
    pub load_balancer: Option<String>,
    /// Circuit breaker.
    #[serde(default)]
    pub circuit_breaker: Option<CircuitBreakerSpec>,
    /// Load-shedding limits.
    #[serde(default)]
    pub limits: Option<LimitsSpec>,
    /// Retry budget.
    #[serde(default)]
    pub retry_budget: Option<RetryBudgetSpec>,
    /// Connection timeouts.
    #[serde(default)]
    pub timeouts: Option<TimeoutsSpec>,
    /// mTLS mode.
    #[serde(default)]
    pub tls: Option<TlsSpec>,
}

/// The policy's target Service.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TargetRef {
    /// Service name, in the policy's namespace.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 253)))]
    pub name: String,
}

/// Circuit breaker settings.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(extend("x-kubernetes-validations" = [{
        "rule": "!has(self.baseEjectionTime) || !has(self.maxEjectionTime) || duration(self.maxEjectionTime) >= duration(self.baseEjectionTime)",
        "message": "must not be shorter than baseEjectionTime",
        "fieldPath": ".maxEjectionTime",
    }]))
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreakerSpec {
    /// Consecutive failures that eject an endpoint.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 10000)))]
    pub consecutive_failures: Option<u32>,
    /// First ejection time.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(crate::duration::PATTERN), length(max = 32), extend("x-kubernetes-validations" = [{"rule": "duration(self) <= duration('24h')", "message": "must be at most 24h"}]))
    )]
    pub base_ejection_time: Option<String>,
    /// Longest ejection time.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(crate::duration::PATTERN), length(max = 32), extend("x-kubernetes-validations" = [{"rule": "duration(self) <= duration('24h')", "message": "must be at most 24h"}]))
    )]
    pub max_ejection_time: Option<String>,
    /// Most endpoints ejected at once, percent.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(max = 100)))]
    pub max_ejected_percent: Option<u32>,
    /// Success-rate ejection.
    #[serde(default)]
    pub success_rate: Option<SuccessRateSpec>,
}

/// Success-rate ejection settings.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(extend("x-kubernetes-validations" = [{
        "rule": "!self.threshold.matches('^[0-9]+([.][0-9]+)?$') || double(self.threshold) <= 1.0",
        "message": "must be between 0 and 1",
        "fieldPath": ".threshold",
    }]))
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuccessRateSpec {
    /// Minimum success rate, e.g. `"0.8"`.
    pub threshold: Decimal,
    /// How far back requests and retries are counted.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(crate::duration::PATTERN), length(max = 32), extend("x-kubernetes-validations" = [{"rule": "duration(self) <= duration('1h')", "message": "must be at most 1h"}]))
    )]
    pub window: Option<String>,
    /// Requests needed in the window before judging.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(max = 1000000)))]
    pub min_requests: Option<u32>,
}

/// Bounds on connections and requests to a backend; past them, requests are shed with 503.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsSpec {
    /// Connections per endpoint.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(max = 1000000)))]
    pub max_connections: Option<u32>,
    /// Requests waiting per backend.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(max = 1000000)))]
    pub max_pending_requests: Option<u32>,
    /// Requests in flight per backend.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(max = 1000000)))]
    pub max_requests: Option<u32>,
}

/// Retry budget.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBudgetSpec {
    /// Retries as a share of requests, e.g. `"0.2"`; at most `"1"`.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(extend("x-kubernetes-validations" = [{"rule": "double(self) <= 1.0", "message": "must be at most 1"}]))
    )]
    pub ratio: Option<Decimal>,
    /// Retries always allowed per second.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(max = 10000)))]
    pub min_per_second: Option<u32>,
    /// Sliding window.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(crate::duration::PATTERN), length(max = 32), extend("x-kubernetes-validations" = [{"rule": "duration(self) <= duration('1h')", "message": "must be at most 1h"}]))
    )]
    pub window: Option<String>,
}

/// Connection timeouts.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TimeoutsSpec {
    /// TCP connect timeout.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(crate::duration::PATTERN), length(max = 32), extend("x-kubernetes-validations" = [{"rule": "duration(self) <= duration('1h')", "message": "must be at most 1h"}]))
    )]
    pub connect: Option<String>,
    /// Idle timeout of pooled connections.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(crate::duration::PATTERN), length(max = 32), extend("x-kubernetes-validations" = [{"rule": "duration(self) <= duration('24h')", "message": "must be at most 24h"}]))
    )]
    pub idle: Option<String>,
}

/// mTLS settings.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// `Strict`, `Permissive` or `Disabled`.
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["Strict", "Permissive", "Disabled"])))]
    pub mode: String,
}

/// A decimal written as a string (`"0.2"`), the Kubernetes way of avoiding
/// floats in APIs. A bare YAML number is accepted too.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(extend("pattern" = "^[0-9]+([.][0-9]+)?$")))]
#[serde(transparent)]
pub struct Decimal(pub String);

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            F(f64),
        }
        Ok(Decimal(match Raw::deserialize(d)? {
            Raw::S(s) => s,
            Raw::F(f) => f.to_string(),
        }))
    }
}
