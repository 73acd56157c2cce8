//! Table tests of the verdicts.

use super::verdicts::*;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use strait_api::wire::{ProxyInfo, ProxyStatusResponse};
#[test]
fn versions() {
    for (major, minor, ok) in [
        ("1", "29", true),
        ("1", "37", true),
        ("1", "30+", true),
        ("1", "28", false),
        ("2", "0", false),
        ("1", "x", false),
    ] {
        assert_eq!(version_verdict(major, minor, "v").ok, ok, "{major}.{minor}");
    }
}

#[test]
fn certificates() {
    let day = 86_400;
    for (left, ca, want) in [
        (30 * day, true, [true, true]),
        (7 * day, true, [true, true]),
        (7 * day - 1, true, [false, true]),
        (-day, false, [false, false]),
    ] {
        let got: Vec<bool> = cert_verdict(left, 0, ca, "mesh")
            .iter()
            .map(|c| c.ok)
            .collect();
        assert_eq!(got, want, "{left}s left, ca matches {ca}");
    }
}

#[test]
fn crds_at_this_versions_schema() {
    for (crd, yaml) in CRD_FILES {
        let current: CustomResourceDefinition = serde_saphyr::from_str(yaml).unwrap();
        assert!(crd_verdict("c", &current, crd).ok, "{crd} as shipped");
        // An older schema: one property fewer.
        let mut older = current.clone();
        let schema = older.spec.versions[0].schema.as_mut().unwrap();
        let spec = schema
            .open_api_v3_schema
            .as_mut()
            .unwrap()
            .properties
            .as_mut()
            .unwrap();
        let spec = spec.get_mut("spec").unwrap().properties.as_mut().unwrap();
        let first = spec.keys().next().unwrap().clone();
        spec.remove(&first);
        let v = crd_verdict("c", &older, crd);
        assert!(
            !v.ok && v.hint.contains("kubectl apply"),
            "{crd} without {first}: {v:?}"
        );
        // Only a description reworded: the same schema.
        let mut reworded = current.clone();
        let schema = reworded.spec.versions[0].schema.as_mut().unwrap();
        schema.open_api_v3_schema.as_mut().unwrap().description = Some("said another way".into());
        assert!(crd_verdict("c", &reworded, crd).ok, "{crd} reworded");
        // Not served.
        let mut unserved = current.clone();
        unserved.spec.versions[0].served = false;
        assert!(!crd_verdict("c", &unserved, crd).ok, "{crd} not served");
    }
}

#[test]
fn leaders() {
    let ready = vec!["c-1".to_owned(), "c-2".to_owned()];
    assert!(leader_verdict(Some("c-1"), Some(3), 15, &ready, "mesh").ok);
    assert!(
        !leader_verdict(Some("c-1"), Some(30), 15, &ready, "mesh").ok,
        "stale renewal"
    );
    assert!(
        !leader_verdict(Some("gone"), Some(1), 15, &ready, "mesh").ok,
        "holder not ready"
    );
    let none = leader_verdict(None, None, 15, &ready, "mesh");
    assert!(!none.ok);
    assert!(
        none.hint.contains("kubectl -n mesh "),
        "hints name the namespace given: {none:?}"
    );
}

#[test]
fn proxies() {
    let info = |pod: &str, acked: u64| ProxyInfo {
        namespace: "shop".into(),
        pod: pod.into(),
        acked_version: acked,
        sent_version: acked,
        ..Default::default()
    };
    let statuses = [ProxyStatusResponse {
        proxies: vec![info("a", 5), info("b", 4)],
        latest_version: 5,
        replica: "c-1".into(),
    }];
    let meshed = [
        ("shop/a".to_owned(), true),
        ("shop/b".to_owned(), true),
        ("shop/c".to_owned(), true),
        ("shop/d".to_owned(), false),
    ];
    let v = proxy_verdicts(&meshed, &statuses);
    assert_eq!(
        v.iter().map(|c| c.ok).collect::<Vec<_>>(),
        [true, false, false, false]
    );
    assert!(v[2].detail.contains("not connected"));
    assert!(v[3].detail.contains("no proxy") && v[3].hint.contains("delete pod d"));
    let text = render(&v, false);
    assert!(
        text.contains("✔ proxy of shop/a")
            && text.contains("✘ proxy of shop/d")
            && text.contains("3 check(s) failed")
    );
    let j: serde_json::Value = serde_json::from_str(&render(&v, true)).unwrap();
    assert_eq!(j["ok"], false);
    assert_eq!(j["checks"].as_array().unwrap().len(), 4);
}
