#!/usr/bin/env bash
# Build (once) and cache the two images the local cluster needs that no registry gives us:
#   localhost/ferry-base:bookworm  Debian 12 (debootstrap --variant=minbase) with python
#                                  3.11 (`python`, `python -m venv`, pip in the venv), git,
#                                  openssh-client and ca-certificates; the PYTHON_IMAGE of
#                                  Ferry's Dockerfile (hack/image/build.sh)
#   localhost/pause:ferry          the static pause binary of hack/node/build.sh, the
#                                  sandbox image of the node's containerd
#
# Both live in Ferry's own buildah storage, ${FERRY_CACHE:-$HOME/.cache/ferry}/containers,
# and are exported as OCI archives to <cache>/images/{ferry-base-bookworm,pause-ferry}.tar
# (`ctr -n k8s.io images import FILE`). Each is rebuilt only when its inputs change (a
# stamp next to the archive: Debian suite, mirror, package list; the pause binary's hash).
# Needs root, debootstrap, buildah, and the Debian mirror (deb.debian.org).
#
# Usage: hack/image/base.sh [--force]
# Prints "<image ref> <archive path>" for the base, then for pause, as the last two lines.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd -P)"
# shellcheck source=hack/cluster/versions.env
source "${REPO_ROOT}/hack/cluster/versions.env"

log() { printf '[image/base.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[image/base.sh] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=hack/lib/gobuild.sh
source "$REPO_ROOT/hack/lib/gobuild.sh"
# shellcheck source=hack/image/lib.sh
source "$HERE/lib.sh"

SUITE=bookworm
MIRROR=http://deb.debian.org/debian
SECURITY_MIRROR=http://deb.debian.org/debian-security
# python-is-python3: the Dockerfile runs `python`, as python:3.11-slim has it.
# python3-venv: `python -m venv` with pip (ensurepip's bundled wheel).
# git, openssh-client: Migrations from Git; ca-certificates: TLS to S3, Git and PyPI.
PACKAGES=(python3 python3-venv python-is-python3 git openssh-client ca-certificates)
BASE_REF="localhost/ferry-base:${SUITE}"
PAUSE_REF="localhost/pause:ferry"

FORCE=0
case "${1:-}" in
    "") ;;
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
esac

FERRY_CACHE="$(ferry_cache_dir "$REPO_ROOT")"
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, and buildah's overlay storage)"
for tool in buildah debootstrap; do
    command -v "$tool" >/dev/null || die "'$tool' not found (apt-get install $tool)"
done
ferry_image_storage "$FERRY_CACHE"
WORK_DIR="${FERRY_CACHE}/build/image-base"
BASE_TAR="${IMAGES}/ferry-base-${SUITE}.tar"
PAUSE_TAR="${IMAGES}/pause-ferry.tar"
base_inputs="suite=${SUITE} mirror=${MIRROR} security=${SECURITY_MIRROR} packages=${PACKAGES[*]}"

# The pause binary: the node build's, else compiled here from the same Kubernetes module.
pause_binary() {
    local node_pause="${FERRY_CACHE}/bin/node-${KUBERNETES_VERSION}/pause" src out
    if [ -x "$node_pause" ]; then echo "$node_pause"; return; fi
    out="${WORK_DIR}/pause"
    src="$(go env GOMODCACHE)/k8s.io/kubernetes@${KUBERNETES_VERSION}/build/pause/linux/pause.c"
    [ -f "$src" ] || die "no ${node_pause} and no ${src}: run hack/node/build.sh first"
    gcc -Os -static -Wall -o "$out" -DVERSION="${KUBERNETES_VERSION}-ferry" "$src" \
        || die "gcc -static of ${src} failed (needs libc6-dev)"
    echo "$out"
}

# Up to date: stamp matches, archive holds the stored image (re-read from the archive
# when only the storage was wiped).
current() { # ref tar inputs
    [ "$FORCE" = 0 ] && [ -f "$2.inputs" ] && [ "$(cat "$2.inputs")" = "$3" ] && [ -f "$2" ] \
        || return 1
    if ! image_present "$1"; then
        log "restoring $1 from $2"
        buildah pull --quiet "oci-archive:$2" >/dev/null || return 1
        printf '%s\n' "$(image_id "$1")" > "$2.id"
    fi
    archive_current "$1" "$2"
}

# On any exit: drop the working container of a failed build, restore the host paths.
WORK_CTR=""
on_exit() {
    local rc=$?
    [ -z "$WORK_CTR" ] || buildah rm "$WORK_CTR" >/dev/null 2>&1 || true
    host_paths_restore
    [ "$rc" -eq 0 ] || printf '[image/base.sh] ERROR: failed (exit %s); work dir %s\n' "$rc" "$WORK_DIR" >&2
}

