//! The conditions an object's status should carry, from the store's verdict.
//! Pure: the status writer compares the result with what the object has and
//! patches only differences.

use crate::config::store::Rejection;

/// One desired condition (type, status, reason, message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// `Accepted` or `ResolvedRefs`.
    pub type_: &'static str,
    /// `True` or `False`.
    pub status: &'static str,
    /// CamelCase reason.
    pub reason: &'static str,
    /// For a person.
    pub message: String,
}

/// Whether a rejection is about a reference. The translation's messages for
/// missing Services and ports are "Service NS/NAME not found" and "Service
/// NS/NAME has no port P"; a test below pins them.
fn is_unresolved_ref(message: &str) -> bool {
    message.contains(" not found") || message.contains(" has no port ")
}

/// What an accepted object's setting relies on, for its `Accepted` message
/// (a user must not believe a setting protects them where it cannot).
///
/// `export_to` gives a Service's `strait.dev/export-to` annotation, if any
/// (`namespace`, `name`).
pub fn caveat(
    object: &strait_api::manifest::Object,
    export_to: &dyn Fn(&str, &str) -> Option<String>,
) -> Option<String> {
    match object {
        strait_api::manifest::Object::DestinationPolicy(p)
            if p.spec.tls.as_ref().is_some_and(|t| t.mode == "Strict") =>
        {
            let ns = p.metadata.namespace();
            let hidden = export_to(ns, &p.spec.target_ref.name).is_some_and(|a| {
                let audience = crate::config::scope::export_to(ns, Some(&a));
                !audience.includes(ns)
            });
            Some(if hidden {
                "tls.mode Strict is NOT enforced: the Service's strait.dev/export-to leaves out \
                 its own namespace, so the proxies in its pods never receive this policy; add \".\" to it."
                    .into()
            } else {
                "tls.mode Strict is enforced by the proxies in this Service's pods: \
                 a pod without a proxy (not meshed) still accepts plaintext."
                    .into()
            })
        }
        _ => None,
    }
}

/// The `Accepted` and `ResolvedRefs` conditions for an object; `caveat`
/// (see [`caveat`]) is appended to an accepted object's message.
pub fn desired(rejection: Option<&Rejection>, version: u64, caveat: Option<&str>) -> [Desired; 2] {
    let d = |type_, status, reason, message: String| Desired {
        type_,
        status,
        reason,
        message,
    };
    match rejection {
        None => [
            d(
                "Accepted",
                "True",
                "Accepted",
                match caveat {
                    None => format!("In force on every proxy from config version {version}."),
                    Some(c) => {
                        format!("In force on every proxy from config version {version}. {c}")
                    }
                },
            ),
            d(
                "ResolvedRefs",
                "True",
                "ResolvedRefs",
                "Every referenced Service and port exists.".into(),
            ),
        ],
        Some(r) => {
            let kept = if r.previous_in_force {
                " The previous version of this object stays in force."
            } else {
                " Not in force."
            };
            if is_unresolved_ref(&r.message) {
                [
                    d(
                        "Accepted",
                        "False",
                        "UnresolvedRefs",
                        format!("{}.{kept}", r.message),
                    ),
                    d(
                        "ResolvedRefs",
                        "False",
                        "BackendNotFound",
                        r.message.clone(),
                    ),
                ]
            } else {
                [
                    d(
                        "Accepted",
                        "False",
                        "Invalid",
                        format!("{}.{kept}", r.message),
                    ),
                    d(
                        "ResolvedRefs",
                        "True",
                        "ResolvedRefs",
                        "Every referenced Service and port exists.".into(),
                    ),
                ]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::store::Store;
    use strait_api::manifest::parse_file;

    fn rejection_for(route_rules: &str) -> Rejection {
        let yaml = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: ns}}\nspec: {{ports: [{{port: 80}}]}}\n---\napiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {{name: r, namespace: ns}}\nspec:\n  parentRef: {{name: web}}\n  rules:\n{route_rules}"
        );
        let (objects, e) = parse_file("t", &yaml);
        assert!(e.is_empty(), "{e:?}");
        let mut s = Store::default();
        for o in objects {
            s.upsert(o.object, String::new());
        }
        s.publish();
        s.rejections()
            .values()
            .next()
            .cloned()
            .expect("the route is rejected")
    }

    #[test]
    fn table() {
        let ok = desired(None, 7, None);
        assert_eq!((ok[0].status, ok[1].status), ("True", "True"));
        assert!(ok[0].message.contains("version 7"));
        // tls.mode Strict is accepted, and its message says what enforces it.
        for (mode, warned) in [("Strict", true), ("Permissive", false), ("Disabled", false)] {
            let yaml = format!(
                "apiVersion: strait.dev/v1alpha1\nkind: DestinationPolicy\nmetadata: {{name: p, namespace: ns}}\nspec:\n  targetRef: {{name: web}}\n  tls: {{mode: {mode}}}\n"
            );
            let (objects, errors) = strait_api::manifest::parse_file("p.yaml", &yaml);
            assert!(errors.is_empty(), "{errors:?}");
            let note = caveat(&objects[0].object, &|_, _| None);
            if mode == "Strict" {
                // The Service hidden from its own namespace: said loudly.
                let hidden = caveat(&objects[0].object, &|_, _| Some("frontend".into()));
                assert!(hidden.is_some_and(|m| m.contains("NOT enforced")));
                let shown = caveat(&objects[0].object, &|_, _| Some(".,frontend".into()));
                assert!(shown.is_some_and(|m| !m.contains("NOT enforced")));
            }
            assert_eq!(note.is_some(), warned, "{mode}");
            let c = desired(None, 3, note.as_deref());
            assert_eq!(c[0].status, "True");
            assert_eq!(
                c[0].message.contains("still accepts plaintext"),
                warned,
                "{mode}: {}",
                c[0].message
            );
        }
        // Missing backend Service → ResolvedRefs False (message pinned).
        let r = rejection_for("    - backends: [{name: ghost}]\n");
        let c = desired(Some(&r), 7, None);
        assert_eq!(
            (c[0].status, c[0].reason, c[1].status, c[1].reason),
            ("False", "UnresolvedRefs", "False", "BackendNotFound")
        );
        assert!(
            c[1].message.contains("Service ns/ghost not found"),
            "{:?}",
            c[1]
        );
        // Missing port too.
        let r = rejection_for("    - backends: [{name: web, port: 81}]\n");
        assert_eq!(desired(Some(&r), 1, None)[1].reason, "BackendNotFound");
        // A bad regex is invalid, not a reference problem.
        let r = rejection_for(
            "    - matches: [{path: {type: RegularExpression, value: \"([\"}}]\n      backends: [{name: web}]\n",
        );
        let c = desired(Some(&r), 1, None);
        assert_eq!((c[0].reason, c[1].status), ("Invalid", "True"));
        assert!(
            c[0].message.contains("does not compile") && c[0].message.contains("Not in force"),
            "{:?}",
            c[0]
        );
    }
}
