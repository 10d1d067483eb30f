"""What the real node may change on the host, read back so a test can prove that
``hack/cluster/down.sh`` put all of it back (docs/local-control-plane.md).

Only the standard library: the harness runs before the project's dependencies exist.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

SYSCTLS = (
    "vm.overcommit_memory",
    "kernel.panic",
    "kernel.panic_on_oops",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
)
PATHS = ("/var/lib/kubelet", "/var/lib/cni", "/run/containerd", "/run/netns", "/etc/cni")


def _out(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return proc.stdout if proc.returncode == 0 else f"<{cmd[0]} failed: {proc.stderr.strip()}>"


def _rules(tool: str) -> list[str]:
    """``iptables-save`` without comments and packet counters."""
    lines = _out(tool).splitlines()
    return [re.sub(r"\[\d+:\d+\]", "", ln) for ln in lines if not ln.startswith("#")]


def host_state(cluster_dir: Path) -> dict[str, object]:
    """The firewall, sysctls, links, cgroups, paths and mounts the node touches."""
    cgroups = sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/ferry-node"))
    mounts = [
        m
        for m in _out("findmnt", "-rn", "-o", "TARGET").splitlines()
        if m.startswith((str(cluster_dir), "/run/netns", "/run/containerd", "/var/lib/kubelet"))
    ]
    return {
        "iptables": _rules("iptables-save"),
        "ip6tables": _rules("ip6tables-save"),
        "nft tables": sorted(_out("nft", "list", "tables").splitlines()),
        "sysctls": {k: _out("sysctl", "-n", k).strip() for k in SYSCTLS},
        "links": sorted(ln.split()[0] for ln in _out("ip", "-br", "link").splitlines() if ln),
        "cgroups": cgroups,
        "paths": {p: Path(p).exists() for p in PATHS},
        "mounts": sorted(mounts),
        "node lock": Path("/run/ferry-node.owner").exists(),
    }
