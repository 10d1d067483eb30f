#!/usr/bin/env bash
# Build (once) and cache Argo CD for Ferry's Argo CD test tier (tests/e2e/test_argocd_real.py):
#   argocd  (github.com/argoproj/argo-cd/v3/cmd), with the names it dispatches on as symlinks:
#   argocd-application-controller, argocd-repo-server, argocd-server
#   crds/   Argo CD's own CRDs (manifests/crds of the same module version)
#   git-verify-wrapper.sh, gpg-wrapper.sh  the repo server's helpers (its image puts them
#           in /usr/local/bin; it runs the first on every revision, so it must be on PATH)
#   kustomize  (sigs.k8s.io/kustomize/kustomize/v5), which the repo server runs from PATH
#           for a directory with a kustomization.yaml; built and stamped on its own, so
#           adding or bumping it never rebuilds Argo CD
#
# Everything comes from the Go module proxy; nothing is written inside the git repo.
# Binaries land in ${FERRY_CACHE:-$HOME/.cache/ferry}/bin/argocd-<version>/; a no-op when
# they exist and match hack/argocd/versions.env. Prints the binary directory as the last
# line of stdout. Safe to run concurrently (a second build waits on a lock).
#
# Usage: hack/argocd/build.sh [--force]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd -P)"
# shellcheck source=versions.env
source "${HERE}/versions.env"

