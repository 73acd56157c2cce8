//! One invalid object per schema or CEL rule, each applied with kubectl and
//! refused by the API server with the message the rule promises.
//!
//! Objects are written as YAML, as users write them, because kubectl's YAML
//! reading is part of what users meet (see the unquoted `on` row).

use crate::support::ApiServer;
use std::sync::Arc;

const ROUTE: &str = "TrafficRoute";
const POLICY: &str = "DestinationPolicy";

/// Valid objects next to the invalid ones: the template is not the problem.
const VALID: &[(&str, &str)] = &[
    (
        ROUTE,
        r#"{parentRef: {name: web, port: 80}, rules: [{backends: [{name: web-v1, weight: 0}, {name: web-v2}],
            timeout: 2s, retry: {perTryTimeout: 500ms, "on": [5xx, reset], retriableCodes: [503]},
            sessionAffinity: {cookie: uid},
            matches: [{path: {type: RegularExpression, value: "/api/.*"},
                       headers: [{name: x-canary, type: Present}]}]}]}"#,
    ),
    (
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: web-v1}], timeout: 1m30s, retry: {perTryTimeout: 90s}}]}",
    ),
    (
        POLICY,
        r#"{targetRef: {name: web-v1}, loadBalancer: LeastRequest,
            circuitBreaker: {baseEjectionTime: 30s, maxEjectionTime: 1m, maxEjectedPercent: 100,
                             successRate: {threshold: "1", window: 1m}},
            tls: {mode: Permissive}, timeouts: {connect: 250ms}}"#,
    ),
];

