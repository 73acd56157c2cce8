//! `strait-cp-bench`: the control plane at scale.
//!
//! Driven by `bench/control-plane/run.sh`, against a real kube-apiserver and
//! a real `strait-controller`:
//!
//! * `setup` creates the objects: `--services` Services with one
//!   EndpointSlice of `--endpoints` endpoints each (10.100.0.0/16, data only,
//!   never contacted), plus `web`, `web-v1`, `web-v2` and a TrafficRoute on
//!   `web`.
//! * `run` waits until the controller publishes all of it, opens `--proxies`
//!   config streams (each a simulated proxy: Hello, then ACK every version
//!   the moment it arrives), then changes the TrafficRoute and an
//!   EndpointSlice through the API server `--changes` times each and times
//!   how long until every stream has the change. It samples the
//!   controller's RSS and CPU from /proc, times `Store::publish` in-process
//!   with the same objects, and writes a markdown table.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use prost::Message;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use strait_api::wire::config_discovery_client::ConfigDiscoveryClient;
use strait_api::wire::{Ack, ConfigUpdate, Hello, ProxyMessage, ProxyStatusRequest, proxy_message};
use strait_control_plane::config::parts::{PART_BYTES, to_parts};
use strait_control_plane::config::store::Store;
use strait_control_plane::k8s::watch::convert;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

#[derive(Parser)]
#[command(about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the namespaces, Services, EndpointSlices and the TrafficRoute.
    Setup(SetupArgs),
    /// Connect the simulated proxies and measure.
    Run(RunArgs),
}

#[derive(Args, Clone)]
struct SetupArgs {
    /// Namespace of the benchmark's objects.
    #[arg(long, default_value = "bench")]
    namespace: String,
    /// Namespace for the controller's Lease (created too).
    #[arg(long, default_value = "strait-system")]
    lease_namespace: String,
    /// Filler Services, each with one EndpointSlice.
    #[arg(long, default_value_t = 100)]
    services: usize,
    /// Endpoints per filler EndpointSlice (at most 1000).
    #[arg(long, default_value_t = 100)]
    endpoints: usize,
}

#[derive(Args, Clone)]
struct RunArgs {
    #[command(flatten)]
    setup: SetupArgs,
    /// The controller's config stream address.
    #[arg(long)]
    addr: String,
    /// The controller's pid (for RSS and CPU from /proc).
    #[arg(long)]
    controller_pid: u32,
    /// The controller's log (its "config published" lines give the
    /// publish time of each version).
    #[arg(long)]
    controller_log: Option<PathBuf>,
    /// Simulated proxies (one config stream each).
    #[arg(long, default_value_t = 1000)]
    proxies: usize,
    /// HTTP/2 connections the streams are spread over (= proxies: one
    /// connection per proxy, as in a real mesh).
    #[arg(long, default_value_t = 1000)]
    channels: usize,
    /// Changes of each kind (TrafficRoute, EndpointSlice).
    #[arg(long, default_value_t = 50)]
    changes: usize,
    /// Pause between changes, after the previous one has reached everyone.
    #[arg(long, default_value_t = 300)]
    interval_ms: u64,
    /// Largest message a simulated proxy accepts (the real proxy keeps
    /// tonic's default, 4 MiB).
    #[arg(long, default_value_t = 4)]
    max_message_mib: usize,
    /// Where to write the markdown table.
    #[arg(long)]
    out: PathBuf,
    /// Where to write the raw numbers (JSON).
    #[arg(long)]
    json: Option<PathBuf>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = Client::try_default()
        .await
        .context("kube client (set KUBECONFIG)")?;
    match cli.cmd {
        Cmd::Setup(a) => setup(client, &a).await,
        Cmd::Run(a) => run(client, &a).await,
    }
}

// ---------------------------------------------------------------- objects --

fn route_ar() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("strait.dev", "v1alpha1", "TrafficRoute"),
        "trafficroutes",
    )
}

fn filler_name(i: usize) -> String {
    format!("svc-{i:03}")
}

fn endpoint(ns: &str, pod: &str, ip: &str) -> Value {
    json!({
        "addresses": [ip],
        "conditions": {"ready": true, "serving": true, "terminating": false},
        "targetRef": {"kind": "Pod", "namespace": ns, "name": pod},
        "nodeName": "node-1"
    })
}

