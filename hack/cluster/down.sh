#!/usr/bin/env bash
# Stop the local control plane started by hack/cluster/up.sh [DIR].
#
# Usage: hack/cluster/down.sh [DIR] [--purge]
#   DIR defaults to ${FERRY_CACHE:-$HOME/.cache/ferry}/cluster
#   --purge also deletes DIR (etcd data, certificates, logs).
# Only the processes whose pids up.sh recorded in DIR/pids/ are signalled.
set -euo pipefail

FERRY_CACHE="${FERRY_CACHE:-${HOME}/.cache/ferry}"
DIR="${FERRY_CACHE}/cluster"
PURGE=0
for a in "$@"; do
    case "$a" in
        --purge) PURGE=1 ;;
        *) DIR="$a" ;;
    esac
done

log() { printf '[down.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

stop() { # name
    local f="$DIR/pids/$1.pid" pid cmdline
    [ -f "$f" ] || return 0
    pid="$(cat "$f")"
    # Guard against pid reuse: only signal the process if it still runs our binary.
    cmdline="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null || true)"
    if kill -0 "$pid" 2>/dev/null && [[ "$cmdline" != *"/$1 "* ]]; then
        log "pid $pid is no longer $1; not signalling it"
    elif kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$1 (pid $pid) did not stop after 10s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped $1 (pid $pid)"
    fi
    rm -f "$f"
}

# The node first (its pods and host changes), then the control plane.
"$(dirname "${BASH_SOURCE[0]}")/../node/down.sh" "$DIR"

if [ -d "$DIR/pids" ]; then
    # Reverse start order: clients first, etcd last.
    stop kube-controller-manager
    stop kube-apiserver
    stop etcd
fi

if [ "$PURGE" = 1 ] && [ -d "$DIR" ]; then
    rm -rf "$DIR"
    log "removed $DIR"
fi
