//! Serde mirrors of the Gateway API route kinds a mesh reads
//! (`gateway.networking.k8s.io/v1` `HTTPRoute` and `GRPCRoute`, the GAMMA
//! way: a `parentRef` names a Service).
//!
//! Unlike Strait's own CRDs these do not refuse unknown fields: the API
//! server has already checked them against the installed CRD, which may be
//! newer than this Strait. Every level keeps what it did not recognise in
//! `unsupported`, and [`crate::translate`] refuses a route that uses such a
//! field, naming it, so nothing a user wrote is silently dropped.
//! Defaults the API server fills in (path `PathPrefix /`, match type
//! `Exact`, weight 1) are applied by translation, because `--local` mode
//! reads files that never went through an API server.

use super::ObjectMeta;
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::collections::BTreeMap;

/// The Gateway API group/version these kinds are read at.
pub const GATEWAY_API_VERSION: &str = "gateway.networking.k8s.io/v1";

/// Fields a level did not recognise, by name.
pub type Unsupported = BTreeMap<String, IgnoredAny>;

/// An `HTTPRoute` or a `GRPCRoute`: the same shape, with rules of its kind.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(bound(deserialize = "R: Deserialize<'de>"))]
pub struct GatewayRoute<R> {
    /// Name, namespace, creation time.
    pub metadata: ObjectMeta,
    /// Parents and rules.
    pub spec: RouteSpec<R>,
}

/// `HTTPRoute`.
pub type HttpRoute = GatewayRoute<HttpRouteRule>;
/// `GRPCRoute`.
pub type GrpcRoute = GatewayRoute<GrpcRouteRule>;

/// `spec` of an HTTPRoute or GRPCRoute.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", bound(deserialize = "R: Deserialize<'de>"))]
pub struct RouteSpec<R> {
    /// What the route attaches to; Strait reads the Service parents.
    #[serde(default)]
    pub parent_refs: Vec<GatewayParentRef>,
    /// Host names; not used for mesh routing (the parent Service is the host).
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Rules; Gateway API precedence picks among them, not their order.
    #[serde(default = "Vec::new")]
    pub rules: Vec<R>,
    /// Fields this Strait does not know.
    #[serde(flatten)]
    pub unsupported: Unsupported,
}

/// A `parentRef`. GAMMA parents are `kind: Service` with an empty group.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayParentRef {
    /// API group: `""` (core) for a Service; `gateway.networking.k8s.io` when absent.
    #[serde(default)]
    pub group: Option<String>,
    /// Kind; `Gateway` by default.
    #[serde(default)]
    pub kind: Option<String>,
    /// Namespace; the route's own by default.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Listener name (Gateways only).
    #[serde(default)]
    pub section_name: Option<String>,
    /// The Service port; every port when absent.
    #[serde(default)]
    pub port: Option<u16>,
}

impl GatewayParentRef {
    /// Whether this parent is a Service (a mesh parent) rather than a
    /// Gateway: `kind: Service` in the core group, which must be written
    /// `group: ""` (an absent group means `gateway.networking.k8s.io`, and
    /// the API server writes that default in).
    pub fn is_service(&self) -> bool {
        self.kind.as_deref() == Some("Service") && self.group.as_deref() == Some("")
    }
}

/// One HTTPRoute rule.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// Optional rule name (the `route` metric label's second part).
    #[serde(default)]
    pub name: Option<String>,
    /// Any match selects the rule; none means `PathPrefix /`.
    #[serde(default)]
    pub matches: Vec<HttpRouteMatch>,
    /// Filters applied in order.
    #[serde(default)]
    pub filters: Vec<HttpRouteFilter>,
    /// Weighted backends.
    #[serde(default)]
    pub backend_refs: Vec<HttpBackendRef>,
    /// `request` and `backendRequest` timeouts.
    #[serde(default)]
    pub timeouts: Option<HttpRouteTimeouts>,
    /// GEP-1731 retries (experimental channel).
    #[serde(default)]
    pub retry: Option<HttpRouteRetry>,
    /// GEP-1619 session persistence (experimental channel).
    #[serde(default)]
    pub session_persistence: Option<SessionPersistence>,
    /// Fields this Strait does not know.
    #[serde(flatten)]
    pub unsupported: Unsupported,
}

/// One HTTPRoute match: all conditions must hold.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// Path condition; `PathPrefix /` when absent.
    #[serde(default)]
    pub path: Option<HttpPathMatch>,
    /// Header conditions.
    #[serde(default)]
    pub headers: Vec<HttpValueMatch>,
    /// Query parameter conditions.
    #[serde(default)]
    pub query_params: Vec<HttpValueMatch>,
    /// Method.
    #[serde(default)]
    pub method: Option<String>,
    /// Fields this Strait does not know.
    #[serde(flatten)]
    pub unsupported: Unsupported,
}

