//! `strait-testapp`: the app that Strait's cluster tests and the cluster
//! demo put in pods. `serve` answers HTTP/1.1, HTTP/2 (prior knowledge) and
//! gRPC on one port, each answer naming the pod and the `VERSION` that
//! served it; `get`, `load` and `grpc` are the client side, for sending
//! traffic from inside a pod (the image has no shell and no curl).

mod client;
mod server;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;

/// Generated from `proto/echo.proto`.
#[allow(missing_docs, clippy::all)]
pub mod wire;

#[derive(Parser)]
#[command(
    name = "strait-testapp",
    version,
    about = "Echo server and load client for Strait's cluster tests"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve HTTP/1.1, HTTP/2 and gRPC echo on one port.
    ///
    /// Every HTTP answer is JSON: pod, version, method, path, authority,
    /// protocol and the request headers. `?status=N` answers with status N,
    /// `?delay_ms=N` waits first. `/healthz` answers `ok`.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "LISTEN", default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
    },
    /// One request: prints the status and the body; exits 1 on an error or a status >= 400.
    Get {
        /// The URL (http:// only).
        url: String,
        /// Extra header, `name: value` (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// HTTP/2 with prior knowledge instead of HTTP/1.1.
        #[arg(long)]
        http2: bool,
    },
    /// Many requests; prints one JSON line with counts by status and by the version that answered.
    Load {
        /// The URL (http:// only).
        url: String,
        /// How many requests in all.
        #[arg(long, default_value_t = 100)]
        requests: u64,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Extra header, `name: value` (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// Send this header with a user id (`user-0` .. `user-<users-1>`, request i gets i mod users).
        #[arg(long)]
        user_header: Option<String>,
        /// How many distinct users `--user-header` cycles through.
        #[arg(long, default_value_t = 100)]
        users: u64,
        /// HTTP/2 with prior knowledge instead of HTTP/1.1.
        #[arg(long)]
        http2: bool,
    },
    /// One gRPC Echo call; prints the reply as JSON.
    Grpc {
        /// The server, as `http://host:port`.
        addr: String,
        /// The message to echo.
        #[arg(default_value = "hello")]
        message: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve { listen } => server::serve(listen, server::Identity::from_env()).await,
        Cmd::Get {
            url,
            headers,
            http2,
        } => {
            let ok = client::get(&url, &headers, http2).await?;
            if !ok {
                std::process::exit(1);
            }
            Ok(())
        }
        Cmd::Load {
            url,
            requests,
            concurrency,
            headers,
            user_header,
            users,
            http2,
        } => {
            let opts = client::LoadOptions {
                url,
                requests,
                concurrency: concurrency.max(1),
                headers,
                user_header,
                users: users.max(1),
                http2,
            };
            let report = client::load(opts).await?;
            println!("{report}");
            Ok(())
        }
        Cmd::Grpc { addr, message } => client::grpc(addr, message).await,
    }
}
