//! `tests/cluster/down.sh` leaves nothing behind: after a whole up/down
//! cycle the machine's processes, network namespaces, links, iptables
//! chains and mounts are what they were before `up.sh`, and nothing of the
//! cluster's kind is left. Run last (scripts/test.sh): it takes the cluster
//! down.

use std::collections::BTreeSet;
use std::process::Command;
use strait_cluster_tests::{Cluster, repo};

const STATE_DIR: &str = "/tmp/strait-cluster";
/// Programs only the cluster runs.
const OURS: [&str; 10] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "containerd",
    "containerd-shim-runc-v2",
    "coredns",
    "strait-testapp",
];

fn lines(cmd: &str, args: &[&str]) -> BTreeSet<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// What the cluster could leave behind, as comparable sets.
#[derive(Debug, PartialEq)]
struct Machine {
    processes: BTreeSet<String>,
    netns: BTreeSet<String>,
    links: BTreeSet<String>,
    chains: BTreeSet<String>,
    mounts: BTreeSet<String>,
}

fn machine() -> Machine {
    let mut processes = BTreeSet::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let exe = argv
            .first()
            .map(|a| a.rsplit('/').next().unwrap_or("").to_owned())
            .unwrap_or_default();
        if OURS.contains(&exe.as_str()) || argv.iter().any(|a| a.contains(STATE_DIR)) {
            processes.insert(argv.join(" "));
        }
    }
    let netns = lines("ip", &["netns", "list"])
        .into_iter()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    let links = lines("ip", &["-o", "link", "show"])
        .into_iter()
        .filter_map(|l| {
            l.split(": ")
                .nth(1)
                .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        })
        .collect();
    let mut chains = BTreeSet::new();
    for cmd in ["iptables", "ip6tables"] {
        for table in ["filter", "nat", "mangle", "raw"] {
            for l in lines(cmd, &["-w", "-t", table, "-S"]) {
                chains.insert(format!("{cmd} {table} {l}"));
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/mounts")
        .expect("/proc/mounts")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect();
    Machine {
        processes,
        netns,
        links,
        chains,
        mounts,
    }
}

fn down() {
    let out = Command::new(repo().join("tests/cluster/down.sh"))
        .output()
        .expect("run down.sh");
    assert!(
        out.status.success(),
        "down.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn down_leaves_nothing_behind() {
    down();
    let before = machine();
    assert!(
        before.processes.is_empty(),
        "cluster processes before up: {:?}",
        before.processes
    );

    let cluster = Cluster::up().unwrap_or_else(|e| panic!("{e}"));
    // Something to clean up: a pod with its network namespace, veth, mounts
    // and iptables rules (a Service).
    cluster.kubectl_ok(&["-n", "kube-system", "get", "deploy/coredns"]);
    let during = machine();
    assert!(
        !during.processes.is_empty() && during.netns.len() > before.netns.len(),
        "the cluster runs pods: {during:?}"
    );
    assert!(
        during.chains.iter().any(|c| c.contains("KUBE-SERVICES")),
        "kube-proxy wrote its chains"
    );
    assert!(during.links.contains("strait0"));

    down();
    let after = machine();
    let diff = |a: &BTreeSet<String>, b: &BTreeSet<String>| -> Vec<String> {
        b.difference(a).cloned().collect()
    };
    assert_eq!(
        after.processes,
        before.processes,
        "processes left: {:?}",
        diff(&before.processes, &after.processes)
    );
    assert_eq!(
        after.netns,
        before.netns,
        "network namespaces left: {:?}",
        diff(&before.netns, &after.netns)
    );
    assert_eq!(
        after.links,
        before.links,
        "links left: {:?}",
        diff(&before.links, &after.links)
    );
    assert_eq!(
        after.chains,
        before.chains,
        "iptables rules left: {:?}",
        diff(&before.chains, &after.chains)
    );
    assert_eq!(
        after.mounts,
        before.mounts,
        "mounts left: {:?}",
        diff(&before.mounts, &after.mounts)
    );
    assert!(
        !std::path::Path::new(STATE_DIR).exists(),
        "{STATE_DIR} left"
    );
}
