//! Pure checks of the generated CRDs; the API server tests in `tests/`
//! prove them against a real kube-apiserver.

use super::*;
use serde_json::Value;

fn schema_of(crd: &CustomResourceDefinition) -> Value {
    let v = &crd.spec.versions[0];
    serde_json::to_value(&v.schema.as_ref().unwrap().open_api_v3_schema).unwrap()
}

/// Every node of a schema, with its JSON path.
fn walk<'a>(path: String, v: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    out.push((path.clone(), v));
    if let Some(o) = v.as_object() {
        for (k, child) in o {
            walk(format!("{path}/{k}"), child, out);
        }
    } else if let Some(a) = v.as_array() {
        for (i, child) in a.iter().enumerate() {
            walk(format!("{path}/{i}"), child, out);
        }
    }
}

#[test]
fn names_and_files() {
    let names: Vec<String> = all().iter().map(file_name).collect();
    assert_eq!(
        names,
        [
            "trafficroutes.strait.dev.yaml",
            "destinationpolicies.strait.dev.yaml"
        ]
    );
    for crd in all() {
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(crd.spec.scope, "Namespaced");
        let v = &crd.spec.versions[0];
        assert_eq!(
            (v.name.as_str(), v.served, v.storage),
            (VERSION, true, true)
        );
        assert!(v.subresources.as_ref().unwrap().status.is_some());
        let columns: Vec<&str> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(columns[1..], ["Accepted", "ResolvedRefs", "Age"]);
    }
}

/// Structural-schema basics the API server insists on: no `$ref`, no
/// `additionalProperties` beside `properties`, every object typed.
#[test]
fn schemas_are_structural() {
    for crd in all() {
        let schema = schema_of(&crd);
        let mut nodes = Vec::new();
        walk(String::new(), &schema, &mut nodes);
        for (path, node) in nodes {
            let Some(o) = node.as_object() else { continue };
            assert!(!o.contains_key("$ref"), "{path}: $ref");
            if o.contains_key("properties") && !path.ends_with("/properties") {
                assert_eq!(o.get("type"), Some(&Value::from("object")), "{path}");
                assert!(!o.contains_key("additionalProperties"), "{path}");
            }
        }
    }
}

/// The CEL rules the issue asks for are in the schema where they belong.
#[test]
fn cel_rules_are_in_place() {
    let rules_at = |schema: &Value, pointer: &str| -> Vec<String> {
        schema
            .pointer(pointer)
            .unwrap_or_else(|| panic!("no {pointer}"))
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("no rules at {pointer}"))
            .iter()
            .map(|r| r["rule"].as_str().unwrap().to_string())
            .collect()
    };
    let [route, policy] = &all().iter().map(schema_of).collect::<Vec<_>>()[..] else {
        panic!("two CRDs")
    };
    let rule = "/properties/spec/properties/rules/items";
    let r = rules_at(route, rule);
    assert!(r.iter().any(|r| r.contains("b.weight > 0")), "{r:?}");
    assert!(
        r.iter()
            .any(|r| r.contains("duration(self.retry.perTryTimeout)")),
        "{r:?}"
    );
    let r = rules_at(route, &format!("{rule}/properties/sessionAffinity"));
    assert_eq!(r, ["has(self.header) != has(self.cookie)"]);
    let backends = route
        .pointer(&format!("{rule}/properties/backends"))
        .unwrap();
    assert_eq!(backends["minItems"], 1);
    let weight = &backends["items"]["properties"]["weight"];
    assert_eq!(weight["minimum"].as_f64(), Some(0.0), "{weight}");
    assert_eq!(weight.get("format"), None, "Kubernetes knows no uint32");
    assert_eq!(
        backends.get("default"),
        None,
        "[] would contradict minItems"
    );
    let timeout = route
        .pointer(&format!("{rule}/properties/timeout"))
        .unwrap();
    assert_eq!(timeout["pattern"], strait_api::duration::PATTERN);

    let lb = policy
        .pointer("/properties/spec/properties/loadBalancer/enum")
        .unwrap();
    assert_eq!(
        lb,
        &serde_json::json!(["PeakEwma", "RoundRobin", "LeastRequest"])
    );
}