/// The filler slice `i`'s endpoints (`n`, unique addresses from 10.100.0.1
/// on), plus `extra` more (10.99.x.y).
fn filler_endpoints(ns: &str, i: usize, n: usize, extra: usize) -> Vec<Value> {
    (0..n + extra)
        .map(|j| {
            let ip = if j < n {
                let idx = i * n + j;
                format!(
                    "10.{}.{}.{}",
                    100 + idx / 62500,
                    idx / 250 % 250,
                    idx % 250 + 1
                )
            } else {
                format!("10.99.{}.{}", i % 250, (j - n) % 250 + 1)
            };
            endpoint(ns, &format!("{}-{j}", filler_name(i)), &ip)
        })
        .collect()
}

fn service(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}
    })
}

fn slice(ns: &str, service: &str, endpoints: Vec<Value>) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-1"), "namespace": ns,
                     "labels": {"kubernetes.io/service-name": service,
                                "endpointslice.kubernetes.io/managed-by": "strait-cp-bench"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints
    })
}

fn route_rules(w1: u32) -> Value {
    json!([{"name": "split", "backends": [
        {"name": "web-v1", "port": 80, "weight": w1},
        {"name": "web-v2", "port": 80, "weight": 100 - w1}
    ]}])
}

fn route(ns: &str, w1: u32) -> Value {
    json!({
        "apiVersion": "strait.dev/v1alpha1", "kind": "TrafficRoute",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"parentRef": {"name": "web", "port": 80}, "rules": route_rules(w1)}
    })
}

