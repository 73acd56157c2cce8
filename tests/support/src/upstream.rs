//! A minimal HTTP/1.1 keep-alive server on loopback, on plain threads, for
//! tests that need an upstream but not the proxy crate's full echo server:
//! every request (of any method, without a body) is answered `200` with a
//! fixed body, on the same connection.

use std::io::{Read, Write};
use std::net::TcpListener;

/// Starts the server; returns its port. It runs until the test process
/// exits.
pub fn keep_alive(body: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    let port = l.local_addr().expect("local address").port();
    let resp = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let resp = resp.clone();
            std::thread::spawn(move || {
                let mut conn = conn;
                let (mut buf, mut chunk) = (Vec::new(), [0u8; 4096]);
                while let Ok(n) = conn.read(&mut chunk) {
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if conn.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

/// Manifests for `strait-proxy --local`: Service `web` (namespace
/// `default`, port 80) whose one endpoint is `127.0.0.1:port`.
pub fn web_service(port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {{ports: [{{port: 80}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: web-1, labels: {{kubernetes.io/service-name: web}}}}\naddressType: IPv4\nports: [{{port: {port}}}]\nendpoints: [{{addresses: [127.0.0.1]}}]\n"
    )
}

/// Starts `strait-proxy --local dir` (outbound on `out`, admin on `admin`,
/// inbound on a free port, then `extra` flags), its stderr discarded.
pub fn local_proxy(
    bin: &std::path::Path,
    dir: &std::path::Path,
    out: u16,
    admin: u16,
    extra: &[&str],
) -> std::process::Child {
    std::process::Command::new(bin)
        .arg("--local")
        .arg(dir)
        .args([
            "--outbound-addr",
            &format!("127.0.0.1:{out}"),
            "--inbound-addr",
            &format!("127.0.0.1:{}", crate::free_port()),
            "--admin-addr",
            &format!("127.0.0.1:{admin}"),
        ])
        .args(extra)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start strait-proxy")
}
