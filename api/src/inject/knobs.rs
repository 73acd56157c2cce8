//! The per-pod knobs: `config.strait.dev/<knob>` annotations on the pod or,
//! failing that, its namespace, each checked here. A bad value never blocks
//! a pod: the knob falls back to its default and the caller gets a warning
//! that names the annotation (the webhook returns it to kubectl, which
//! prints it).

use std::collections::BTreeMap;

/// Annotation prefix of every knob.
pub const PREFIX: &str = "config.strait.dev/";

/// The knobs, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knobs {
    /// Incoming ports (or `a:b` ranges) not redirected to the proxy.
    pub skip_inbound_ports: Vec<String>,
    /// Outgoing ports (or ranges) not redirected to the proxy.
    pub skip_outbound_ports: Vec<String>,
    /// Ports carried as opaque TCP, without protocol detection.
    pub opaque_ports: Vec<u16>,
    /// The proxy's log filter.
    pub log_level: String,
    /// Kubernetes resource quantities for the proxy container.
    pub cpu_request: String,
    /// CPU limit; empty for none.
    pub cpu_limit: String,
    /// Memory request.
    pub memory_request: String,
    /// Memory limit; empty for none.
    pub memory_limit: String,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            skip_inbound_ports: vec![],
            skip_outbound_ports: vec![],
            opaque_ports: vec![],
            log_level: "info".into(),
            cpu_request: "10m".into(),
            cpu_limit: String::new(),
            memory_request: "20Mi".into(),
            memory_limit: "128Mi".into(),
        }
    }
}

/// Every knob the injector reads, by annotation suffix.
pub const KNOWN: [&str; 8] = [
    "skip-inbound-ports",
    "skip-outbound-ports",
    "opaque-ports",
    "proxy-log-level",
    "proxy-cpu-request",
    "proxy-cpu-limit",
    "proxy-memory-request",
    "proxy-memory-limit",
];

/// Reads the knobs: the pod's annotation wins over the namespace's; a value
/// that does not validate keeps the default and adds a warning.
pub fn read(
    pod: &BTreeMap<String, String>,
    namespace: &BTreeMap<String, String>,
    defaults: &Knobs,
) -> (Knobs, Vec<String>) {
    let mut k = defaults.clone();
    let mut warnings = Vec::new();
    let get = |name: &str| -> Option<(String, &str)> {
        let key = format!("{PREFIX}{name}");
        pod.get(&key)
            .map(|v| (key.clone(), v.as_str()))
            .or_else(|| namespace.get(&key).map(|v| (key.clone(), v.as_str())))
    };
    let mut check = |name: &str, ok: &dyn Fn(&str) -> bool, what: &str| -> Option<String> {
        let (key, value) = get(name)?;
        let value = value.trim();
        if ok(value) {
            Some(value.to_owned())
        } else {
            warnings.push(format!(
                "annotation {key}: {value:?} is not {what}; the proxy uses the default for it"
            ));
            None
        }
    };
    if let Some(v) = check(
        "skip-inbound-ports",
        &is_port_list,
        "a port list such as 8080,9000:9100",
    ) {
        k.skip_inbound_ports = split(&v);
    }
    if let Some(v) = check(
        "skip-outbound-ports",
        &is_port_list,
        "a port list such as 8080,9000:9100",
    ) {
        k.skip_outbound_ports = split(&v);
    }
    if let Some(v) = check(
        "opaque-ports",
        &is_plain_port_list,
        "a list of ports such as 3306,5432",
    ) {
        k.opaque_ports = split(&v).iter().filter_map(|p| p.parse().ok()).collect();
    }
    if let Some(v) = check(
        "proxy-log-level",
        &is_log_filter,
        "a log filter such as info or strait_proxy=debug",
    ) {
        k.log_level = v;
    }
    let quantity = "a Kubernetes quantity such as 100m or 64Mi";
    if let Some(v) = check("proxy-cpu-request", &is_quantity, quantity) {
        k.cpu_request = v;
    }
    if let Some(v) = check("proxy-cpu-limit", &is_quantity, quantity) {
        k.cpu_limit = v;
    }
    if let Some(v) = check("proxy-memory-request", &is_quantity, quantity) {
        k.memory_request = v;
    }
    if let Some(v) = check("proxy-memory-limit", &is_quantity, quantity) {
        k.memory_limit = v;
    }
    // Each quantity may be valid and the pair still not: Kubernetes refuses
    // a container whose request is above its limit, and a pod the API
    // server refuses is a Deployment that never gets pods. Both fall back.
    for (what, request, limit, default_request, default_limit) in [
        (
            "cpu",
            &mut k.cpu_request,
            &mut k.cpu_limit,
            &defaults.cpu_request,
            &defaults.cpu_limit,
        ),
        (
            "memory",
            &mut k.memory_request,
            &mut k.memory_limit,
            &defaults.memory_request,
            &defaults.memory_limit,
        ),
    ] {
        if let (Some(r), Some(l)) = (quantity_nanos(request), quantity_nanos(limit))
            && r > l
        {
            warnings.push(format!(
                "annotations {PREFIX}proxy-{what}-request ({request}) and {PREFIX}proxy-{what}-limit ({limit}): the request is above the limit, which Kubernetes refuses; the proxy uses the defaults for both ({}, {})",
                or_none(default_request),
                or_none(default_limit),
            ));
            *request = default_request.clone();
            *limit = default_limit.clone();
        }
    }
    // A knob we do not know is most likely a typo: say so, do not guess.
    for key in pod.keys().chain(namespace.keys()) {
        if let Some(name) = key.strip_prefix(PREFIX)
            && !KNOWN.contains(&name)
        {
            warnings.push(format!(
                "annotation {key} is not a Strait knob (known: {}); it is ignored",
                KNOWN.join(", ")
            ));
        }
    }
    warnings.dedup();
    (k, warnings)
}