async fn create_ignoring_exists<K>(api: &Api<K>, v: Value) -> Result<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + serde::Serialize,
{
    let obj: K = serde_json::from_value(v)?;
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn setup(client: Client, a: &SetupArgs) -> Result<()> {
    if a.endpoints > 1000 {
        bail!("an EndpointSlice holds at most 1000 endpoints");
    }
    let t = Instant::now();
    let ns_api: Api<Namespace> = Api::all(client.clone());
    for ns in [&a.namespace, &a.lease_namespace] {
        create_ignoring_exists(&ns_api, json!({"metadata": {"name": ns}})).await?;
    }
    let ns = a.namespace.as_str();
    let svcs: Api<Service> = Api::namespaced(client.clone(), ns);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let mut work: Vec<(bool, Value)> = Vec::new();
    for (k, name) in ["web", "web-v1", "web-v2"].into_iter().enumerate() {
        work.push((true, service(ns, name)));
        let ip = format!("10.98.0.{}", k + 1);
        work.push((
            false,
            slice(ns, name, vec![endpoint(ns, &format!("{name}-0"), &ip)]),
        ));
    }
    for i in 0..a.services {
        work.push((true, service(ns, &filler_name(i))));
        work.push((
            false,
            slice(ns, &filler_name(i), filler_endpoints(ns, i, a.endpoints, 0)),
        ));
    }
    let n = work.len();
    let results: Vec<Result<()>> = futures_util::stream::iter(work)
        .map(|(is_svc, v)| {
            let (svcs, slices) = (svcs.clone(), slices.clone());
            async move {
                if is_svc {
                    create_ignoring_exists(&svcs, v).await
                } else {
                    create_ignoring_exists(&slices, v).await
                }
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for r in results {
        r?;
    }
    let routes: Api<DynamicObject> = Api::namespaced_with(client, ns, &route_ar());
    create_ignoring_exists(&routes, route(ns, 50)).await?;
    eprintln!(
        "setup: {n} Services and EndpointSlices ({} endpoints) and 1 TrafficRoute in {:.1?}",
        a.services * a.endpoints + 3,
        t.elapsed()
    );
    Ok(())
}

// ------------------------------------------------------- simulated proxies --

type Key = (String, String, String);

/// One update as stream 0 saw it: (full, upserts, removals).
type Seen = (bool, Vec<(Key, String)>, Vec<Key>);

#[derive(Default)]
struct StreamRec {
    /// Newest version received (0: none yet).
    latest: AtomicU64,
    /// Every version received, with when.
    arrivals: Mutex<Vec<(u64, Instant)>>,
    /// Full updates received.
    fulls: AtomicU64,
}

struct Fleet {
    streams: Vec<StreamRec>,
    /// Stream 0's updates: version → (full, upserts, removals).
    seen: Mutex<BTreeMap<u64, Seen>>,
    /// Largest full update (encoded bytes) and its number of objects.
    full_bytes: AtomicU64,
    full_objects: AtomicU64,
    errors: Mutex<Vec<String>>,
}

fn key_of(k: &Option<strait_api::wire::ResourceKey>) -> Key {
    k.as_ref()
        .map(|k| (k.kind.clone(), k.namespace.clone(), k.name.clone()))
        .unwrap_or_default()
}

async fn proxy_stream(i: usize, ns: String, channel: Channel, fleet: Arc<Fleet>, max_msg: usize) {
    let mut client = ConfigDiscoveryClient::new(channel).max_decoding_message_size(max_msg);
    let (tx, rx) = mpsc::channel::<ProxyMessage>(8);
    let msg = |kind| ProxyMessage { kind: Some(kind) };
    let _ = tx.try_send(msg(proxy_message::Kind::Hello(Hello {
        namespace: ns,
        pod: format!("proxy-{i:04}"),
        service_account: "default".into(),
        running_version: 0,
    })));
    let outbound =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let fail = |e: String| {
        if let Ok(mut errs) = fleet.errors.lock() {
            errs.push(format!("stream {i}: {e}"));
        }
    };
    let mut updates = match client.stream(outbound).await {
        Ok(r) => r.into_inner(),
        Err(e) => return fail(e.to_string()),
    };
    let rec = &fleet.streams[i];
    // A version arrives in parts; it counts (and is ACKed) at its last part,
    // as the real proxy does.
    let mut pending: Option<ConfigUpdate> = None;
    loop {
        let part: ConfigUpdate = match updates.message().await {
            Ok(Some(u)) => u,
            Ok(None) => return fail("the controller ended the stream".into()),
            Err(e) => return fail(e.to_string()),
        };
        let Some(update) = strait_api::parts::assemble(&mut pending, part) else {
            continue;
        };
        let now = Instant::now();
        // ACK at once: the simulated proxy applies nothing.
        let _ = tx
            .send(msg(proxy_message::Kind::Ack(Ack {
                version: update.version,
            })))
            .await;
        if update.full {
            rec.fulls.fetch_add(1, Ordering::Relaxed);
            fleet
                .full_bytes
                .fetch_max(update.encoded_len() as u64, Ordering::Relaxed);
            fleet
                .full_objects
                .fetch_max(update.upserts.len() as u64, Ordering::Relaxed);
        }
        if i == 0
            && let Ok(mut seen) = fleet.seen.lock()
        {
            seen.insert(
                update.version,
                (
                    update.full,
                    update
                        .upserts
                        .iter()
                        .map(|r| {
                            (
                                key_of(&r.key),
                                String::from_utf8_lossy(&r.json).into_owned(),
                            )
                        })
                        .collect(),
                    update
                        .removals
                        .iter()
                        .map(|k| key_of(&Some(k.clone())))
                        .collect(),
                ),
            );
        }
        if let Ok(mut a) = rec.arrivals.lock() {
            a.push((update.version, now));
        }
        rec.latest.fetch_max(update.version, Ordering::Release);
    }
}

// ------------------------------------------------------------------ /proc --

struct Proc {
    pid: u32,
    tick: f64,
}

impl Proc {
    fn status_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }
    fn rss_mb(&self) -> f64 {
        self.status_kib("VmRSS:") as f64 * 1024.0 / 1e6
    }
    fn hwm_mb(&self) -> f64 {
        self.status_kib("VmHWM:") as f64 * 1024.0 / 1e6
    }
    /// utime + stime, seconds.
    fn cpu_s(&self) -> f64 {
        cpu_of(&format!("/proc/{}/stat", self.pid)) / self.tick
    }
    fn self_cpu_s(&self) -> f64 {
        cpu_of("/proc/self/stat") / self.tick
    }
}

fn cpu_of(path: &str) -> f64 {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after ')'.
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15.
    let get = |n: usize| {
        f.get(n - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    get(14) + get(15)
}

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

// -------------------------------------------------------------- measuring --

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// The version that carried the change.
    version: u64,
    /// t0 (before the API write), wall clock, for the controller's log.
    t0_wall: SystemTime,
    /// The API write returned.
    written: Duration,
    /// First and last of the streams received it.
    first: Duration,
    last: Duration,
    /// The controller's ProxyStatus showed every proxy ACKed it (polled).
    acked: Option<Duration>,
    /// The controller logged "config published" for it.
    published: Option<Duration>,
}

async fn connect(addr: &str) -> Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        .connect()
        .await?)
}

/// Objects in stream 0's view after applying everything it received.
fn stream0_view(fleet: &Fleet) -> BTreeMap<Key, String> {
    let mut view = BTreeMap::new();
    if let Ok(seen) = fleet.seen.lock() {
        for (full, ups, rms) in seen.values() {
            if *full {
                view.clear();
            }
            for (k, j) in ups {
                view.insert(k.clone(), j.clone());
            }
            for k in rms {
                view.remove(k);
            }
        }
    }
    view
}

fn endpoints_in(view: &BTreeMap<Key, String>) -> usize {
    view.iter()
        .filter(|(k, _)| k.0 == "EndpointSlice")
        .filter_map(|(_, j)| serde_json::from_str::<Value>(j).ok())
        .map(|v| v["endpoints"].as_array().map_or(0, |a| a.len()))
        .sum()
}

async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !f() {
        if Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// Applies one change (`write`) and times it; `carries` says whether an
/// upsert (key, JSON) is the change.
async fn measure(
    fleet: &Arc<Fleet>,
    status: &mut ConfigDiscoveryClient<Channel>,
    ns: &str,
    write: impl std::future::Future<Output = Result<()>>,
    carries: impl Fn(&Key, &str) -> bool,
) -> Result<Sample> {
    let before = fleet
        .streams
        .iter()
        .map(|s| s.latest.load(Ordering::Acquire))
        .max()
        .unwrap_or(0);
    let t0_wall = SystemTime::now();
    let t0 = Instant::now();
    write.await?;
    let written = t0.elapsed();
    let mut version = 0;
    wait_until(
        "the version carrying the change",
        Duration::from_secs(30),
        || {
            if let Ok(seen) = fleet.seen.lock() {
                for (v, (_, ups, _)) in seen.range(before + 1..) {
                    if ups.iter().any(|(k, j)| carries(k, j)) {
                        version = *v;
                        return true;
                    }
                }
            }
            false
        },
    )
    .await?;
    wait_until(
        "every stream to receive it",
        Duration::from_secs(30),
        || {
            fleet
                .streams
                .iter()
                .all(|s| s.latest.load(Ordering::Acquire) >= version)
        },
    )
    .await?;
    let (mut first, mut last) = (Duration::MAX, Duration::ZERO);
    for s in &fleet.streams {
        let at = s
            .arrivals
            .lock()
            .ok()
            .and_then(|a| a.iter().find(|(v, _)| *v >= version).map(|x| x.1))
            .context("arrival")?;
        let d = at.saturating_duration_since(t0);
        first = first.min(d);
        last = last.max(d);
    }
    // The controller's own record of the ACKs.
    let mut acked = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let st = status
            .proxy_status(ProxyStatusRequest {})
            .await?
            .into_inner();
        let mine: Vec<_> = st.proxies.iter().filter(|p| p.namespace == ns).collect();
        if mine.len() == fleet.streams.len() && mine.iter().all(|p| p.acked_version >= version) {
            acked = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(Sample {
        version,
        t0_wall,
        written,
        first,
        last,
        acked,
        published: None,
    })
}

// --------------------------------------------------- the controller's log --

/// `2026-01-02T03:04:05.123456Z` → time since the epoch.
fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, dd) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (h, mi, se) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    // Days from civil (Howard Hinnant).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + h * 3600 + mi * 60 + se;
    let nanos: u64 = format!("{frac:0<9}")[..9].parse().ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64) + Duration::from_nanos(nanos))
}