log() { printf '[argocd/build.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[argocd/build.sh] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=hack/lib/gobuild.sh
source "$REPO_ROOT/hack/lib/gobuild.sh"

for v in ARGOCD_GO_MODULE ARGOCD_VERSION ARGOCD_MAIN_PACKAGE ARGOCD_GOTOOLCHAIN \
    KUSTOMIZE_MAIN_PACKAGE KUSTOMIZE_VERSION; do
    [[ -n "${!v:-}" ]] || die "$v is not set in $HERE/versions.env"
done
FERRY_CACHE="$(ferry_cache_dir "$REPO_ROOT")"
BIN_DIR="${FERRY_CACHE}/bin/argocd-${ARGOCD_VERSION}"
WORK_DIR="${FERRY_CACHE}/build/argocd-${ARGOCD_VERSION}"
STAMP="${BIN_DIR}/.versions"
LINKS=(argocd-application-controller argocd-repo-server argocd-server)
HELPERS=(git-verify-wrapper.sh gpg-wrapper.sh)
want_stamp="argocd=${ARGOCD_VERSION} toolchain=${ARGOCD_GOTOOLCHAIN}"
KUSTOMIZE_STAMP="${BIN_DIR}/.kustomize-version"
want_kustomize="kustomize=${KUSTOMIZE_VERSION} toolchain=${ARGOCD_GOTOOLCHAIN}"

built() {
    [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_stamp" ] || return 1
    [ -x "${BIN_DIR}/argocd" ] && [ -f "${BIN_DIR}/crds/application-crd.yaml" ] || return 1
    local l
    for l in "${LINKS[@]}"; do [ -L "${BIN_DIR}/${l}" ] || return 1; done
    for l in "${HELPERS[@]}"; do [ -x "${BIN_DIR}/${l}" ] || return 1; done
}
kustomize_built() {
    [ -f "$KUSTOMIZE_STAMP" ] && [ "$(cat "$KUSTOMIZE_STAMP")" = "$want_kustomize" ] \
        && [ -x "${BIN_DIR}/kustomize" ]
}
# kustomize into BIN_DIR (run with the build lock held and the Go environment exported).
build_kustomize() {
    local t=$SECONDS
    log "compiling ${KUSTOMIZE_MAIN_PACKAGE}@${KUSTOMIZE_VERSION} (nice 10)"
    rm -f "$KUSTOMIZE_STAMP"
    if ! (cd "$WORK_DIR" && GOBIN="${BIN_DIR}" GOFLAGS=-buildvcs=false nice -n 10 \
        go install -trimpath -ldflags "-s -w" "${KUSTOMIZE_MAIN_PACKAGE}@${KUSTOMIZE_VERSION}") \
        >"${WORK_DIR}/kustomize-build.log" 2>&1; then
        tail -n 40 "${WORK_DIR}/kustomize-build.log" >&2
        die "go install of kustomize ${KUSTOMIZE_VERSION} failed; full log: ${WORK_DIR}/kustomize-build.log"
    fi
    "${BIN_DIR}/kustomize" version >/dev/null 2>&1 || die "kustomize does not run"
    echo "$want_kustomize" > "$KUSTOMIZE_STAMP"
    log "kustomize ${KUSTOMIZE_VERSION} built in $((SECONDS - t))s"
}
up_to_date() { [ "${1:-}" != "--force" ] && built && kustomize_built; }
if up_to_date "${1:-}"; then
    log "up to date: ${want_stamp} ${want_kustomize} in ${BIN_DIR}"
    echo "${BIN_DIR}"
    exit 0
fi

command -v go >/dev/null || die "'go' not found in PATH"
mkdir -p "${BIN_DIR}" "${WORK_DIR}"
take_build_lock "${WORK_DIR}"
if up_to_date "${1:-}"; then  # another build finished while this one waited
    log "up to date: ${want_stamp} ${want_kustomize} in ${BIN_DIR}"
    echo "${BIN_DIR}"
    exit 0
fi

# Argo CD v3.6 (and kustomize v5.8) declare go 1.27.0; the go command fetches that
# toolchain from the proxy.
export GOTOOLCHAIN="$ARGOCD_GOTOOLCHAIN" CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"
log "go: $(go version)"
if [ "${1:-}" = "--force" ] || ! kustomize_built; then build_kustomize; fi
if [ "${1:-}" != "--force" ] && built; then
    log "up to date: ${want_stamp} ${want_kustomize} in ${BIN_DIR}"
    echo "${BIN_DIR}"
    exit 0
fi
rm -f "$STAMP"
start=$SECONDS

# 1. A throwaway wrapper module requiring Argo CD, with the upstream replace directives
#    that point at other modules carried over (replace applies only in the main module).
#    The one local-path replace (gitops-engine/v3 => ./gitops-engine) is dropped: that
#    module is published at the same version.
gomod="$(GOFLAGS='' downloaded_go_mod "$WORK_DIR" "$ARGOCD_GO_MODULE" "$ARGOCD_VERSION")"
go_directive="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")"
{
    echo "// Throwaway wrapper generated by ferry hack/argocd/build.sh. Do not commit."
    echo "module ferry.local/argocd-build"
    echo
    echo "go ${go_directive}"
    echo
    echo "require ${ARGOCD_GO_MODULE} ${ARGOCD_VERSION}"
    sed -n '/^replace[[:space:]]*(/,/^)/p; /^replace[[:space:]][^(]/p' "$gomod" | grep -v '=>[[:space:]]*\.' || true
} > "${WORK_DIR}/go.mod"
: > "${WORK_DIR}/go.sum"

# 2. One binary; the components are the names it is run as.
ldflags="-s -w -X github.com/argoproj/argo-cd/v3/common.version=${ARGOCD_VERSION#v}"
ldflags+=" -X github.com/argoproj/argo-cd/v3/common.buildDate=1970-01-01T00:00:00Z"
ldflags+=" -X github.com/argoproj/argo-cd/v3/common.gitTreeState=clean"
log "compiling ${ARGOCD_MAIN_PACKAGE}@${ARGOCD_VERSION} (first time: 3-8 min on 2 cores after the Kubernetes builds; nice 10)"
tmp="${BIN_DIR}/.argocd.tmp.$$"
trap 'rm -f "$tmp"' EXIT
if ! (cd "$WORK_DIR" && nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$tmp" "$ARGOCD_MAIN_PACKAGE") \
    >"${WORK_DIR}/build.log" 2>&1; then
    tail -n 40 "${WORK_DIR}/build.log" >&2
    die "go build of Argo CD ${ARGOCD_VERSION} failed; full log: ${WORK_DIR}/build.log"
fi
mv -f "$tmp" "${BIN_DIR}/argocd"
trap - EXIT
for l in "${LINKS[@]}"; do ln -sfn argocd "${BIN_DIR}/${l}"; done

# 3. Argo CD's CRDs and the repo server's helper scripts, from the same module version.
moddir="$(cd "$WORK_DIR" && go list -m -f '{{.Dir}}' "$ARGOCD_GO_MODULE")"
[ -d "${moddir}/manifests/crds" ] || die "no manifests/crds in ${moddir}"
rm -rf "${BIN_DIR}/crds" && mkdir -p "${BIN_DIR}/crds"
cp "${moddir}"/manifests/crds/*-crd.yaml "${BIN_DIR}/crds/"
for l in "${HELPERS[@]}"; do install -m 0755 "${moddir}/hack/${l}" "${BIN_DIR}/${l}"; done

# 4. Verify and stamp.
out="$("${BIN_DIR}/argocd" version --client --short 2>&1)" || die "argocd does not run: ${out}"
case "$out" in *"${ARGOCD_VERSION}"*) ;; *) die "argocd reports '${out}', expected ${ARGOCD_VERSION}" ;; esac
echo "$want_stamp" > "$STAMP"
log "done in $((SECONDS - start))s: argocd ${ARGOCD_VERSION} ($(du -h "${BIN_DIR}/argocd" | cut -f1)) in ${BIN_DIR}"
echo "${BIN_DIR}"
