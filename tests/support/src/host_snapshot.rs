//! A snapshot of what a real node changes on the host, to compare before and after it runs:
//! the node's processes, mounts, network interfaces, iptables rules (nf_tables through
//! iptables-nft), cgroups, sysctls and the host paths its components write to.
//!
//! Read straight from `/proc`, `/sys` and `iptables-save`, independently of the teardown code
//! it checks. Processes are the node's only (a command line naming the cluster's directory, a
//! process in a `kubepods` cgroup, a runc shim or a workload of ours): the machine is shared and
//! other processes come and go. Everything else is the whole host's.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

/// Sysctls (under `/proc/sys`) compared besides every file of the directories in
/// [`SYSCTL_DIRS`].
const SYSCTLS: &[&str] = &[
    "net/ipv4/ip_forward",
    "net/ipv6/conf/all/forwarding",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
    "net/netfilter/nf_conntrack_tcp_be_liberal",
    "kernel/panic",
    "kernel/panic_on_oops",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
];

/// Directories under `/proc/sys` whose every file is compared.
const SYSCTL_DIRS: &[&str] = &[
    "net/ipv4/conf/all",
    "net/ipv4/conf/default",
    "net/bridge",
    "kernel/keys",
];

/// Host paths outside the cluster's directory that a node's components write to.
const HOST_PATHS: &[&str] = &[
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
    "/run/containerd",
    "/var/lib/cni",
    "/etc/cni",
    "/opt/cni",
    "/run/netns",
];

/// Process names (`/proc/<pid>/comm`) that only a real node runs.
const NODE_PROCESS_NAMES: &[&str] = &[
    "containerd-shim",
    "containerd",
    "rollgate-probe",
    "rollgate-pause",
];

/// What a real node may change on the host, as sets of lines (`<kind> <item>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSnapshot {
    lines: BTreeSet<String>,
}

impl HostSnapshot {
    /// Takes a snapshot; `cluster_dir` names the processes of the cluster's node.
    pub fn take(cluster_dir: &Path) -> Result<Self> {
        let mut lines = BTreeSet::new();
        node_processes(cluster_dir, &mut lines)?;
        mounts(&mut lines)?;
        for entry in std::fs::read_dir("/sys/class/net")? {
            lines.insert(format!(
                "interface {}",
                entry?.file_name().to_string_lossy()
            ));
        }
        iptables_rules(&mut lines)?;
        cgroups(&mut lines)?;
        sysctls(&mut lines)?;
        for path in HOST_PATHS {
            if Path::new(path).exists() {
                lines.insert(format!("path {path}"));
            }
        }
        Ok(Self { lines })
    }

    /// The lines of `self` missing from `other` (prefixed `-`) and those of `other` missing
    /// from `self` (prefixed `+`).
    pub fn diff(&self, other: &HostSnapshot) -> Vec<String> {
        let gone = self
            .lines
            .difference(&other.lines)
            .map(|l| format!("- {l}"));
        let new = other
            .lines
            .difference(&self.lines)
            .map(|l| format!("+ {l}"));
        gone.chain(new).collect()
    }

    /// The lines of one kind (`process`, `mount`, `interface`, `iptables`, `cgroup`,
    /// `sysctl`, `path`).
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.lines
            .iter()
            .filter_map(move |line| line.strip_prefix(kind)?.strip_prefix(' '))
    }
}

fn node_processes(cluster_dir: &Path, lines: &mut BTreeSet<String>) -> Result<()> {
    let dir = cluster_dir.to_string_lossy();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if pid == std::process::id().to_string() {
            continue;
        }
        let read = |file: &str| std::fs::read(entry.path().join(file)).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&read("cmdline")).replace('\0', " ");
        let comm = String::from_utf8_lossy(&read("comm")).trim().to_owned();
        let cgroup = String::from_utf8_lossy(&read("cgroup")).into_owned();
        if cmdline.is_empty() {
            continue;
        }
        // `up` itself names the directory as --dir; its components name files below it.
        let component = cmdline.contains(&format!("{dir}/"));
        if component || cgroup.contains("/kubepods") || NODE_PROCESS_NAMES.contains(&comm.as_str())
        {
            lines.insert(format!("process {pid} {comm}"));
        }
    }
    Ok(())
}

fn mounts(lines: &mut BTreeSet<String>) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    for line in info.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let (Some(point), Some((_, tail))) = (fields.get(4), line.split_once(" - ")) {
            let fstype = tail.split_whitespace().next().unwrap_or("");
            lines.insert(format!("mount {point} {fstype}"));
        }
    }
    Ok(())
}

/// Every chain and rule, without packet counters. Built-in chains are listed only with a policy
/// other than ACCEPT: iptables-nft keeps a table's empty built-in chains once anything used it.
fn iptables_rules(lines: &mut BTreeSet<String>) -> Result<()> {
    for command in ["iptables-save", "ip6tables-save"] {
        let out = Command::new(command)
            .output()
            .with_context(|| format!("run {command}"))?;
        let mut table = String::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(name) = line.strip_prefix('*') {
                table = name.to_owned();
            } else if let Some(chain) = line.strip_prefix(':') {
                let mut parts = chain.split_whitespace();
                let (name, policy) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                if policy != "ACCEPT" {
                    lines.insert(format!("iptables {command} {table} chain {name} {policy}"));
                }
            } else if line.starts_with("-A ") {
                lines.insert(format!("iptables {command} {table} {line}"));
            }
        }
    }
    Ok(())
}

/// Every cgroup directory of every hierarchy, three levels deep (kubepods/<qos>/<pod>).
fn cgroups(lines: &mut BTreeSet<String>) -> Result<()> {
    fn walk(dir: &Path, depth: usize, lines: &mut BTreeSet<String>) {
        if depth == 0 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                lines.insert(format!("cgroup {}", entry.path().display()));
                walk(&entry.path(), depth - 1, lines);
            }
        }
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    for line in info.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let fstype = line
            .split_once(" - ")
            .and_then(|(_, tail)| tail.split_whitespace().next());
        if let (Some(point), Some("cgroup" | "cgroup2")) = (fields.get(4), fstype) {
            walk(Path::new(point), 3, lines);
        }
    }
    Ok(())
}

fn sysctls(lines: &mut BTreeSet<String>) -> Result<()> {
    let root = Path::new("/proc/sys");
    let mut names: Vec<String> = SYSCTLS.iter().map(|s| (*s).to_owned()).collect();
    for dir in SYSCTL_DIRS {
        if let Ok(entries) = std::fs::read_dir(root.join(dir)) {
            for entry in entries.flatten() {
                names.push(format!("{dir}/{}", entry.file_name().to_string_lossy()));
            }
        }
    }
    for name in names {
        if let Ok(value) = std::fs::read_to_string(root.join(&name)) {
            lines.insert(format!("sysctl {name}={}", value.trim()));
        }
    }
    Ok(())
}
