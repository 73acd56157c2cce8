//! kube-rs against the real server: create, watch, patch the status
//! subresource and read it back; the spec survives the trip unchanged.

use crate::support::{ApiServer, repo};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use std::sync::Arc;
use std::time::Duration;
use strait_api::manifest::{self as api, Object};
use strait_control_plane::crd::{Condition, DestinationPolicy, RouteStatus, TrafficRoute, status};
use tokio::sync::mpsc;

const NS: &str = "round-trip";
const WAIT: Duration = Duration::from_secs(20);

pub async fn run(server: Arc<ApiServer>) {
    let client = server.client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(NS.into());
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();

    let (route_spec, policy_spec) = example_specs();
    let routes: Api<TrafficRoute> = Api::namespaced(client.clone(), NS);

    // Watch first, so the create arrives as a watch event, not in the list.
    let (tx, mut events) = mpsc::unbounded_channel();
    let watch = AbortOnDrop(tokio::spawn({
        let routes = routes.clone();
        async move {
            let mut stream = watcher(routes, watcher::Config::default()).boxed();
            while let Some(event) = stream.next().await {
                match event {
                    Ok(event) => {
                        if tx.send(event).is_err() {
                            break;
                        }
                    }
                    Err(e) => eprintln!("watch error: {e}"),
                }
            }
        }
    }));
    next_event(&mut events, "initial list", |e| {
        matches!(e, watcher::Event::InitDone)
    })
    .await;

    // Create: the server keeps every field and sets generation 1.
    let created = routes
        .create(
            &PostParams::default(),
            &TrafficRoute::new("web", route_spec.clone().into()),
        )
        .await
        .unwrap();
    assert_eq!(
        api::TrafficRouteSpec::from(created.spec.clone()),
        route_spec
    );
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.status, None);
    let uid = created.metadata.uid.clone();
    next_event(
        &mut events,
        "create",
        |e| matches!(e, watcher::Event::Apply(o) if o.metadata.uid == uid),
    )
    .await;

    // Status, as the controller will write it (server-side apply on the
    // status subresource). It does not bump the generation.
    let status = RouteStatus {
        conditions: vec![
            condition(status::ACCEPTED, "True", "Accepted", "", 1),
            condition(status::RESOLVED_REFS, "True", "ResolvedRefs", "", 1),
        ],
    };
    let patch = serde_json::json!({
        "apiVersion": "strait.dev/v1alpha1",
        "kind": "TrafficRoute",
        "status": status,
    });
    let ssa = PatchParams::apply("strait-test").force();
    routes
        .patch_status("web", &ssa, &Patch::Apply(&patch))
        .await
        .unwrap();
    let seen = next_event(
        &mut events,
        "status patch",
        |e| matches!(e, watcher::Event::Apply(o) if o.status.is_some()),
    )
    .await;
    let watcher::Event::Apply(seen) = seen else {
        unreachable!()
    };
    assert_eq!(seen.status.as_ref(), Some(&status));

    let read = routes.get_status("web").await.unwrap();
    assert_eq!(read.metadata.generation, Some(1));
    let got = read.status.clone().unwrap();
    let accepted = got.condition(status::ACCEPTED).unwrap();
    assert_eq!(
        (accepted.status.as_str(), accepted.observed_generation),
        ("True", Some(1))
    );
    assert_eq!(got, status);

    // A spec change bumps the generation; the status now lags behind it,
    // which is how a reader tells a stale status.
    let mut changed = route_spec.clone();
    changed.rules[1].backends[0].weight = Some(50);
    let patched = routes
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": changed})),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.generation, Some(2));
    assert_eq!(
        patched.status.unwrap().conditions[0].observed_generation,
        Some(1)
    );

    // The main resource ignores status: only the subresource writes it.
    let ignored = routes
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"conditions": []}})),
        )
        .await
        .unwrap();
    assert_eq!(ignored.status.unwrap().conditions.len(), 2);

    // kube-rs gets the schema's refusals as API errors.
    let mut bad = route_spec.clone();
    bad.rules[1].retry.as_mut().unwrap().per_try_timeout = Some("5s".into());
    let err = routes
        .create(
            &PostParams::default(),
            &TrafficRoute::new("bad", bad.into()),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("not an API error: {err}")
    };
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status
            .message
            .contains("must not be longer than the rule's timeout"),
        "{status:?}"
    );

    // Delete: the watcher sees it go.
    routes.delete("web", &Default::default()).await.unwrap();
    next_event(
        &mut events,
        "delete",
        |e| matches!(e, watcher::Event::Delete(o) if o.metadata.uid == uid),
    )
    .await;
    drop(watch);

    // DestinationPolicy: the same trip, shorter.
    let policies: Api<DestinationPolicy> = Api::namespaced(client, NS);
    let created = policies
        .create(
            &PostParams::default(),
            &DestinationPolicy::new("web-v1", policy_spec.clone().into()),
        )
        .await
        .unwrap();
    assert_eq!(api::DestinationPolicySpec::from(created.spec), policy_spec);
    let status = RouteStatus {
        conditions: vec![condition(
            status::RESOLVED_REFS,
            "False",
            "BackendNotFound",
            "Service round-trip/web-v1 not found",
            1,
        )],
    };
    let patch = serde_json::json!({
        "apiVersion": "strait.dev/v1alpha1",
        "kind": "DestinationPolicy",
        "status": status,
    });
    policies
        .patch_status("web-v1", &ssa, &Patch::Apply(&patch))
        .await
        .unwrap();
    let read = policies.get_status("web-v1").await.unwrap();
    assert_eq!(read.status, Some(status));
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, generation: i64) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: Some(generation),
        // Whole seconds: that is what the API server stores.
        last_transition_time: Time(
            k8s_openapi::jiff::Timestamp::from_second(
                k8s_openapi::jiff::Timestamp::now().as_second(),
            )
            .unwrap(),
        ),
    }
}

/// The specs of the shop example, read by the proxy's loader.
fn example_specs() -> (api::TrafficRouteSpec, api::DestinationPolicySpec) {
    let dir = repo().join("examples/shop");
    let read = |file: &str| {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let (mut objects, errors) = api::parse_file(file, &text);
        assert!(errors.is_empty(), "{errors:?}");
        objects.remove(0).object
    };
    let Object::TrafficRoute(route) = read("trafficroute.yaml") else {
        panic!("no TrafficRoute")
    };
    let Object::DestinationPolicy(policy) = read("destinationpolicy.yaml") else {
        panic!("no DestinationPolicy")
    };
    (route.spec, policy.spec)
}

/// Ends the watch task when the scenario ends, also by a panic.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Waits for the first event that `want` accepts; panics after [`WAIT`].
async fn next_event(
    events: &mut mpsc::UnboundedReceiver<watcher::Event<TrafficRoute>>,
    what: &str,
    want: impl Fn(&watcher::Event<TrafficRoute>) -> bool,
) -> watcher::Event<TrafficRoute> {
    let found = tokio::time::timeout(WAIT, async {
        while let Some(event) = events.recv().await {
            if want(&event) {
                return Some(event);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(event)) => event,
        Ok(None) => panic!("watch ended before the {what} event"),
        Err(_) => panic!("no watch event for the {what} within {WAIT:?}"),
    }
}
