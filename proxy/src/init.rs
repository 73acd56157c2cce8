//! `strait-proxy init`: the iptables rules that send a pod's TCP through
//! the proxy (run by the injected init container, or by tests inside network
//! namespaces they create).
//!
//! [`rules`] is pure: it returns the `iptables` argument lists in order, so
//! the rule set is table-tested and `--dry-run` prints exactly what would
//! run. The rules, in the `nat` table:
//!
//! * `PREROUTING → STRAIT_INBOUND`: incoming TCP is redirected to the inbound
//!   listener, except skipped ports (the admin port by default, so kubelet
//!   probes reach it directly).
//! * `OUTPUT → STRAIT_OUTPUT`: outgoing TCP is redirected to the outbound
//!   listener, except traffic of the proxy's own user (so its connections to
//!   endpoints are not looped back), traffic on loopback (the app talking to
//!   itself or to the proxy), and skipped ports.
//!
//! Applying is idempotent: existing Strait chains and jumps are removed first.

use std::process::Command;

/// Chain for incoming traffic.
pub const INBOUND_CHAIN: &str = "STRAIT_INBOUND";
/// Chain for outgoing traffic.
pub const OUTPUT_CHAIN: &str = "STRAIT_OUTPUT";

/// What to redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitConfig {
    /// The proxy's user id; its own traffic is never redirected.
    pub proxy_uid: u32,
    /// Inbound listener port.
    pub inbound_port: u16,
    /// Outbound listener port.
    pub outbound_port: u16,
    /// Incoming destination ports (or `a:b` ranges) left alone.
    pub skip_inbound_ports: Vec<String>,
    /// Outgoing destination ports (or `a:b` ranges) left alone.
    pub skip_outbound_ports: Vec<String>,
}

impl Default for InitConfig {
    fn default() -> Self {
        Self {
            proxy_uid: 2102,
            inbound_port: 4143,
            outbound_port: 4140,
            skip_inbound_ports: vec!["4191".into()],
            skip_outbound_ports: vec![],
        }
    }
}

/// Why `init` failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A port list entry is not a port or `a:b` range.
    #[error("invalid port {0:?} (expected a port such as 8080 or a range such as 9000:9100)")]
    BadPort(String),
    /// iptables could not be run.
    #[error("cannot run {cmd}: {source} (is iptables installed, and are we root / CAP_NET_ADMIN?)")]
    Spawn {
        /// The command.
        cmd: String,
        source: std::io::Error,
    },
    /// iptables refused a rule.
    #[error("`{cmd}` failed: {stderr}")]
    Rule {
        /// The command.
        cmd: String,
        /// What iptables said.
        stderr: String,
    },
}

fn check_ports(ports: &[String]) -> Result<(), InitError> {
    for p in ports {
        let ok = match p.split_once(':') {
            Some((a, b)) => {
                matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if a <= b)
            }
            None => p.parse::<u16>().is_ok(),
        };
        if !ok {
            return Err(InitError::BadPort(p.clone()));
        }
    }
    Ok(())
}

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// The rules to add, in order (arguments after `iptables`). Pure.
pub fn rules(cfg: &InitConfig) -> Result<Vec<Vec<String>>, InitError> {
    check_ports(&cfg.skip_inbound_ports)?;
    check_ports(&cfg.skip_outbound_ports)?;
    let mut r = vec![
        args(&format!("-t nat -N {INBOUND_CHAIN}")),
        args(&format!("-t nat -N {OUTPUT_CHAIN}")),
    ];
    // multiport takes at most 15 ports per rule.
    for chunk in cfg.skip_inbound_ports.chunks(15) {
        r.push(args(&format!(
            "-t nat -A {INBOUND_CHAIN} -p tcp -m multiport --dports {} -j RETURN",
            chunk.join(",")
        )));
    }
    r.push(args(&format!(
        "-t nat -A {INBOUND_CHAIN} -p tcp -j REDIRECT --to-ports {}",
        cfg.inbound_port
    )));
    r.push(args(&format!(
        "-t nat -A PREROUTING -p tcp -j {INBOUND_CHAIN}"
    )));
    r.push(args(&format!(
        "-t nat -A {OUTPUT_CHAIN} -m owner --uid-owner {} -j RETURN",
        cfg.proxy_uid
    )));
    r.push(args(&format!("-t nat -A {OUTPUT_CHAIN} -o lo -j RETURN")));
    for chunk in cfg.skip_outbound_ports.chunks(15) {
        r.push(args(&format!(
            "-t nat -A {OUTPUT_CHAIN} -p tcp -m multiport --dports {} -j RETURN",
            chunk.join(",")
        )));
    }
    r.push(args(&format!(
        "-t nat -A {OUTPUT_CHAIN} -p tcp -j REDIRECT --to-ports {}",
        cfg.outbound_port
    )));
    r.push(args(&format!("-t nat -A OUTPUT -p tcp -j {OUTPUT_CHAIN}")));
    Ok(r)
}