/// (what the rule is, kind, spec, a fragment of the API server's message)
const INVALID: &[(&str, &str, &str, &str)] = &[
    // The parent and the rules.
    (
        "parentRef is required",
        ROUTE,
        "{rules: [{backends: [{name: a}]}]}",
        "spec.parentRef: Required value",
    ),
    (
        "at least one rule",
        ROUTE,
        "{parentRef: {name: web}, rules: []}",
        "spec.rules in body should have at least 1 items",
    ),
    (
        "ports are 1-65535",
        ROUTE,
        "{parentRef: {name: web, port: 0}, rules: [{backends: [{name: a}]}]}",
        "spec.parentRef.port in body should be greater than or equal to 1",
    ),
    (
        "ports are 1-65535 (2)",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a, port: 65536}]}]}",
        "spec.rules[0].backends[0].port in body should be less than or equal to 65535",
    ),
    // Backends and weights.
    (
        "backends are required",
        ROUTE,
        "{parentRef: {name: web}, rules: [{name: r}]}",
        "spec.rules[0].backends: Required value: at least one backend is required",
    ),
    (
        "at least one backend",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: []}]}",
        "spec.rules[0].backends in body should have at least 1 items",
    ),
    (
        "weights are not negative",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a, weight: -1}, {name: b}]}]}",
        "spec.rules[0].backends[0].weight in body should be greater than or equal to 0",
    ),
    (
        "weights are not all zero",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a, weight: 0}, {name: b, weight: 0}]}]}",
        "spec.rules[0].backends: Invalid value: at least one backend needs a weight above 0",
    ),
    // Durations.
    (
        "timeout is a duration",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], timeout: 2 seconds}]}",
        "spec.rules[0].timeout in body should match '^([0-9]{1,5}(h|m|s|ms)){1,4}$'",
    ),
    (
        "at most 5 digits per number (GEP-2257)",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], timeout: 123456s}]}",
        "spec.rules[0].timeout in body should match",
    ),
    (
        "at most 4 pairs (GEP-2257)",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], timeout: 1s1s1s1s1s}]}",
        "spec.rules[0].timeout in body should match",
    ),
    (
        "no fractional durations",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], retry: {perTryTimeout: 1.5s}}]}",
        "spec.rules[0].retry.perTryTimeout in body should match",
    ),
    (
        "no unit-less durations",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], retry: {backoff: \"25\"}}]}",
        "spec.rules[0].retry.backoff in body should match",
    ),
    (
        "no unknown units",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], fault: {delay: {percent: 1, duration: 10us}}}]}",
        "spec.rules[0].fault.delay.duration in body should match",
    ),
    (
        "perTryTimeout not above timeout",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], timeout: 2s, retry: {perTryTimeout: 3s}}]}",
        "spec.rules[0].retry.perTryTimeout: Invalid value: must not be longer than the rule's timeout",
    ),
    (
        "perTryTimeout compares as a duration",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], timeout: 59s, retry: {perTryTimeout: 1m}}]}",
        "must not be longer than the rule's timeout",
    ),
    // Percentages and statuses.
    (
        "fault delay percent 0-100",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], fault: {delay: {percent: 150, duration: 1s}}}]}",
        "spec.rules[0].fault.delay.percent in body should be less than or equal to 100",
    ),
    (
        "fault abort percent 0-100",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], fault: {abort: {percent: 101, status: 503}}}]}",
        "spec.rules[0].fault.abort.percent in body should be less than or equal to 100",
    ),
    (
        "fault abort status is HTTP",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], fault: {abort: {percent: 1, status: 600}}}]}",
        "spec.rules[0].fault.abort.status in body should be less than or equal to 599",
    ),
    (
        "mirror percent 0-100",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], mirror: {name: m, percent: 200}}]}",
        "spec.rules[0].mirror.percent in body should be less than or equal to 100",
    ),
    // Session affinity.
    (
        "affinity: not both",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], sessionAffinity: {header: x-user-id, cookie: uid}}]}",
        "spec.rules[0].sessionAffinity: Invalid value: set exactly one of header or cookie",
    ),
    (
        "affinity: not neither",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], sessionAffinity: {}}]}",
        "set exactly one of header or cookie",
    ),
    // Enums.
    (
        "path type enum",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], matches: [{path: {type: Prefix, value: /}}]}]}",
        r#"spec.rules[0].matches[0].path.type: Unsupported value: "Prefix": supported values: "Exact", "PathPrefix", "RegularExpression""#,
    ),
    (
        "header match type enum",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], matches: [{headers: [{name: x, type: Contains, value: y}]}]}]}",
        r#"spec.rules[0].matches[0].headers[0].type: Unsupported value: "Contains""#,
    ),
    (
        "header value unless Present",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], matches: [{queryParams: [{name: beta}]}]}]}",
        "spec.rules[0].matches[0].queryParams[0].value: Required value: value is required unless type is Present",
    ),
    (
        "retry-on classes",
        ROUTE,
        r#"{parentRef: {name: web}, rules: [{backends: [{name: a}], retry: {"on": [timeout]}}]}"#,
        r#"spec.rules[0].retry.on[0]: Unsupported value: "timeout""#,
    ),
    (
        "retriable codes are HTTP",
        ROUTE,
        r#"{parentRef: {name: web}, rules: [{backends: [{name: a}], retry: {retriableCodes: [99]}}]}"#,
        "spec.rules[0].retry.retriableCodes[0] in body should be greater than or equal to 100",
    ),
    (
        "attempts at least 1",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], retry: {attempts: 0}}]}",
        "spec.rules[0].retry.attempts in body should be greater than or equal to 1",
    ),
    // Upper bounds (api/src/bounds.rs).
    (
        "attempts at most 10",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], retry: {attempts: 1000000000}}]}",
        "spec.rules[0].retry.attempts in body should be less than or equal to 10",
    ),
    (
        "weight at most 1,000,000",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a, weight: 1000001}]}]}",
        "spec.rules[0].backends[0].weight in body should be less than or equal to 1000000",
    ),
    (
        "route timeout at most 1h",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], timeout: 1h1s}]}",
        r#"spec.rules[0].timeout: Invalid value: "1h1s": must be at most 1h"#,
    ),
    (
        "backoff at most 1m",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], retry: {backoff: 90s}}]}",
        r#"spec.rules[0].retry.backoff: Invalid value: "90s": must be at most 1m"#,
    ),
    (
        "ejection time at most 24h",
        POLICY,
        "{targetRef: {name: web}, circuitBreaker: {baseEjectionTime: 99999h}}",
        r#"spec.circuitBreaker.baseEjectionTime: Invalid value: "99999h": must be at most 24h"#,
    ),
    (
        "retry budget ratio at most 1",
        POLICY,
        "{targetRef: {name: web}, retryBudget: {ratio: \"1000\"}}",
        r#"spec.retryBudget.ratio: Invalid value: "1000": must be at most 1"#,
    ),
    (
        "limits at most 1,000,000",
        POLICY,
        "{targetRef: {name: web}, limits: {maxConnections: 4294967295}}",
        "spec.limits.maxConnections in body should be less than or equal to 1000000",
    ),
    // Unknown fields (kubectl asks for strict field validation).
    (
        "typos are refused",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a, weigth: 1}]}]}",
        r#"unknown field "spec.rules[0].backends[0].weigth""#,
    ),
    // YAML 1.1: a bare `on` key is the boolean true for kubectl. Quote it.
    (
        "unquoted on is YAML 1.1 true",
        ROUTE,
        "{parentRef: {name: web}, rules: [{backends: [{name: a}], retry: {on: [reset]}}]}",
        r#"unknown field "spec.rules[0].retry.true""#,
    ),
    // DestinationPolicy.
    (
        "targetRef is required",
        POLICY,
        "{loadBalancer: RoundRobin}",
        "spec.targetRef: Required value",
    ),
    (
        "loadBalancer enum",
        POLICY,
        "{targetRef: {name: web}, loadBalancer: Random}",
        r#"spec.loadBalancer: Unsupported value: "Random": supported values: "PeakEwma", "RoundRobin", "LeastRequest""#,
    ),
    (
        "tls mode enum",
        POLICY,
        "{targetRef: {name: web}, tls: {mode: Optional}}",
        r#"spec.tls.mode: Unsupported value: "Optional": supported values: "Strict", "Permissive", "Disabled""#,
    ),
    (
        "maxEjectedPercent 0-100",
        POLICY,
        "{targetRef: {name: web}, circuitBreaker: {maxEjectedPercent: 150}}",
        "spec.circuitBreaker.maxEjectedPercent in body should be less than or equal to 100",
    ),
    (
        "consecutiveFailures at least 1",
        POLICY,
        "{targetRef: {name: web}, circuitBreaker: {consecutiveFailures: 0}}",
        "spec.circuitBreaker.consecutiveFailures in body should be greater than or equal to 1",
    ),
    (
        "ejection time is a duration",
        POLICY,
        "{targetRef: {name: web}, circuitBreaker: {baseEjectionTime: \"5\"}}",
        "spec.circuitBreaker.baseEjectionTime in body should match",
    ),
    (
        "maxEjectionTime not below base",
        POLICY,
        "{targetRef: {name: web}, circuitBreaker: {baseEjectionTime: 1m, maxEjectionTime: 30s}}",
        "spec.circuitBreaker.maxEjectionTime: Invalid value: must not be shorter than baseEjectionTime",
    ),
    (
        "threshold is a decimal string",
        POLICY,
        "{targetRef: {name: web}, circuitBreaker: {successRate: {threshold: 0.8}}}",
        "spec.circuitBreaker.successRate.threshold: Invalid value: \"number\": spec.circuitBreaker.successRate.threshold in body must be of type string",
    ),
    (
        "threshold is a decimal",
        POLICY,
        r#"{targetRef: {name: web}, circuitBreaker: {successRate: {threshold: "80%"}}}"#,
        "spec.circuitBreaker.successRate.threshold in body should match '^[0-9]+([.][0-9]+)?$'",
    ),
    (
        "threshold at most 1",
        POLICY,
        r#"{targetRef: {name: web}, circuitBreaker: {successRate: {threshold: "1.5"}}}"#,
        "spec.circuitBreaker.successRate.threshold: Invalid value: must be between 0 and 1",
    ),
    (
        "retry budget ratio is a decimal",
        POLICY,
        r#"{targetRef: {name: web}, retryBudget: {ratio: "-0.2"}}"#,
        "spec.retryBudget.ratio in body should match",
    ),
    (
        "connect timeout is a duration",
        POLICY,
        "{targetRef: {name: web}, timeouts: {connect: 1 s}}",
        "spec.timeouts.connect in body should match",
    ),
];