/// The example manifests read the same through the CRD types as through the
/// proxy's local-mode loader.
#[test]
fn examples_read_the_same_as_the_local_loader() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/shop");
    let route_yaml = std::fs::read_to_string(format!("{dir}/trafficroute.yaml")).unwrap();
    let policy_yaml = std::fs::read_to_string(format!("{dir}/destinationpolicy.yaml")).unwrap();
    let route: TrafficRoute = serde_saphyr::from_str(&route_yaml).unwrap();
    let policy: DestinationPolicy = serde_saphyr::from_str(&policy_yaml).unwrap();
    let (objects, errors) = strait_api::manifest::parse_file("r", &route_yaml);
    assert!(errors.is_empty(), "{errors:?}");
    let strait_api::manifest::Object::TrafficRoute(local) = &objects[0].object else {
        panic!("not a route")
    };
    assert_eq!(&strait_api::manifest::TrafficRoute::from(&route), local);
    let (objects, _) = strait_api::manifest::parse_file("p", &policy_yaml);
    let strait_api::manifest::Object::DestinationPolicy(local) = &objects[0].object else {
        panic!("not a policy")
    };
    assert_eq!(
        &strait_api::manifest::DestinationPolicy::from(&policy),
        local
    );
}

/// The schema's numeric and duration bounds are the ones translation
/// enforces (`strait_api::bounds`): attributes repeat them as literals.
#[test]
fn schema_bounds_are_the_translation_bounds() {
    use strait_api::bounds;
    let gep = |d: std::time::Duration| match d.as_secs() {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    };
    let numbers: &[(&str, u32)] = &[
        ("attempts", bounds::ATTEMPTS),
        ("weight", bounds::WEIGHT),
        ("consecutiveFailures", bounds::CONSECUTIVE_FAILURES),
        ("minRequests", bounds::MIN_REQUESTS),
        ("maxConnections", bounds::LIMIT),
        ("maxPendingRequests", bounds::LIMIT),
        ("maxRequests", bounds::LIMIT),
        ("minPerSecond", bounds::RETRIES_PER_SECOND),
    ];
    let durations: &[(&str, std::time::Duration)] = &[
        ("timeout", bounds::TIMEOUT),
        ("perTryTimeout", bounds::TIMEOUT),
        ("duration", bounds::TIMEOUT),
        ("connect", bounds::TIMEOUT),
        ("backoff", bounds::BACKOFF),
        ("baseEjectionTime", bounds::EJECTION_TIME),
        ("maxEjectionTime", bounds::EJECTION_TIME),
        ("window", bounds::WINDOW),
        ("idle", bounds::IDLE),
    ];
    let mut nodes = Vec::new();
    let schemas: Vec<Value> = all().iter().map(schema_of).collect();
    for s in &schemas {
        walk(String::new(), s, &mut nodes);
    }
    let field = |name: &str| -> Vec<&Value> {
        let suffix = format!("/properties/{name}");
        nodes
            .iter()
            .filter(|(p, _)| p.ends_with(&suffix))
            .map(|(_, v)| *v)
            .collect()
    };
    for (name, max) in numbers {
        let found = field(name);
        assert!(!found.is_empty(), "{name} in the schemas");
        for v in found {
            assert_eq!(v["maximum"].as_f64(), Some(f64::from(*max)), "{name}: {v}");
        }
    }
    for (name, max) in durations {
        let found = field(name);
        assert!(!found.is_empty(), "{name} in the schemas");
        let rule = format!("duration(self) <= duration('{}')", gep(*max));
        for v in found {
            assert_eq!(
                v["x-kubernetes-validations"][0]["rule"],
                rule.as_str(),
                "{name}: {v}"
            );
        }
    }
    let ratio = field("ratio");
    assert_eq!(ratio.len(), 1);
    assert_eq!(
        ratio[0]["x-kubernetes-validations"][0]["rule"],
        format!("double(self) <= {:.1}", bounds::RETRY_RATIO)
    );
}