build_base() {
    local ctr mnt
    log "debootstrap --variant=minbase ${SUITE} + ${PACKAGES[*]} (about 1.5 min)"
    ctr="$(buildah from scratch)"
    WORK_CTR="$ctr"
    mnt="$(buildah mount "$ctr")"
    local include
    include="$(IFS=,; echo "${PACKAGES[*]}")"
    debootstrap --variant=minbase --include="$include" "$SUITE" "$mnt" "$MIRROR" \
        > "${WORK_DIR}/debootstrap.log" 2>&1 \
        || die "debootstrap failed; see ${WORK_DIR}/debootstrap.log"
    # Keep apt usable (the Dockerfile runs apt-get update/install), with the point and
    # security updates a python:3.11-slim base would have.
    printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
        "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "$SECURITY_MIRROR" "$SUITE" \
        > "$mnt/etc/apt/sources.list"
    buildah umount "$ctr" >/dev/null
    log "apt-get upgrade (security and point updates)"
    buildah run --isolation chroot --network host "$ctr" -- sh -euc '
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get -y -qq -o Dpkg::Options::=--force-confold upgrade >/dev/null
        apt-get clean
        rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log /var/log/bootstrap.log
    ' >&2 || die "apt-get upgrade in the base image failed"
    buildah config --env LANG=C.UTF-8 --cmd '["python"]' \
        --label "io.ferry.inputs=${base_inputs}" "$ctr"
    buildah commit --quiet --rm "$ctr" "$BASE_REF" >/dev/null || die "buildah commit ${BASE_REF} failed"
    WORK_CTR=""
    check_base
}

# The base does what the Dockerfile expects of python:3.11-slim.
check_base() {
    local ctr out
    ctr="$(buildah from --pull-never "$BASE_REF")"
    WORK_CTR="$ctr"
    out="$(buildah run --isolation chroot --network host "$ctr" -- sh -euc '
        python --version
        python -m venv /tmp/v && /tmp/v/bin/pip --version >/dev/null
        git --version >/dev/null && ssh -V 2>/dev/null && test -s /etc/ssl/certs/ca-certificates.crt
        apt-get --version >/dev/null && grep -q "^deb " /etc/apt/sources.list
    ' 2>&1)" || die "the base image fails its check: ${out}"
    buildah rm "$ctr" >/dev/null
    WORK_CTR=""
    case "$out" in "Python 3.11."*) ;; *) die "the base image's python is '${out}', expected 3.11" ;; esac
    log "checked: ${out}; venv+pip, git, ssh, CA certificates, apt sources"
}

build_pause() {
    local ctr
    ctr="$(buildah from scratch)"
    WORK_CTR="$ctr"
    buildah copy --quiet --chmod 0755 "$ctr" "$PAUSE_BIN" /pause >/dev/null
    buildah config --entrypoint '["/pause"]' --user 65535:65535 \
        --label "io.ferry.inputs=${pause_inputs}" "$ctr"
    buildah commit --quiet --rm "$ctr" "$PAUSE_REF" >/dev/null || die "buildah commit ${PAUSE_REF} failed"
    WORK_CTR=""
}

mkdir -p "$WORK_DIR"
host_paths_record
trap on_exit EXIT
take_build_lock "$WORK_DIR"
start=$SECONDS

if current "$BASE_REF" "$BASE_TAR" "$base_inputs"; then
    log "up to date: ${BASE_REF} (${base_inputs})"
else
    rm -f "${BASE_TAR}.inputs"
    build_base
    export_oci_archive "$BASE_REF" "$BASE_TAR"
    echo "$base_inputs" > "${BASE_TAR}.inputs"
    log "built ${BASE_REF} -> ${BASE_TAR} ($(du -h "$BASE_TAR" | cut -f1)) in $((SECONDS - start)) s"
fi

PAUSE_BIN="$(pause_binary)"
pause_inputs="pause-sha256=$(sha256sum "$PAUSE_BIN" | cut -d' ' -f1)"
if current "$PAUSE_REF" "$PAUSE_TAR" "$pause_inputs"; then
    log "up to date: ${PAUSE_REF}"
else
    rm -f "${PAUSE_TAR}.inputs"
    build_pause
    export_oci_archive "$PAUSE_REF" "$PAUSE_TAR"
    echo "$pause_inputs" > "${PAUSE_TAR}.inputs"
    log "built ${PAUSE_REF} -> ${PAUSE_TAR}"
fi

echo "${BASE_REF} ${BASE_TAR}"
echo "${PAUSE_REF} ${PAUSE_TAR}"