/// A path condition.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct HttpPathMatch {
    /// `Exact`, `PathPrefix` (default) or `RegularExpression`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The path; `/` by default.
    #[serde(default)]
    pub value: Option<String>,
}

/// A header or query-parameter condition.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct HttpValueMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Header or parameter name.
    pub name: String,
    /// The value or pattern.
    pub value: String,
}

/// A filter: `type` says which of the other fields is set.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteFilter {
    /// `RequestHeaderModifier`, `ResponseHeaderModifier`, `RequestRedirect`,
    /// `URLRewrite`, `RequestMirror` (supported), `CORS`, `ExternalAuth`,
    /// `ExtensionRef` (not).
    #[serde(rename = "type")]
    pub kind: String,
    /// For `RequestHeaderModifier`.
    #[serde(default)]
    pub request_header_modifier: Option<HeaderFilter>,
    /// For `ResponseHeaderModifier`.
    #[serde(default)]
    pub response_header_modifier: Option<HeaderFilter>,
    /// For `RequestRedirect`.
    #[serde(default)]
    pub request_redirect: Option<RedirectFilter>,
    /// For `URLRewrite`.
    #[serde(default, rename = "urlRewrite")]
    pub url_rewrite: Option<RewriteFilter>,
    /// For `RequestMirror`.
    #[serde(default)]
    pub request_mirror: Option<MirrorFilter>,
    /// Fields this Strait does not know (`cors`, `externalAuth`, `extensionRef`, …).
    #[serde(flatten)]
    pub unsupported: Unsupported,
}

/// `RequestHeaderModifier` / `ResponseHeaderModifier`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct HeaderFilter {
    /// Replace or add.
    #[serde(default)]
    pub set: Vec<HeaderPair>,
    /// Append.
    #[serde(default)]
    pub add: Vec<HeaderPair>,
    /// Remove by name.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// A header name and value.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct HeaderPair {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// `RequestRedirect`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RedirectFilter {
    /// `http` or `https`.
    #[serde(default)]
    pub scheme: Option<String>,
    /// The host to redirect to.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Path change.
    #[serde(default)]
    pub path: Option<PathModifierSpec>,
    /// The port to redirect to.
    #[serde(default)]
    pub port: Option<u16>,
    /// 301 or 302 (default); 303, 307 and 308 are accepted too.
    #[serde(default)]
    pub status_code: Option<u16>,
}

/// `URLRewrite`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct RewriteFilter {
    /// New `Host` / `:authority`.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Path change.
    #[serde(default)]
    pub path: Option<PathModifierSpec>,
}

/// A path change: `ReplaceFullPath` or `ReplacePrefixMatch`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PathModifierSpec {
    /// `ReplaceFullPath` or `ReplacePrefixMatch`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `ReplaceFullPath`.
    #[serde(default)]
    pub replace_full_path: Option<String>,
    /// For `ReplacePrefixMatch`.
    #[serde(default)]
    pub replace_prefix_match: Option<String>,
}

/// `RequestMirror`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct MirrorFilter {
    /// The mirror Service.
    #[serde(rename = "backendRef")]
    pub backend_ref: GatewayBackendRef,
    /// Share of requests mirrored, 0–100.
    #[serde(default)]
    pub percent: Option<u32>,
    /// Share as a fraction.
    #[serde(default)]
    pub fraction: Option<Fraction>,
}

/// `numerator / denominator` (denominator 100 by default).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Fraction {
    /// Numerator.
    pub numerator: u32,
    /// Denominator.
    #[serde(default)]
    pub denominator: Option<u32>,
}

/// A reference to a backend object; Strait reads Services.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct GatewayBackendRef {
    /// API group; `""` for a Service.
    #[serde(default)]
    pub group: Option<String>,
    /// Kind; `Service` by default.
    #[serde(default)]
    pub kind: Option<String>,
    /// Name.
    pub name: String,
    /// Namespace; the route's own by default.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Service port (required for Services by the API).
    #[serde(default)]
    pub port: Option<u16>,
}

/// A weighted backend of an HTTPRoute rule.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct HttpBackendRef {
    /// The Service.
    #[serde(flatten)]
    pub target: GatewayBackendRef,
    /// Relative weight, default 1.
    #[serde(default)]
    pub weight: Option<u32>,
    /// Per-backend filters.
    #[serde(default)]
    pub filters: Vec<HttpRouteFilter>,
}

/// `timeouts`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteTimeouts {
    /// Whole request, e.g. `10s`; `0s` means none.
    #[serde(default)]
    pub request: Option<String>,
    /// Each request to a backend (each retry).
    #[serde(default)]
    pub backend_request: Option<String>,
}

