use super::*;

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  clusterIP: 10.96.0.10
  ports:
    - name: http
      port: 80
";

#[test]
fn multi_document_file_with_other_kinds() {
    let text = format!(
        "# leading comment\n---\n{SERVICE}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: x}}\n---\n# only a comment\n---\napiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {{name: web, namespace: shop}}\nspec:\n  parentRef: {{name: web}}\n  rules:\n    - backends: [{{name: web}}]\n"
    );
    let (objects, errors) = parse_file("a.yaml", &text);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(objects.len(), 2);
    assert!(matches!(objects[0].object, Object::Service(_)));
    assert_eq!(objects[0].line, 3);
    assert!(matches!(objects[1].object, Object::TrafficRoute(_)));
    assert_eq!(objects[1].line, 20);
}

#[test]
fn errors_carry_file_and_line() {
    // (yaml, expected line, expected message fragment)
    let table = [
        // A typo in a Strait field is refused, on the line of the field.
        (
            "apiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {name: r}\nspec:\n  parentRef: {name: web}\n  rules:\n    - backends: [{name: web, weigth: 3}]\n",
            7,
            "weigth",
        ),
        ("kind: Service\nmetadata: {name: x}\n", 1, "apiVersion"),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports:\n    - port: notanumber\n",
            6,
            "port",
        ),
        ("apiVersion: v1\nkind: Service\nmetadata: [\n", 3, ""),
        (
            "apiVersion: strait.dev/v1beta9\nkind: TrafficRoute\nmetadata: {name: r}\n",
            1,
            "v1alpha1",
        ),
    ];
    for (yaml, line, fragment) in table {
        let text = format!("{SERVICE}---\n{yaml}");
        let (_, errors) = parse_file("dir/bad.yaml", &text);
        assert_eq!(errors.len(), 1, "{yaml}: {errors:?}");
        let e = &errors[0];
        assert_eq!(e.file, "dir/bad.yaml");
        // The second document starts on line 12.
        assert_eq!(e.line, 11 + line, "{yaml}: {e}");
        assert!(e.message.contains(fragment), "{yaml}: {e}");
        assert!(
            e.to_string()
                .starts_with(&format!("dir/bad.yaml:{}:", 11 + line))
        );
    }
}

#[test]
fn decimals_accept_strings_and_numbers() {
    let yaml = "apiVersion: strait.dev/v1alpha1\nkind: DestinationPolicy\nmetadata: {name: p}\nspec:\n  targetRef: {name: web}\n  retryBudget: {ratio: 0.25, minPerSecond: 5}\n  circuitBreaker:\n    successRate: {threshold: \"0.8\"}\n";
    let (objects, errors) = parse_file("p.yaml", yaml);
    assert!(errors.is_empty(), "{errors:?}");
    let Object::DestinationPolicy(p) = &objects[0].object else {
        panic!("not a policy")
    };
    assert_eq!(
        p.spec.retry_budget.as_ref().and_then(|b| b.ratio.clone()),
        Some(Decimal("0.25".into()))
    );
    assert_eq!(
        p.spec
            .circuit_breaker
            .as_ref()
            .and_then(|c| c.success_rate.as_ref())
            .map(|s| s.threshold.clone()),
        Some(Decimal("0.8".into()))
    );
}

#[test]
fn hostile_input_does_not_panic() {
    let inputs = [
        "",
        "---\n---\n",
        "apiVersion: v1\nkind: Service\n",
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 70000}]}\n",
        "&a [*a, *a, *a]",
        "apiVersion: [1]\nkind: {a: b}\n",
        "\u{0}\u{1}binary",
        "a: &x b\nc: *y\n",
    ];
    for input in inputs {
        let _ = parse_file("f.yaml", input);
    }
}

