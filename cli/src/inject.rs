//! `strait inject` and `strait uninject`: the injector's own pure function
//! (`strait_api::inject`), offline, over YAML. Deployments, StatefulSets,
//! DaemonSets, ReplicaSets, Jobs, CronJobs and Pods get (or lose) the proxy
//! in their pod template; Lists are walked; every other kind passes through
//! unchanged. Like `linkerd inject`, the output is YAML for `kubectl apply`.

use anyhow::Context;
use serde_json::Value;
use std::collections::BTreeMap;
use strait_api::inject::{self, Mode, Outcome, Settings, knobs::Knobs};

/// What to do to each pod template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Add the proxy.
    Inject,
    /// Remove it.
    Uninject,
}

/// The settings an offline injection uses: the same defaults as the chart.
pub fn settings(control_plane: &str, image: &str) -> Settings {
    Settings {
        image: image.to_owned(),
        image_pull_policy: "IfNotPresent".into(),
        control_plane: control_plane.to_owned(),
        version: env!("CARGO_PKG_VERSION").into(),
        identity_audience: strait_api::identity::TOKEN_AUDIENCE.into(),
        // The identity service runs beside the config stream, on 8080.
        identity_addr: match control_plane.rsplit_once(':') {
            Some((host, _)) => format!("{host}:8080"),
            None => format!("{control_plane}:8080"),
        },
        trust_domain: strait_api::identity::DEFAULT_TRUST_DOMAIN.into(),
        // Offline there are no roots to give: such a proxy reaches the
        // control plane in plaintext (its mesh traffic is still mTLS).
        trust_roots: String::new(),
        control_plane_identity: String::new(),
        defaults: Knobs::default(),
    }
}

/// Where a kind keeps its pod template.
fn template_path(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some(""),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// Injects or uninjects every object of a multi-document YAML text; returns
/// the YAML and one report line per workload (to stderr).
pub fn run(
    yaml: &str,
    action: Action,
    settings: &Settings,
) -> anyhow::Result<(String, Vec<String>)> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).context("reading the YAML")?;
    let mut report = Vec::new();
    let mut out = Vec::new();
    for mut doc in docs.into_iter().filter(|d| !d.is_null()) {
        walk(&mut doc, action, settings, &mut report);
        out.push(doc);
    }
    let text = serde_saphyr::to_string_multiple(&out).context("writing the YAML")?;
    Ok((text, report))
}

fn walk(obj: &mut Value, action: Action, settings: &Settings, report: &mut Vec<String>) {
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if kind == "List" || kind.ends_with("List") {
        if let Some(items) = obj.get_mut("items").and_then(Value::as_array_mut) {
            for item in items {
                walk(item, action, settings, report);
            }
        }
        return;
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
        .to_owned();
    let what = format!("{} {name}", kind.to_lowercase());
    let Some(path) = template_path(&kind) else {
        return;
    };
    let Some(template) = (if path.is_empty() {
        Some(&mut *obj)
    } else {
        obj.pointer_mut(path)
    }) else {
        report.push(format!("{what}: no pod template, left as it is"));
        return;
    };
    match action {
        Action::Inject => {
            match inject::inject(template, &BTreeMap::new(), settings, Mode::Manual) {
                Outcome::Injected { pod, warnings } => {
                    *template = pod;
                    report.push(format!("{what} injected"));
                    report.extend(
                        warnings
                            .into_iter()
                            .map(|w| format!("{what}: warning: {w}")),
                    );
                }
                Outcome::Skipped(why) => report.push(format!("{what} skipped: {why}")),
            }
        }
        Action::Uninject => match inject::uninject(template) {
            Some(pod) => {
                *template = pod;
                report.push(format!("{what} uninjected"));
            }
            None => report.push(format!("{what} was not injected")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: "web:1"}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: [{name: a, image: a}]}}
  - apiVersion: batch/v1
    kind: CronJob
    metadata: {name: nightly}
    spec: {jobTemplate: {spec: {template: {spec: {containers: [{name: j, image: j}]}}}}}
  - apiVersion: apps/v1
    kind: DaemonSet
    metadata: {name: agent}
    spec: {template: {spec: {hostNetwork: true, containers: [{name: d, image: d}]}}}
"#;

    #[test]
    fn inject_then_uninject_round_trips_and_leaves_other_kinds() {
        let s = settings("cp:8086", "proxy:1");
        let (out, report) = run(INPUT, Action::Inject, &s).unwrap();
        assert_eq!(
            report,
            [
                "deployment web injected",
                "pod p injected",
                "cronjob nightly injected",
                "daemonset agent skipped: host-network pods share the node's network and are not meshed",
            ]
        );
        let docs: Vec<Value> = serde_saphyr::from_multiple(&out).unwrap();
        assert!(inject::is_injected(
            docs[0].pointer("/spec/template").unwrap()
        ));
        assert_eq!(
            docs[1],
            serde_saphyr::from_multiple::<Value>(INPUT).unwrap()[1],
            "a Service passes unchanged"
        );
        assert!(inject::is_injected(&docs[2]["items"][0]));
        assert!(inject::is_injected(
            docs[2]["items"][1]
                .pointer("/spec/jobTemplate/spec/template")
                .unwrap()
        ));
        // Injecting twice changes nothing.
        let (again, report) = run(&out, Action::Inject, &s).unwrap();
        assert_eq!(again, out);
        assert!(report.iter().all(|r| r.contains("skipped")), "{report:?}");
        // Uninject gives back the input.
        let (back, _) = run(&out, Action::Uninject, &s).unwrap();
        let want: Vec<Value> = serde_saphyr::from_multiple(INPUT).unwrap();
        let got: Vec<Value> = serde_saphyr::from_multiple(&back).unwrap();
        assert_eq!(
            got,
            want.into_iter()
                .filter(|d| !d.is_null())
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn bad_yaml_is_an_error() {
        let s = settings("cp:8086", "proxy:1");
        assert!(run("kind: [unclosed", Action::Inject, &s).is_err());
    }
}
