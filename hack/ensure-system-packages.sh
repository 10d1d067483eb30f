#!/usr/bin/env bash
# Ensure the Debian packages the Ferry test suite needs are installed.
#
# The database tests start their OWN throwaway PostgreSQL and MariaDB servers
# (see tests/harness/dbservers.py), and the Git source tests their own sshd
# (see tests/harness/gitserver.py), and the Argo CD tier its own Redis
# (tests/harness/argocd.py); they only need the server binaries, not
# the distro's system services. This script therefore installs the packages
# while preventing (via a temporary policy-rc.d) the postinst scripts from
# starting services, and afterwards stops/disables any that still run.
#
# Usage: hack/ensure-system-packages.sh [extra-debian-package ...]
#
# Idempotent: if everything is present it only reports that.
# Exit status: 0 = all present (or installed), 1 = something is missing and
# could not be installed (not root / no apt-get), or installation failed.
set -euo pipefail

log() { printf 'ensure-system-packages: %s\n' "$*"; }

# --- checks -----------------------------------------------------------------

# Newest /usr/lib/postgresql/<ver>/bin that holds initdb, pg_ctl and postgres.
pg_server_bindir() {
    local dir
    local -a dirs=()
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -d "$dir" ]] && dirs+=("$dir")
    done
    [[ ${#dirs[@]} -gt 0 ]] || return 1
    for dir in $(printf '%s\n' "${dirs[@]}" | sort -t/ -k4,4 -n -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done
    return 1
}

have_cmd() {
    # Also look in sbin dirs: mariadbd lives in /usr/sbin, which a non-root
    # PATH may lack.
    PATH="$PATH:/usr/sbin:/sbin:/usr/local/sbin" command -v "$1" >/dev/null 2>&1
}

# Fills the global arrays MISSING (human-readable) and PACKAGES (apt names).
check_all() {
    MISSING=()
    PACKAGES=()
    if ! pg_server_bindir >/dev/null; then
        MISSING+=("PostgreSQL server binaries (initdb, pg_ctl, postgres under /usr/lib/postgresql/*/bin)")
        PACKAGES+=(postgresql)
    fi
    if ! have_cmd pg_dump || ! have_cmd pg_restore || ! have_cmd psql; then
        MISSING+=("PostgreSQL client tools (pg_dump, pg_restore, psql)")
        PACKAGES+=(postgresql-client)
    fi
    if ! { have_cmd mariadbd || have_cmd mysqld; } || ! have_cmd mariadb-install-db; then
        MISSING+=("MariaDB server (mariadbd/mysqld, mariadb-install-db)")
        PACKAGES+=(mariadb-server)
    fi
    if ! have_cmd mariadb && ! have_cmd mysql; then
        MISSING+=("MariaDB client (mariadb)")
        PACKAGES+=(mariadb-client)
    fi
    if ! have_cmd git; then
        MISSING+=("git")
        PACKAGES+=(git)
    fi
    if ! have_cmd sshd; then
        MISSING+=("OpenSSH server (sshd, for the Git-over-SSH tests)")
        PACKAGES+=(openssh-server)
    fi
    if ! have_cmd ssh || ! have_cmd ssh-keygen; then
        MISSING+=("OpenSSH client (ssh, ssh-keygen)")
        PACKAGES+=(openssh-client)
    fi
    if ! have_cmd redis-server; then
        MISSING+=("Redis server (Argo CD's cache, for the Argo CD tier)")
        PACKAGES+=(redis-server)
    fi
    if ! have_cmd openssl; then
        MISSING+=("openssl")
        PACKAGES+=(openssl)
    fi
    if ! have_cmd node || ! have_cmd npm; then
        MISSING+=("Node.js and npm (the real-NocoBase test tier)")
        PACKAGES+=(nodejs npm)
    fi
    # node-gyp builds NocoBase's sqlite3 driver from the npm registry's sources once
    # (tests/harness/nocobase.py: its prebuilt binary is on GitHub, unreachable here).
    for cmd_pkg in make:make g++:g++; do
        have_cmd "${cmd_pkg%%:*}" && continue
        MISSING+=("${cmd_pkg#*:} (NocoBase's SQLite driver, built from source)")
        PACKAGES+=("${cmd_pkg#*:}")
    done
    # The real node (hack/node) and the images built without a registry (hack/image).
    local cmd_pkg pkg
    for cmd_pkg in runc:runc /usr/lib/cni/bridge:containernetworking-plugins buildah:buildah \
        debootstrap:debootstrap iptables:iptables conntrack:conntrack nft:nftables gcc:gcc \
        findmnt:util-linux; do
        if [[ "${cmd_pkg%%:*}" == /* ]]; then [[ -x "${cmd_pkg%%:*}" ]] && continue
        elif have_cmd "${cmd_pkg%%:*}"; then continue; fi
        MISSING+=("${cmd_pkg#*:} (the real node and its images)")
        PACKAGES+=("${cmd_pkg#*:}")
    done
    if ! dpkg-query -W -f='${Status}' libc6-dev 2>/dev/null | grep -q 'install ok installed'; then
        MISSING+=("libc6-dev (the static pause binary)")
        PACKAGES+=(libc6-dev)
    fi
    for pkg in "${EXTRA_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            MISSING+=("extra package $pkg")
            PACKAGES+=("$pkg")
        fi
    done
}

# --- service handling -------------------------------------------------------

POLICY_RC=/usr/sbin/policy-rc.d
CREATED_POLICY_RC=0

block_service_starts() {
    if [[ -e "$POLICY_RC" ]]; then
        log "existing $POLICY_RC left in place"
        return 0
    fi
    printf '#!/bin/sh\n# temporary, created by ferry hack/ensure-system-packages.sh\nexit 101\n' >"$POLICY_RC"
    chmod 0755 "$POLICY_RC"
    CREATED_POLICY_RC=1
    log "created temporary $POLICY_RC (prevents package postinst from starting services)"
}

restore_service_policy() {
    if [[ "$CREATED_POLICY_RC" == 1 ]]; then
        rm -f "$POLICY_RC"
        CREATED_POLICY_RC=0
        log "removed temporary $POLICY_RC"
    fi
}

# Stop and disable the distro's own database services, in case they run anyway
# (e.g. policy-rc.d was ignored or they were already running). The system's
# sshd is deliberately left alone: it may be how the developer reached this
# machine, and the tests' own sshd listens on a free port of 127.0.0.1.
stop_system_services() {
    local svc
    for svc in mariadb mysql postgresql redis-server; do
        if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
            if systemctl is-enabled --quiet "$svc" 2>/dev/null \
                || systemctl is-active --quiet "$svc" 2>/dev/null; then
                systemctl disable --now "$svc" >/dev/null 2>&1 || true
                log "stopped and disabled system service $svc"
            fi
        elif [[ -x "/etc/init.d/$svc" ]]; then
            if "/etc/init.d/$svc" status >/dev/null 2>&1; then
                "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
                log "stopped system service $svc"
            fi
            if command -v update-rc.d >/dev/null 2>&1; then
                update-rc.d "$svc" disable >/dev/null 2>&1 || true
            fi
        fi
    done
    # Debian's PostgreSQL cluster (if pg_ctlcluster stop did not work above).
    if command -v pg_lsclusters >/dev/null 2>&1; then
        local ver name _rest
        while read -r ver name _rest; do
            [[ "$ver" =~ ^[0-9]+$ ]] || continue
            if pg_ctlcluster "$ver" "$name" status >/dev/null 2>&1; then
                pg_ctlcluster "$ver" "$name" stop >/dev/null 2>&1 || true
                log "stopped PostgreSQL cluster $ver/$name"
            fi
        done < <(pg_lsclusters --no-header 2>/dev/null || true)
    fi
}

# --- main -------------------------------------------------------------------

EXTRA_PACKAGES=("$@")
check_all

if [[ ${#MISSING[@]} -eq 0 ]]; then
    log "all required tools present (PostgreSQL bin dir: $(pg_server_bindir)); nothing to do"
    exit 0
fi

log "missing:"
for item in "${MISSING[@]}"; do
    log "  - $item"
done

if [[ "$(id -u)" -ne 0 ]]; then
    log "not running as root; cannot install. Run as root or install: ${PACKAGES[*]}"
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    log "apt-get not available; install these packages by other means: ${PACKAGES[*]}"
    exit 1
fi

TO_INSTALL=("${PACKAGES[@]}")
trap restore_service_policy EXIT
block_service_starts

log "running apt-get update"
apt-get update -qq
log "installing: ${PACKAGES[*]}"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"

restore_service_policy
stop_system_services

check_all
if [[ ${#MISSING[@]} -ne 0 ]]; then
    log "still missing after installation:"
    for item in "${MISSING[@]}"; do
        log "  - $item"
    done
    exit 1
fi
log "installed ${TO_INSTALL[*]}; all required tools present (PostgreSQL bin dir: $(pg_server_bindir))"
