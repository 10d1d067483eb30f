#!/usr/bin/env bash
# `make image`: build Ferry's operator image from the repository's Dockerfile with buildah,
# on the Debian base of hack/image/base.sh (built first when missing), in Ferry's own
# buildah storage under ${FERRY_CACHE:-$HOME/.cache/ferry}/containers. No Docker engine,
# no registry: the image is exported as an OCI archive for `ctr -n k8s.io images import`.
#
#   hack/image/build.sh             tag dev-<hash of the build context and the base image>
#   hack/image/build.sh --tag T     tag T instead (always rebuilt; layers stay cached)
#
# The default tag changes whenever anything the image is built from changes (the files the
# .dockerignore lets in, the Dockerfile, the base image), so `helm upgrade` to a rebuilt
# image sees a new reference; an unchanged tree is a no-op. The image is checked as UID
# 10001: `ferry --version`, `ferry --help`, its imports, git and ssh.
#
# The build's RUN steps trust what the host trusts: the host's CA bundle
# (FERRY_IMAGE_CA_BUNDLE, default /etc/ssl/certs/ca-certificates.crt; empty: none) is
# mounted read-only over the image's for the build only, never stored in the image, so
# pip reaches PyPI through a TLS-inspecting proxy when the host does.
#
# Prints "<image ref> <archive path>" as the last stdout line; progress goes to stderr.
# The archive: <cache>/images/ferry-<tag>.tar (oci-archive; its index names the ref).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd -P)"

log() { printf '[image/build.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[image/build.sh] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=hack/lib/gobuild.sh
source "$REPO_ROOT/hack/lib/gobuild.sh"
# shellcheck source=hack/image/lib.sh
source "$HERE/lib.sh"

TAG="" derived=1
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) [ $# -ge 2 ] || die "--tag needs a value"; TAG=$2 derived=0; shift 2 ;;
        --tag=*) TAG=${1#--tag=} derived=0; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
done
# The OCI/Docker tag grammar: nothing else reaches buildah or a file name.
if [ "$derived" = 0 ] && ! [[ "$TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
    die "invalid tag '$TAG' (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')"
fi

FERRY_CACHE="$(ferry_cache_dir "$REPO_ROOT")"
[ "$(id -u)" = 0 ] || die "needs root (buildah's overlay storage)"
command -v buildah >/dev/null || die "'buildah' not found (apt-get install buildah)"
ferry_image_storage "$FERRY_CACHE"
WORK_DIR="${FERRY_CACHE}/build/image-ferry"
CA_BUNDLE="${FERRY_IMAGE_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}"

WORK_CTR=""
on_exit() {
    local rc=$?
    [ -z "$WORK_CTR" ] || buildah rm "$WORK_CTR" >/dev/null 2>&1 || true
    host_paths_restore
    [ "$rc" -eq 0 ] || printf '[image/build.sh] ERROR: failed (exit %s); see messages above\n' "$rc" >&2
}
host_paths_record
trap on_exit EXIT

check_image() {
    local out
    WORK_CTR="$(buildah from --pull-never "$REF")"
    # shellcheck disable=SC2016  # expanded by the image's shell, not this one
    out="$(buildah run --isolation chroot --network host --user 10001:10001 "$WORK_CTR" -- sh -euc '
        echo "uid $(id -u) gid $(id -g)"
        ferry --version
        ferry --help >/dev/null
        python -c "import controller.handlers, controller.db, controller.backups, controller.gitsource"
        git --version
        ssh -V 2>&1
        ! touch /opt/ferry/bin/ferry 2>/dev/null
    ' 2>&1)" || die "the image fails its check as UID 10001: ${out}"
    buildah rm "$WORK_CTR" >/dev/null
    WORK_CTR=""
    case "$out" in "uid 10001 gid 10001"*) ;; *) die "the image does not run as 10001: ${out}" ;; esac
    log "checked as UID 10001: $(tr '\n' ';' <<<"$out")"
}

# Storage stays bounded: the newest KEEP dev-* images and their archives (~250 MB each;
# the images share all but their last layers) stay, older ones go, and so do the
# intermediate images only they used.
# The last named stage of this build is tagged first so that its layers (the dependencies,
# minutes to rebuild) stay as the next build's cache.
KEEP=5
prune_old_dev() {
    local old t stage
    # shellcheck disable=SC2012  # names are ours: ferry-dev-<hex>.tar
    ls -t "$IMAGES"/ferry-dev-*.tar 2>/dev/null | tail -n +$((KEEP + 1)) | while IFS= read -r old; do
        t="${old##*/ferry-}"
        t="${t%.tar}"
        log "pruning ${old} and localhost/ferry:${t}"
        rm -f "$old" "$old.id"
        buildah rmi "localhost/ferry:${t}" >/dev/null 2>&1 || true
    done
    stage="$(sed -n 's/^FROM[[:space:]].*[[:space:]][Aa][Ss][[:space:]]\{1,\}\([A-Za-z0-9_.-]*\)[[:space:]]*$/\1/p' \
        "$REPO_ROOT/Dockerfile" | tail -n 1)"
    if [ -n "$stage" ]; then
        bud --target "$stage" --tag "localhost/ferry-build-cache:${stage}" >/dev/null \
            || die "tagging the build stage '${stage}' for the cache failed"
    fi
    buildah rmi --prune >/dev/null || log "warning: buildah rmi --prune failed; storage not pruned"
}

# buildah bud of the repository's Dockerfile on the base image; --force-rm: a failed
# step leaves no working container behind.
bud() {
    local ca_mount=()
    if [ -n "$CA_BUNDLE" ]; then
        [ -f "$CA_BUNDLE" ] || die "FERRY_IMAGE_CA_BUNDLE=${CA_BUNDLE} is not a file"
        ca_mount=(--volume "${CA_BUNDLE}:/etc/ssl/certs/ca-certificates.crt:ro")
    fi
    buildah bud --pull-never --isolation chroot --network host --layers --force-rm \
        "${ca_mount[@]}" --build-arg "PYTHON_IMAGE=${BASE_REF}" \
        --file "$REPO_ROOT/Dockerfile" "$@" "$REPO_ROOT" >&2
}

start=$SECONDS
base_out="$("$HERE/base.sh")" || die "hack/image/base.sh failed"
BASE_REF="$(tail -n 2 <<<"$base_out" | head -n 1 | cut -d' ' -f1)"
image_present "$BASE_REF" || die "base.sh did not leave ${BASE_REF} in the storage"

mkdir -p "$WORK_DIR"
take_build_lock "$WORK_DIR"
if [ "$derived" = 1 ]; then TAG="dev-$(context_digest "$REPO_ROOT" "$(image_id "$BASE_REF")")"; fi
REF="localhost/ferry:${TAG}"
ARCHIVE="${IMAGES}/ferry-${TAG}.tar"

if [ "$derived" = 1 ] && image_present "$REF" && archive_current "$REF" "$ARCHIVE"; then
    log "up to date: ${REF} (nothing the image is built from changed)"
else
    log "buildah bud ${REPO_ROOT}/Dockerfile -> ${REF} (PYTHON_IMAGE=${BASE_REF})"
    bud --tag "$REF" || die "buildah bud failed"
    check_image
    export_oci_archive "$REF" "$ARCHIVE"
    log "built ${REF} -> ${ARCHIVE} ($(du -h "$ARCHIVE" | cut -f1)) in $((SECONDS - start)) s"
    prune_old_dev
fi
echo "${REF} ${ARCHIVE}"