/// version → when the controller logged "config published".
fn published_times(log: &std::path::Path) -> BTreeMap<u64, SystemTime> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("config published"))
        .filter_map(|l| {
            let ts = parse_rfc3339(l.split_whitespace().next()?)?;
            let v = l
                .split_whitespace()
                .find_map(|w| w.strip_prefix("version="))?
                .parse()
                .ok()?;
            Some((v, ts))
        })
        .collect()
}

// ------------------------------------------------------- in-process cost --

struct InProcess {
    objects: usize,
    publish_first: Duration,
    publish_change: Vec<Duration>,
    full_wire: Vec<Duration>,
}

/// Loads what the controller loads into a `Store` and times `publish()`
/// for one TrafficRoute change (validation = `translate` over everything),
/// and building one full update (what each connecting stream costs).
async fn in_process(client: Client, ns: &str, rounds: usize) -> Result<InProcess> {
    let mut objects = Vec::new();
    for s in Api::<Service>::all(client.clone())
        .list(&ListParams::default())
        .await?
    {
        objects.push(convert("Service", &s).map_err(anyhow::Error::msg)?);
    }
    for s in Api::<EndpointSlice>::all(client.clone())
        .list(&ListParams::default())
        .await?
    {
        objects.push(convert("EndpointSlice", &s).map_err(anyhow::Error::msg)?);
    }
    let routes = Api::<DynamicObject>::all_with(client, &route_ar())
        .list(&ListParams::default())
        .await?;
    let mut route_obj = None;
    for r in routes {
        if r.metadata.namespace.as_deref() == Some(ns) && r.metadata.name.as_deref() == Some("web")
        {
            route_obj = Some(r.clone());
        }
        objects.push(convert("TrafficRoute", &r).map_err(anyhow::Error::msg)?);
    }
    let route_obj = route_obj.context("TrafficRoute web not found")?;
    let n = objects.len();
    let mut store = Store::default();
    store.replace_all(objects);
    let t = Instant::now();
    store.publish().context("nothing published")?;
    let publish_first = t.elapsed();
    let mut publish_change = Vec::new();
    let mut full_wire = Vec::new();
    for k in 0..rounds {
        let mut r = serde_json::to_value(&route_obj)?;
        r["spec"]["rules"] = route_rules(1 + (k as u32 % 98));
        let (o, j) = convert("TrafficRoute", &r).map_err(anyhow::Error::msg)?;
        store.upsert(o, j);
        let t = Instant::now();
        let d = store.publish();
        publish_change.push(t.elapsed());
        if d.is_none() {
            bail!("in-process publish found no change");
        }
        let t = Instant::now();
        let parts = to_parts(&store.full(), true);
        std::hint::black_box(parts.iter().map(|p| p.encoded_len()).sum::<usize>());
        full_wire.push(t.elapsed());
    }
    Ok(InProcess {
        objects: n,
        publish_first,
        publish_change,
        full_wire,
    })
}

