//! `strait`: the command-line tool for people running the mesh.

// No unwrap on input from the network or users; tests may unwrap.
#![warn(clippy::unwrap_used)]

mod backend;
mod check;
mod demo;
mod explain;
mod inject;
mod prom;
mod stat;
mod status;
mod tap;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Strait service mesh CLI.
#[derive(Parser)]
#[command(name = "strait", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Which proxies `stat` and `tap` read: admin addresses, or meshed pods.
#[derive(clap::Args)]
struct Proxies {
    /// A proxy's admin address (repeatable; default 127.0.0.1:4191 when no
    /// selector is given).
    #[arg(long, conflicts_with_all = ["selector", "namespace", "all_namespaces"])]
    admin: Vec<String>,
    /// Label selector of the meshed pods (e.g. app=web).
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Namespace of the pods (default: the kubeconfig's).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Pods in every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    all_namespaces: bool,
}

impl Proxies {
    /// The admin addresses, or the pods (the kubeconfig's namespace when
    /// none is given).
    fn target(self, rt: &tokio::runtime::Runtime) -> anyhow::Result<stat::scrape::Target> {
        if self.selector.is_none() && self.namespace.is_none() && !self.all_namespaces {
            let admin = if self.admin.is_empty() {
                vec!["127.0.0.1:4191".to_string()]
            } else {
                self.admin
            };
            return Ok(stat::scrape::Target::Admin(admin));
        }
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let namespace = match (self.all_namespaces, self.namespace) {
            (true, _) => None,
            (false, Some(ns)) => Some(ns),
            (false, None) => Some(rt.block_on(default_namespace())?),
        };
        Ok(stat::scrape::Target::Pods {
            namespace,
            selector: self.selector.unwrap_or_default(),
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run a local mesh demo: two app versions, a sticky 90/10 split and a
    /// canary header rule, load, and the proxy's own numbers.
    Demo {
        /// How long to send load (e.g. 5s).
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        duration: Duration,
        /// Concurrent clients.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Path of strait-proxy (default: next to this binary).
        #[arg(long)]
        proxy_bin: Option<PathBuf>,
    },
    /// Live metrics summed over proxies, per direction, service, route and
    /// backend: rps, success rate, p50/p95/p99, retries, ejected endpoints.
    /// Reads every meshed pod matching -l/-n through the API server, or
    /// proxies' admin ports given with --admin.
    Stat {
        #[command(flatten)]
        proxies: Proxies,
        /// Which side of the proxies: outbound (what the apps called),
        /// inbound (what they served) or all.
        #[arg(long, value_enum, default_value = "all")]
        direction: stat::table::Direction,
        /// Refresh interval (e.g. 1s).
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        interval: Duration,
        /// Print one table after one interval and exit.
        #[arg(long)]
        once: bool,
    },
    /// The requests proxies see, live: one line per request (direction,
    /// method, authority and path, route, backend, status, latency, TLS
    /// peer). Reads proxies' admin ports given with --admin (loopback:
    /// a local mesh or a port-forward), or every meshed pod matching -l/-n
    /// through a port-forward of its own.
    Tap {
        #[command(flatten)]
        proxies: Proxies,
        /// Only this side: outbound (what the app called) or inbound (what
        /// it served).
        #[arg(long, value_parser = ["outbound", "inbound"])]
        direction: Option<String>,
        /// Only this method (e.g. POST).
        #[arg(long)]
        method: Option<String>,
        /// Only this authority (Host), exactly.
        #[arg(long)]
        authority: Option<String>,
        /// Only paths starting with this.
        #[arg(long)]
        path: Option<String>,
        /// Only this route rule (trafficroute/rule, as in metrics).
        #[arg(long)]
        route: Option<String>,
        /// Only this backend (namespace/name:port, as in metrics).
        #[arg(long)]
        backend: Option<String>,
        /// Only this status (e.g. 503) or class (e.g. 5xx).
        #[arg(long)]
        status: Option<String>,
        /// One JSON object per line, for scripts.
        #[arg(long)]
        json: bool,
        /// Exit after showing this many requests.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Which config version every connected proxy runs (from the control plane).
    ProxyStatus {
        /// The control plane's config stream address.
        #[arg(long, env = "STRAIT_CONTROL_PLANE", default_value = "127.0.0.1:8086")]
        control_plane: String,
    },
    /// Which Service, route rule, backend, endpoints and policy a request
    /// would get, and why.
    Explain {
        /// The source pod, NAMESPACE/POD (bare Service names resolve in NAMESPACE).
        #[arg(long)]
        from: String,
        /// Read the config from manifest directories instead of the control
        /// plane (repeatable, or comma-separated).
        #[arg(long, value_delimiter = ',')]
        local: Vec<PathBuf>,
        /// The control plane's config stream address.
        #[arg(long, env = "STRAIT_CONTROL_PLANE", default_value = "127.0.0.1:8086")]
        control_plane: String,
        /// Request header, `name: value` (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// HTTP method.
        method: String,
        /// URL, e.g. http://web.shop/api?x=1
        url: String,
    },
    /// Add the proxy to the pod templates of Kubernetes manifests, offline
    /// (Deployments, StatefulSets, DaemonSets, Jobs, CronJobs, Pods, Lists;
    /// other kinds pass through). Prints YAML for `kubectl apply -f -`.
    Inject {
        /// The manifests (`-` or nothing: standard input).
        #[arg(short = 'f', long = "filename", default_value = "-")]
        file: String,
        /// The config stream address the proxies follow.
        #[arg(
            long,
            default_value = "strait-controller.strait-system.svc.cluster.local:8086"
        )]
        control_plane: String,
        /// The proxy image.
        #[arg(long, default_value = concat!("docker.io/strait/strait-proxy:", env!("CARGO_PKG_VERSION")))]
        proxy_image: String,
    },
    /// Remove what `strait inject` (or the webhook) added. Prints YAML.
    Uninject {
        /// The manifests (`-` or nothing: standard input).
        #[arg(short = 'f', long = "filename", default_value = "-")]
        file: String,
    },
    /// Is the mesh healthy? CRDs, control plane, leader, webhook and its
    /// certificate, config stream, and with --proxies every meshed pod.
    /// Exit code 1 when a check fails.
    Check {
        /// The control plane's namespace.
        #[arg(long, short = 'n', default_value = "strait-system")]
        namespace: String,
        /// Check a cluster before installing Strait.
        #[arg(long)]
        pre: bool,
        /// Also check every meshed pod's proxy (connected, SYNCED).
        #[arg(long)]
        proxies: bool,
        /// Output: text or json.
        #[arg(short = 'o', long, default_value = "text", value_parser = ["text", "json"])]
        output: String,
    },
    /// Print the version.
    Version,
}

fn read_input(file: &str) -> anyhow::Result<String> {
    use anyhow::Context;
    if file == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("reading standard input")?;
        Ok(s)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {file}"))
    }
}

fn transform(
    file: &str,
    action: inject::Action,
    settings: &strait_api::inject::Settings,
) -> anyhow::Result<()> {
    let (yaml, report) = inject::run(&read_input(file)?, action, settings)?;
    for line in report {
        eprintln!("{line}");
    }
    print!("{yaml}");
    Ok(())
}

/// The one duration parser of every Strait component (GEP-2257's grammar).
fn parse_duration(s: &str) -> Result<Duration, String> {
    strait_api::duration::parse(s).map_err(|e| e.to_string())
}

/// The kubeconfig's namespace, as kubectl picks it.
async fn default_namespace() -> anyhow::Result<String> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| anyhow::anyhow!("no Kubernetes config (KUBECONFIG?): {e}"))?;
    Ok(config.default_namespace)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("strait {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Inject {
            file,
            control_plane,
            proxy_image,
        } => transform(
            &file,
            inject::Action::Inject,
            &inject::settings(&control_plane, &proxy_image),
        ),
        Command::Uninject { file } => {
            transform(&file, inject::Action::Uninject, &inject::settings("", ""))
        }
        Command::Check {
            namespace,
            pre,
            proxies,
            output,
        } => {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let opts = check::Options {
                namespace,
                pre,
                proxies,
            };
            let checks = tokio::runtime::Runtime::new()?.block_on(check::run(&opts));
            print!("{}", check::render(&checks, output == "json"));
            if checks.iter().any(|c| !c.ok) {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::ProxyStatus { control_plane } => {
            tokio::runtime::Runtime::new()?.block_on(status::run(&control_plane))
        }
        Command::Explain {
            from,
            local,
            control_plane,
            headers,
            method,
            url,
        } => {
            // A bare NAMESPACE still works: the view depends on the
            // namespace only; the pod name is what proxy-status shows.
            let (namespace, pod) = match from.split_once('/') {
                Some((ns, pod)) if !ns.is_empty() && !pod.is_empty() => {
                    (ns.to_string(), pod.to_string())
                }
                None if !from.is_empty() => (from.clone(), "strait-explain".to_string()),
                _ => anyhow::bail!("--from {from:?}: expected NAMESPACE/POD, e.g. shop/web-0"),
            };
            let snapshot = if local.is_empty() {
                tokio::runtime::Runtime::new()?.block_on(explain::from_control_plane(
                    &control_plane,
                    &namespace,
                    &pod,
                ))?
            } else {
                explain::from_dirs(&local)?
            };
            let method = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())?;
            let uri: http::Uri = url
                .parse()
                .map_err(|e| anyhow::anyhow!("URL {url:?}: {e}"))?;
            print!(
                "{}",
                explain::explain(
                    &snapshot,
                    &namespace,
                    &method,
                    &uri,
                    &explain::headers(&headers)?
                )
            );
            Ok(())
        }
        Command::Stat {
            proxies,
            direction,
            interval,
            once,
        } => {
            let rt = tokio::runtime::Runtime::new()?;
            let target = proxies.target(&rt)?;
            rt.block_on(stat::run(stat::Options {
                target,
                interval,
                once,
                direction,
            }))
        }
        Command::Tap {
            proxies,
            direction,
            method,
            authority,
            path,
            route,
            backend,
            status,
            json,
            count,
        } => {
            let rt = tokio::runtime::Runtime::new()?;
            let target = proxies.target(&rt)?;
            let filters = tap::Filters {
                direction,
                method,
                authority,
                path,
                route,
                backend,
                status,
            };
            rt.block_on(tap::run(target, filters, json, count))
        }
        Command::Demo {
            duration,
            concurrency,
            proxy_bin,
        } => {
            let proxy_bin = match proxy_bin {
                Some(p) => p,
                None => std::env::current_exe()?.with_file_name("strait-proxy"),
            };
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(demo::run(demo::Options {
                duration,
                concurrency: concurrency.max(1),
                proxy_bin,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn flags_read_durations_as_manifests_do() {
        // The CLI used to have its own parser that refused 1m30s.
        assert_eq!(
            super::parse_duration("1m30s"),
            Ok(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            super::parse_duration("250ms"),
            Ok(std::time::Duration::from_millis(250))
        );
        let e = super::parse_duration("1.5s").unwrap_err();
        assert!(e.contains("fractions are not allowed"), "{e}");
    }
}