/// What removes earlier Strait rules (errors ignored: they may not exist).
pub fn cleanup() -> Vec<Vec<String>> {
    vec![
        args(&format!("-t nat -D PREROUTING -p tcp -j {INBOUND_CHAIN}")),
        args(&format!("-t nat -D OUTPUT -p tcp -j {OUTPUT_CHAIN}")),
        args(&format!("-t nat -F {INBOUND_CHAIN}")),
        args(&format!("-t nat -X {INBOUND_CHAIN}")),
        args(&format!("-t nat -F {OUTPUT_CHAIN}")),
        args(&format!("-t nat -X {OUTPUT_CHAIN}")),
    ]
}

/// Installs the rules with `iptables_bin`, or prints them when `dry_run`.
pub fn apply(cfg: &InitConfig, iptables_bin: &str, dry_run: bool) -> Result<(), InitError> {
    let rules = rules(cfg)?;
    if dry_run {
        for r in &rules {
            println!("{iptables_bin} {}", r.join(" "));
        }
        return Ok(());
    }
    for r in cleanup() {
        let _ = Command::new(iptables_bin).args(&r).output();
    }
    for r in rules {
        let cmd = format!("{iptables_bin} {}", r.join(" "));
        let out = Command::new(iptables_bin)
            .args(&r)
            .output()
            .map_err(|source| InitError::Spawn {
                cmd: cmd.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(InitError::Rule {
                cmd,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        tracing::info!(rule = %cmd, "iptables rule added");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules() {
        let got: Vec<String> = rules(&InitConfig::default())
            .unwrap()
            .iter()
            .map(|r| r.join(" "))
            .collect();
        assert_eq!(
            got,
            [
                "-t nat -N STRAIT_INBOUND",
                "-t nat -N STRAIT_OUTPUT",
                "-t nat -A STRAIT_INBOUND -p tcp -m multiport --dports 4191 -j RETURN",
                "-t nat -A STRAIT_INBOUND -p tcp -j REDIRECT --to-ports 4143",
                "-t nat -A PREROUTING -p tcp -j STRAIT_INBOUND",
                "-t nat -A STRAIT_OUTPUT -m owner --uid-owner 2102 -j RETURN",
                "-t nat -A STRAIT_OUTPUT -o lo -j RETURN",
                "-t nat -A STRAIT_OUTPUT -p tcp -j REDIRECT --to-ports 4140",
                "-t nat -A OUTPUT -p tcp -j STRAIT_OUTPUT",
            ]
        );
    }

    #[test]
    fn skip_ports_and_validation() {
        let cfg = InitConfig {
            skip_inbound_ports: vec![],
            skip_outbound_ports: (1..=16)
                .map(|p| p.to_string())
                .chain(["9000:9100".to_string()])
                .collect(),
            ..InitConfig::default()
        };
        let got: Vec<String> = rules(&cfg).unwrap().iter().map(|r| r.join(" ")).collect();
        assert!(
            !got.iter()
                .any(|r| r.contains("STRAIT_INBOUND -p tcp -m multiport"))
        );
        let skips: Vec<&String> = got
            .iter()
            .filter(|r| r.contains("STRAIT_OUTPUT -p tcp -m multiport"))
            .collect();
        assert_eq!(skips.len(), 2, "15 ports per multiport rule");
        assert!(skips[1].contains("--dports 16,9000:9100"));
        for bad in ["http", "70000", "9100:9000", "", "1:2:3"] {
            let cfg = InitConfig {
                skip_inbound_ports: vec![bad.into()],
                ..InitConfig::default()
            };
            assert!(matches!(rules(&cfg), Err(InitError::BadPort(_))), "{bad:?}");
        }
    }
}