/// GEP-1731 `retry`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct HttpRouteRetry {
    /// Status codes retried.
    #[serde(default)]
    pub codes: Vec<u16>,
    /// Retries (not counting the first try).
    #[serde(default)]
    pub attempts: Option<u32>,
    /// Wait between tries.
    #[serde(default)]
    pub backoff: Option<String>,
}

/// GEP-1619 `sessionPersistence`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SessionPersistence {
    /// The cookie or header name.
    #[serde(default)]
    pub session_name: Option<String>,
    /// `Cookie` (default) or `Header`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Fields Strait does not honour (`absoluteTimeout`, `idleTimeout`, `cookieConfig`).
    #[serde(flatten)]
    pub unsupported: Unsupported,
}

/// One GRPCRoute rule.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteRule {
    /// Optional rule name.
    #[serde(default)]
    pub name: Option<String>,
    /// Any match selects the rule; none means every call.
    #[serde(default)]
    pub matches: Vec<GrpcRouteMatch>,
    /// Filters (header modifiers and mirroring).
    #[serde(default)]
    pub filters: Vec<HttpRouteFilter>,
    /// Weighted backends.
    #[serde(default)]
    pub backend_refs: Vec<HttpBackendRef>,
    /// GEP-1619 session persistence.
    #[serde(default)]
    pub session_persistence: Option<SessionPersistence>,
    /// Fields this Strait does not know.
    #[serde(flatten)]
    pub unsupported: Unsupported,
}

/// One GRPCRoute match.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct GrpcRouteMatch {
    /// Service and method.
    #[serde(default)]
    pub method: Option<GrpcMethodMatch>,
    /// Header conditions.
    #[serde(default)]
    pub headers: Vec<HttpValueMatch>,
    /// Fields this Strait does not know.
    #[serde(flatten)]
    pub unsupported: Unsupported,
}

/// `method`: a gRPC service and/or method.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct GrpcMethodMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Fully qualified service, e.g. `helloworld.Greeter`.
    #[serde(default)]
    pub service: Option<String>,
    /// Method, e.g. `SayHello`.
    #[serde(default)]
    pub method: Option<String>,
}

/// The Services a Gateway route names: its Service parents, and the
/// Services its rules send or mirror to (for who-sees-what, before any
/// validation).
pub trait ServiceRefs {
    /// Names of the Service parents.
    fn service_parents(&self) -> Vec<&str>;
    /// Names of backend and mirror Services.
    fn backend_services(&self) -> Vec<&str>;
}

fn parent_names(refs: &[GatewayParentRef]) -> Vec<&str> {
    refs.iter()
        .filter(|p| p.is_service())
        .map(|p| p.name.as_str())
        .collect()
}

fn rule_services<'a>(
    backends: &'a [HttpBackendRef],
    filters: &'a [HttpRouteFilter],
) -> impl Iterator<Item = &'a str> {
    backends.iter().map(|b| b.target.name.as_str()).chain(
        filters
            .iter()
            .filter_map(|f| f.request_mirror.as_ref())
            .map(|m| m.backend_ref.name.as_str()),
    )
}

/// What HTTPRoute and GRPCRoute rules have in common.
pub trait RuleRefs {
    /// Its weighted backends.
    fn backend_refs(&self) -> &[HttpBackendRef];
    /// Its filters (a `RequestMirror` names a Service).
    fn filters(&self) -> &[HttpRouteFilter];
    /// Its name, if it has one.
    fn name(&self) -> Option<&str>;
    /// Its session persistence.
    fn session_persistence(&self) -> Option<&SessionPersistence>;
    /// Fields this Strait does not know.
    fn unsupported(&self) -> &Unsupported;
}

macro_rules! rule_refs {
    ($rule:ty) => {
        impl RuleRefs for $rule {
            fn backend_refs(&self) -> &[HttpBackendRef] {
                &self.backend_refs
            }
            fn filters(&self) -> &[HttpRouteFilter] {
                &self.filters
            }
            fn name(&self) -> Option<&str> {
                self.name.as_deref()
            }
            fn session_persistence(&self) -> Option<&SessionPersistence> {
                self.session_persistence.as_ref()
            }
            fn unsupported(&self) -> &Unsupported {
                &self.unsupported
            }
        }
    };
}
rule_refs!(HttpRouteRule);
rule_refs!(GrpcRouteRule);

impl<R: RuleRefs> ServiceRefs for GatewayRoute<R> {
    fn service_parents(&self) -> Vec<&str> {
        parent_names(&self.spec.parent_refs)
    }
    fn backend_services(&self) -> Vec<&str> {
        self.spec
            .rules
            .iter()
            .flat_map(|r| rule_services(r.backend_refs(), r.filters()))
            .collect()
    }
}