#[test]
fn json_objects_parse_like_yaml_and_know_their_key() {
    let json = r#"{"apiVersion":"strait.dev/v1alpha1","kind":"TrafficRoute","metadata":{"name":"r","namespace":"shop","resourceVersion":"7"},"spec":{"parentRef":{"name":"web"},"rules":[{"backends":[{"name":"web"}]}]},"status":{"conditions":[]}}"#;
    let o = parse_json("TrafficRoute", json).unwrap();
    assert_eq!(o.key(), ("TrafficRoute", "shop", "r"));
    let bad =
        r#"{"metadata":{"name":"r"},"spec":{"parentRef":{"name":"web"},"rules":[],"extra":1}}"#;
    assert!(
        parse_json("TrafficRoute", bad)
            .unwrap_err()
            .contains("extra")
    );
    assert!(parse_json("Deployment", "{}").is_err());
    let svc = parse_json(
        "Service",
        r#"{"metadata":{"name":"s"},"spec":{"ports":[{"port":80}]}}"#,
    )
    .unwrap();
    assert_eq!(svc.key(), ("Service", "default", "s"));
}

#[test]
fn cr_only_line_endings_split_documents_and_count_lines() {
    let text = SERVICE.replace('\n', "\r")
        + "---\r"
        + &SERVICE
            .replace("name: web", "name: api")
            .replace('\n', "\r");
    let (objects, errors) = parse_file("cr.yaml", &text);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[1].line, 12);
    let (_, errors) = parse_file(
        "cr.yaml",
        "apiVersion: v1\rkind: Service\rmetadata: {name: x}\rspec:\r  ports:\r    - port: nope\r",
    );
    assert_eq!(errors[0].line, 6, "{errors:?}");
}

#[test]
fn documents_as_the_yaml_library_splits_them() {
    // A document that starts on its `---` line, a `---` inside a block
    // scalar (not a boundary), a broken document between two good ones.
    let text = "--- {apiVersion: v1, kind: Service, metadata: {name: a, namespace: ns}, spec: {ports: [{port: 80}]}}\n\
---\n\
apiVersion: v1\n\
kind: Service\n\
metadata:\n  name: b\n  namespace: ns\n  annotations:\n    note: |\n      ---\n      not a boundary\n\
spec: {ports: [{port: 80}]}\n\
---\n\
apiVersion: v1\n\
kind: Service\n\
metadata: {name: [broken\n\
---\n\
apiVersion: apps/v1\n\
kind: Deployment\n\
metadata: {name: r}\n\
---\n\
apiVersion: v1\n\
kind: Service\n\
metadata: {name: c, namespace: ns}\n\
spec: {ports: [{port: 80}]}\n";
    let (objects, errors) = parse_file("f.yaml", text);
    let names: Vec<(String, usize)> = objects
        .iter()
        .map(|o| (o.object.describe(), o.line))
        .collect();
    assert_eq!(
        names,
        [
            ("Service ns/a".to_string(), 1),
            ("Service ns/b".to_string(), 3),
            ("Service ns/c".to_string(), 22)
        ]
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].line, 16, "{errors:?}");
    assert_eq!(
        skipped(text),
        [Skipped {
            line: 18,
            kind: "apps/v1/Deployment".into()
        }]
    );
}

#[test]
fn a_document_or_object_larger_than_a_kubernetes_object_is_refused() {
    let big = "x".repeat(crate::bounds::DOCUMENT_BYTES);
    let text = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: ok}}\nspec: {{ports: [{{port: 80}}]}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: big, annotations: {{pad: \"{big}\"}}}}\nspec: {{ports: [{{port: 80}}]}}\n"
    );
    let (objects, errors) = parse_file("big.yaml", &text);
    assert_eq!(objects.len(), 1, "the small document is still read");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, 6, "the big document starts after its ---");
    assert!(
        errors[0].message.contains("more than the 1572864"),
        "{}",
        errors[0]
    );
    let json = format!(
        "{{\"metadata\": {{\"name\": \"big\", \"annotations\": {{\"pad\": \"{big}\"}}}}, \"spec\": {{\"ports\": [{{\"port\": 80}}]}}}}"
    );
    let e = parse_json("Service", &json).unwrap_err();
    assert!(e.contains("more than the 1572864"), "{e}");
}
