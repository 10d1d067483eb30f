#!/usr/bin/env bash
# Stop the real node of the cluster in DIR and put the host back exactly as
# hack/node/up.sh found it: processes, containers, mounts, network namespaces, cgroups,
# the bridge, iptables/ip6tables, sysctls and the host paths the node created.
# Safe to run twice; a no-op for a cluster without a node. Called by hack/cluster/down.sh.
#
# Usage: hack/node/down.sh DIR
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=net.env
source "$HERE/net.env"
DIR="${1:?usage: down.sh DIR}"
[ -d "$DIR" ] || exit 0
DIR="$(cd "$DIR" && pwd -P)"
NODE="$DIR/node"
[ -d "$NODE" ] || exit 0
SOCK="$NODE/containerd/containerd.sock"

log() { printf '[node/down.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

stop() { # name
    local f="$DIR/pids/$1.pid" pid
    [ -f "$f" ] || return 0
    pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null && [[ "$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" == *"/$1 "* ]]; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        log "stopped $1 (pid $pid)"
    fi
    rm -f "$f"
}

# Every container and sandbox of the node, then the shims that ran them.
stop_containers() {
    local ctr
    ctr="$(grep -s '^FERRY_NODE_BIN=' "$DIR/cluster.env" | cut -d= -f2)/ctr"
    if [ -S "$SOCK" ] && [ -x "$ctr" ]; then
        local t
        for t in $("$ctr" --address "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
            "$ctr" --address "$SOCK" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1
        done
        sleep 0.5
        for t in $("$ctr" --address "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
            "$ctr" --address "$SOCK" -n k8s.io tasks delete -f "$t" >/dev/null 2>&1
        done
    fi
    local pid
    for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $SOCK" 2>/dev/null); do
        kill -KILL "$pid" 2>/dev/null
    done
    for pid in $(pgrep -f "$NODE/" 2>/dev/null); do  # anything else still running from the node
        [ "$pid" = "$$" ] || kill -KILL "$pid" 2>/dev/null
    done
}

unmount_all() {
    local m pattern="^$NODE/"
    # /run/containerd only if the node created it (a containerd of the host's keeps its own).
    grep -qx /run/containerd "$NODE/host/absent" 2>/dev/null && pattern+="|^/run/containerd/"
    # Deepest first: overlay rootfs, shm, projected tokens and kubelet's self bind mount.
    for m in $(findmnt -rn -o TARGET | grep -E "$pattern" | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
    done
    # The pods' network namespaces: only those the host did not have before.
    [ -f "$NODE/host/netns" ] || return 0
    for m in /run/netns/cni-*; do
        [ -e "$m" ] || continue
        grep -qx "$(basename "$m")" "$NODE/host/netns" && continue
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
        rm -f "$m"
    done
}

remove_cgroups() {
    local h
    for h in /sys/fs/cgroup/*; do
        [ -d "$h/$CGROUP_ROOT" ] || continue
        find "$h/$CGROUP_ROOT" -depth -type d -exec rmdir {} \; 2>/dev/null
        [ -d "$h/$CGROUP_ROOT" ] && log "could not remove $h/$CGROUP_ROOT (a process is still in it)"
    done
}

# iptables-restore replaces whole tables; a table the host had no rules in is flushed.
restore_iptables() {
    local host="$NODE/host" fam tool table
    for fam in v4 v6; do
        [ -f "$host/iptables.$fam" ] || continue
        if [ "$fam" = v4 ]; then tool=iptables; else tool=ip6tables; fi
        "$tool-restore" < "$host/iptables.$fam" || log "$tool-restore failed"
        for table in filter nat mangle raw; do
            grep -qx "\*$table" "$host/iptables.$fam" && continue
            "$tool" -t "$table" -F 2>/dev/null && "$tool" -t "$table" -X 2>/dev/null
        done
    done
    [ -f "$host/nft-tables" ] && command -v nft >/dev/null || return 0
    local line
    nft list tables | while IFS= read -r line; do
        grep -qxF "$line" "$host/nft-tables" && continue
        case "$line" in
            "table ip "*|"table ip6 "*) read -r -a words <<<"$line"; nft delete table "${words[1]}" "${words[2]}" 2>/dev/null || log "could not delete nft $line" ;;
        esac
    done
}

restore_host() {
    local host="$NODE/host" line p
    [ -f "$host/recorded" ] || return 0
    restore_iptables
    while IFS= read -r line; do sysctl -qw "$line" >/dev/null || log "could not restore $line"; done < "$host/sysctl"
    while IFS= read -r p; do [ -n "$p" ] && rm -rf "$p"; done < "$host/absent"
    rm -f "$host/recorded"
}

stop kube-proxy
stop coredns
stop kubelet
stop kube-scheduler
stop_containers
stop containerd
unmount_all
remove_cgroups
ip link del "$BRIDGE" 2>/dev/null
restore_host
rm -rf --one-file-system "$NODE/containerd" "$NODE/kubelet" "$NODE/cni"
[ "$(cat "$NODE_LOCK" 2>/dev/null)" = "$DIR" ] && rm -f "$NODE_LOCK"
log "node of $DIR stopped; host restored"
exit 0