pub async fn run(server: Arc<ApiServer>) {
    let ns = "invalid";
    super::namespace(&server, ns);
    let manifest = |kind: &str, name: &str, spec: &str| {
        format!(
            "apiVersion: strait.dev/v1alpha1\nkind: {kind}\n\
             metadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n"
        )
    };
    for (i, (kind, spec)) in VALID.iter().enumerate() {
        server
            .kubectl(
                &["apply", "-f", "-"],
                Some(&manifest(kind, &format!("valid-{i}"), spec)),
            )
            .ok();
    }
    let mut wrong = Vec::new();
    for (i, (rule, kind, spec, want)) in INVALID.iter().enumerate() {
        let out = server.kubectl(
            &["apply", "-f", "-"],
            Some(&manifest(kind, &format!("invalid-{i}"), spec)),
        );
        let stderr = out.stderr();
        if out.out.status.success() {
            wrong.push(format!("{rule}: accepted\n  {spec}"));
        } else if !stderr.contains(want) {
            wrong.push(format!("{rule}: refused, but without {want:?}:\n{stderr}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} invalid objects were not refused as expected:\n{}",
        wrong.len(),
        INVALID.len(),
        wrong.join("\n")
    );
    // Nothing invalid was stored.
    let stored = server
        .kubectl(&["get", "strait", "-n", ns, "-o", "name"], None)
        .ok();
    assert_eq!(stored.lines().count(), VALID.len(), "{stored}");
}