fn split(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn is_port(p: &str) -> bool {
    p.parse::<u16>().is_ok_and(|n| n > 0)
}

/// `80,443,9000:9100` (ranges with `:` as iptables writes them, or `-`).
fn is_port_list(v: &str) -> bool {
    !split(v).is_empty()
        && split(v).iter().all(|p| match p.split_once([':', '-']) {
            Some((a, b)) => {
                is_port(a) && is_port(b) && a.parse::<u16>().ok() <= b.parse::<u16>().ok()
            }
            None => is_port(p),
        })
}

fn is_plain_port_list(v: &str) -> bool {
    !split(v).is_empty() && split(v).iter().all(|p| is_port(p))
}

fn is_log_filter(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 200
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_=,:.-".contains(&b))
}

/// A Kubernetes resource quantity: digits with an optional fraction and
/// one of the suffixes the API server accepts.
fn is_quantity(v: &str) -> bool {
    let (num, suffix) = split_quantity(v);
    !num.is_empty()
        && num.bytes().filter(|b| *b == b'.').count() <= 1
        && num.bytes().any(|b| b.is_ascii_digit())
        && ["", "m", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti"].contains(&suffix)
}

/// A quantity's number and suffix: `1.5Gi` → (`1.5`, `Gi`).
fn split_quantity(v: &str) -> (&str, &str) {
    let digits_end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    v.split_at(digits_end)
}

/// A valid quantity's exact value in nano-units (nanocores, nanobytes),
/// compared as integers: `700m` and `0.7` are the same amount, which
/// floating point would not say. `None` when empty, invalid or too large.
fn quantity_nanos(v: &str) -> Option<u128> {
    if !is_quantity(v) {
        return None;
    }
    let (num, suffix) = split_quantity(v);
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.len() + frac.len() > 30 {
        return None;
    }
    let digits: u128 = format!("{int}{frac}").parse().ok()?;
    let (pow10, pow1024): (i64, u32) = match suffix {
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "Ki" => (0, 1),
        "Mi" => (0, 2),
        "Gi" => (0, 3),
        "Ti" => (0, 4),
        _ => (0, 0),
    };
    let n = digits.checked_mul(1024u128.checked_pow(pow1024)?)?;
    let exp = 9 + pow10 - frac.len() as i64;
    if exp >= 0 {
        n.checked_mul(10u128.checked_pow(u32::try_from(exp).ok()?)?)
    } else {
        Some(n / 10u128.checked_pow(u32::try_from(-exp).ok()?)?)
    }
}

fn or_none(v: &str) -> &str {
    if v.is_empty() { "none" } else { v }
}

/// Port ranges as the proxy's `init` takes them (`a:b`).
pub fn iptables_ports(ports: &[String]) -> Vec<String> {
    ports.iter().map(|p| p.replace('-', ":")).collect()
}