// -------------------------------------------------------------- the run --

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Stats {
    p50: f64,
    p99: f64,
    max: f64,
}

fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(f64::total_cmp);
    Stats {
        p50: pct(&v, 50.0),
        p99: pct(&v, 99.0),
        max: v.last().copied().unwrap_or(f64::NAN),
    }
}

async fn run(client: Client, a: &RunArgs) -> Result<()> {
    let ns = a.setup.namespace.clone();
    let proc_ = Proc {
        pid: a.controller_pid,
        tick: clk_tck(),
    };
    let expected_slices = a.setup.services + 3;
    let expected_endpoints = a.setup.services * a.setup.endpoints + 3;
    let max_msg = a.max_message_mib << 20;

    // 1. The controller has loaded and published everything: one probe
    //    stream sees every EndpointSlice and the route.
    let t = Instant::now();
    let mut probe_ch = None;
    for _ in 0..600 {
        match connect(&a.addr).await {
            Ok(c) => {
                probe_ch = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let probe_ch = probe_ch.context("cannot connect to the controller")?;
    {
        let probe = Arc::new(Fleet {
            streams: vec![StreamRec::default()],
            seen: Mutex::default(),
            full_bytes: AtomicU64::new(0),
            full_objects: AtomicU64::new(0),
            errors: Mutex::default(),
        });
        let task = tokio::spawn(proxy_stream(
            0,
            "bench-probe".into(),
            probe_ch.clone(),
            probe.clone(),
            usize::MAX,
        ));
        let ready = wait_until(
            "the controller to publish everything",
            Duration::from_secs(120),
            || {
                let v = stream0_view(&probe);
                v.keys()
                    .filter(|k| k.0 == "EndpointSlice" && k.1 == ns)
                    .count()
                    == expected_slices
                    && v.keys().any(|k| k.0 == "TrafficRoute")
            },
        )
        .await;
        task.abort();
        if let Err(e) = ready {
            let errs = probe
                .errors
                .lock()
                .map(|e| e.join("; "))
                .unwrap_or_default();
            bail!("{e}; probe: {errs}");
        }
    }
    eprintln!(
        "controller ready (all objects published) after {:.1?}",
        t.elapsed()
    );
    // Let the probe's disconnect and any status writes settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = proc_.rss_mb();
    let cpu_before = proc_.cpu_s();

    // 2. Connect the fleet.
    let fleet = Arc::new(Fleet {
        streams: (0..a.proxies).map(|_| StreamRec::default()).collect(),
        seen: Mutex::default(),
        full_bytes: AtomicU64::new(0),
        full_objects: AtomicU64::new(0),
        errors: Mutex::default(),
    });
    let t_sync = Instant::now();
    let channels: Vec<Channel> = futures_util::stream::iter(0..channels_len(a))
        .map(|_| {
            let addr = a.addr.clone();
            async move { connect(&addr).await }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()
        .context("connecting the simulated proxies")?;
    let connected = t_sync.elapsed();
    let mut tasks = Vec::new();
    for i in 0..a.proxies {
        tasks.push(tokio::spawn(proxy_stream(
            i,
            ns.clone(),
            channels[i % channels.len()].clone(),
            fleet.clone(),
            max_msg,
        )));
    }
    let synced = wait_until(
        "every stream to get the full state",
        Duration::from_secs(300),
        || {
            fleet
                .streams
                .iter()
                .all(|s| s.fulls.load(Ordering::Relaxed) >= 1)
                || fleet.errors.lock().map(|e| !e.is_empty()).unwrap_or(true)
        },
    )
    .await;
    let errs = fleet.errors.lock().map(|e| e.clone()).unwrap_or_default();
    if !errs.is_empty() {
        bail!(
            "{} of {} streams failed, first: {}",
            errs.len(),
            a.proxies,
            errs[0]
        );
    }
    synced?;
    let initial_sync = t_sync.elapsed();
    let cpu_sync = proc_.cpu_s() - cpu_before;
    let view = stream0_view(&fleet);
    let full_endpoints = endpoints_in(&view);
    eprintln!(
        "{} streams over {} connections: all have the full state ({} objects, {} endpoints) after {:.2?}",
        a.proxies,
        channels.len(),
        view.len(),
        full_endpoints,
        initial_sync
    );
    if full_endpoints != expected_endpoints {
        eprintln!("warning: expected {expected_endpoints} endpoints in the full state");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_steady = proc_.rss_mb();

    // 3. Changes.
    let mut status = ConfigDiscoveryClient::new(connect(&a.addr).await?);
    let routes: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &route_ar());
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    let rss_max = Arc::new(AtomicU64::new(0));
    let sampler = {
        let rss_max = rss_max.clone();
        let pid = a.controller_pid;
        tokio::spawn(async move {
            let p = Proc { pid, tick: 1.0 };
            loop {
                rss_max.fetch_max(p.status_kib("VmRSS:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let cpu_changes_start = proc_.cpu_s();
    let self_cpu_start = proc_.self_cpu_s();
    let t_changes = Instant::now();
    let mut route_samples = Vec::new();
    for k in 0..a.changes {
        // A weight no earlier change used.
        let w1 = 1 + (k as u32 % 98);
        let w1 = if w1 == 50 { 99 } else { w1 };
        let patch = json!({"spec": {"rules": route_rules(w1)}});
        let routes = routes.clone();
        let s = measure(
            &fleet,
            &mut status,
            &ns,
            async move {
                routes
                    .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                Ok(())
            },
            |key, j| {
                key.0 == "TrafficRoute"
                    && key.2 == "web"
                    && serde_json::from_str::<Value>(j).is_ok_and(|v| {
                        v["spec"]["rules"][0]["backends"][0]["weight"].as_u64()
                            == Some(u64::from(w1))
                    })
            },
        )
        .await
        .with_context(|| format!("TrafficRoute change {k}"))?;
        route_samples.push(s);
        tokio::time::sleep(Duration::from_millis(a.interval_ms)).await;
    }
    let mut ep_samples = Vec::new();
    for k in 0..a.changes {
        // Pairs: add an endpoint to a slice, then take it away again.
        let i = (k / 2 * 37) % a.setup.services.max(1);
        let extra = usize::from(k % 2 == 0);
        let name = format!("{}-1", filler_name(i));
        let want = a.setup.endpoints + extra;
        let patch = json!({"endpoints": filler_endpoints(&ns, i, a.setup.endpoints, extra)});
        let slices = slices.clone();
        let target = name.clone();
        let s = measure(
            &fleet,
            &mut status,
            &ns,
            async move {
                slices
                    .patch(&target, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                Ok(())
            },
            |key, j| {
                key.0 == "EndpointSlice"
                    && key.2 == name
                    && serde_json::from_str::<Value>(j)
                        .is_ok_and(|v| v["endpoints"].as_array().map(|a| a.len()) == Some(want))
            },
        )
        .await
        .with_context(|| format!("EndpointSlice change {k}"))?;
        ep_samples.push(s);
        tokio::time::sleep(Duration::from_millis(a.interval_ms)).await;
    }
    let changes_wall = t_changes.elapsed();
    let cpu_changes = proc_.cpu_s() - cpu_changes_start;
    let self_cpu = proc_.self_cpu_s() - self_cpu_start;
    sampler.abort();
    let rss_changes_max = rss_max.load(Ordering::Relaxed) as f64 * 1024.0 / 1e6;
    let rss_end = proc_.rss_mb();
    let hwm = proc_.hwm_mb();
    let resyncs: u64 = fleet
        .streams
        .iter()
        .map(|s| s.fulls.load(Ordering::Relaxed).saturating_sub(1))
        .sum();
    let stream_errors = fleet.errors.lock().map(|e| e.len()).unwrap_or(0);
    for t in &tasks {
        t.abort();
    }
    drop(channels);

    // 4. The controller's publish times, from its log.
    if let Some(log) = &a.controller_log {
        let times = published_times(log);
        for s in route_samples.iter_mut().chain(ep_samples.iter_mut()) {
            s.published = times
                .get(&s.version)
                .and_then(|t| t.duration_since(s.t0_wall).ok());
        }
    }

    // 5. The same objects in-process.
    let inproc = in_process(client, &ns, 20).await?;

    // 6. Report.
    let full_bytes = fleet.full_bytes.load(Ordering::Relaxed);
    let full_objects = fleet.full_objects.load(Ordering::Relaxed);
    let row = |out: &mut String, what: &str, v: Vec<f64>, bar: &str| {
        let s = stats(v);
        let _ = writeln!(
            out,
            "| {what} | {:.1} | {:.1} | {:.1} | {bar} |",
            s.p50, s.p99, s.max
        );
    };
    let all = |v: &[Sample], f: &dyn Fn(&Sample) -> Option<Duration>| -> Vec<f64> {
        v.iter().filter_map(f).map(ms).collect()
    };
    let verdict = |p99: f64, bar: f64| if p99 <= bar { "**pass**" } else { "**FAIL**" };
    let route_p99 = stats(all(&route_samples, &|s| Some(s.last))).p99;
    let ep_p99 = stats(all(&ep_samples, &|s| Some(s.last))).p99;
    let route_ack_p99 = stats(all(&route_samples, &|s| s.acked)).p99;
    let ep_ack_p99 = stats(all(&ep_samples, &|s| s.acked)).p99;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} simulated proxies (one config stream each, over {} HTTP/2 connections), \
         {} endpoints in {} EndpointSlices + {} Services in the API server, \
         {} changes of each kind, {} ms apart.\n",
        a.proxies,
        channels_len(a),
        full_endpoints,
        view.keys().filter(|k| k.0 == "EndpointSlice").count(),
        view.keys().filter(|k| k.0 == "Service").count(),
        a.changes,
        a.interval_ms
    );
    let _ = writeln!(out, "| change → every proxy (ms) | p50 | p99 | max | bar |");
    let _ = writeln!(out, "|---|---:|---:|---:|---|");
    row(
        &mut out,
        "TrafficRoute patch → last of the streams received it (ACK sent at once)",
        all(&route_samples, &|s| Some(s.last)),
        &format!("p99 ≤ 100 ms: {}", verdict(route_p99, 100.0)),
    );
    row(
        &mut out,
        "TrafficRoute patch → controller's ProxyStatus shows all ACKed (2 ms poll)",
        all(&route_samples, &|s| s.acked),
        &format!("p99 ≤ 100 ms: {}", verdict(route_ack_p99, 100.0)),
    );
    row(
        &mut out,
        "EndpointSlice patch → last of the streams received it",
        all(&ep_samples, &|s| Some(s.last)),
        &format!("p99 ≤ 100 ms: {}", verdict(ep_p99, 100.0)),
    );
    row(
        &mut out,
        "EndpointSlice patch → ProxyStatus shows all ACKed",
        all(&ep_samples, &|s| s.acked),
        &format!("p99 ≤ 100 ms: {}", verdict(ep_ack_p99, 100.0)),
    );
    for (kind, samples) in [
        ("TrafficRoute", &route_samples),
        ("EndpointSlice", &ep_samples),
    ] {
        row(
            &mut out,
            &format!("{kind}, where the time goes: the API write returned"),
            all(samples, &|s| Some(s.written)),
            "",
        );
        row(
            &mut out,
            "… the controller logged \"config published\" (watch + 5 ms coalescing + publish)",
            all(samples, &|s| s.published),
            "",
        );
        row(
            &mut out,
            "… the first stream received it",
            all(samples, &|s| Some(s.first)),
            "",
        );
        row(
            &mut out,
            "… fan-out: last stream minus first stream",
            all(samples, &|s| Some(s.last - s.first)),
            "",
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "| scale | value |");
    let _ = writeln!(out, "|---|---|");
    let _ = writeln!(
        out,
        "| initial sync: connect {} streams → all have the full state | {:.2} s (TCP/HTTP/2 connects: {:.2} s) |",
        a.proxies,
        initial_sync.as_secs_f64(),
        connected.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "| full state (all parts of one version) | {:.2} MiB ({} objects; sent in parts of ≤ {} KiB of objects) |",
        full_bytes as f64 / 1048576.0,
        full_objects,
        PART_BYTES / 1024
    );
    let rss_ok = rss_steady.max(rss_changes_max) <= 100.0;
    let _ = writeln!(
        out,
        "| controller RSS: 0 streams / {} streams steady / max during changes | {:.1} / {:.1} / {:.1} MB (bar ≤ 100 MB: {}) |",
        a.proxies,
        rss_before,
        rss_steady,
        rss_changes_max,
        if rss_ok { "**pass**" } else { "**FAIL**" }
    );
    let _ = writeln!(
        out,
        "| controller RSS peak (VmHWM, includes the initial sync) / at the end | {hwm:.1} / {rss_end:.1} MB |"
    );
    let _ = writeln!(out, "| controller CPU: initial sync | {cpu_sync:.2} s |");
    let _ = writeln!(
        out,
        "| controller CPU: {} changes over {:.1} s | {:.2} s ({:.1} ms per change, {:.0} % of one core) |",
        2 * a.changes,
        changes_wall.as_secs_f64(),
        cpu_changes,
        cpu_changes * 1000.0 / (2 * a.changes) as f64,
        cpu_changes * 100.0 / changes_wall.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "| bench process CPU during the changes ({} simulated proxies) | {self_cpu:.2} s |",
        a.proxies
    );
    let pc = stats(inproc.publish_change.iter().map(|d| ms(*d)).collect());
    let fw = stats(inproc.full_wire.iter().map(|d| ms(*d)).collect());
    let _ = writeln!(
        out,
        "| in-process `Store::publish()` of one change over {} objects (validates all with `translate`) | p50 {:.2} ms, max {:.2} ms (first publish {:.1} ms) |",
        inproc.objects,
        pc.p50,
        pc.max,
        ms(inproc.publish_first)
    );
    let _ = writeln!(
        out,
        "| in-process full update (`Store::full` + `to_parts` + encode), each connecting stream | p50 {:.2} ms |",
        fw.p50
    );
    let _ = writeln!(
        out,
        "| resyncs (a stream fell behind and was sent the full state again) / stream errors | {resyncs} / {stream_errors} |"
    );
    print!("{out}");
    std::fs::write(&a.out, &out)?;
    if let Some(path) = &a.json {
        let ser = |v: &[Sample]| -> Vec<Value> {
            v.iter()
                .map(|s| {
                    json!({"version": s.version, "written_ms": ms(s.written),
                           "published_ms": s.published.map(ms), "first_ms": ms(s.first),
                           "last_ms": ms(s.last), "acked_ms": s.acked.map(ms)})
                })
                .collect()
        };
        let raw = json!({
            "proxies": a.proxies, "channels": channels_len(a), "endpoints": full_endpoints,
            "route": ser(&route_samples), "endpoint": ser(&ep_samples),
            "initial_sync_s": initial_sync.as_secs_f64(), "full_bytes": full_bytes,
            "rss_mb": {"before": rss_before, "steady": rss_steady, "changes_max": rss_changes_max, "hwm": hwm, "end": rss_end},
            "cpu_s": {"sync": cpu_sync, "changes": cpu_changes, "bench": self_cpu},
            "publish_ms": inproc.publish_change.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
            "full_wire_ms": inproc.full_wire.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
            "resyncs": resyncs,
        });
        std::fs::write(path, serde_json::to_string_pretty(&raw)?)?;
    }
    Ok(())
}

fn channels_len(a: &RunArgs) -> usize {
    a.channels.clamp(1, a.proxies.max(1))
}
