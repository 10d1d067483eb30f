#!/usr/bin/env bash
# Build the pinned `helm` from the Go module proxy into Ferry's binary cache, outside
# the repository (the chart is linted and rendered with it: hack/check-chart.sh,
# tests/unit/test_chart.py, tests/e2e/test_rbac.py).
#
#   hack/helm/build.sh              build if missing; print the binary's path (last stdout line)
#   hack/helm/build.sh --print-path print where the binary is/would be; do not build
#   hack/helm/build.sh --force      rebuild even if the binary exists
#
# Pins: hack/helm/versions.env.  Cache: ${FERRY_CACHE:-$HOME/.cache/ferry}
#   <cache>/bin/helm-<version>/helm     the binary
#   <cache>/build/helm-<version>/       build log and lock
# Idempotent and safe to run concurrently (flock).  Progress goes to stderr.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd -P)"

log() { printf '[helm/build] %s\n' "$*" >&2; }
die() { printf '[helm/build] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=hack/lib/gobuild.sh
source "$REPO_ROOT/hack/lib/gobuild.sh"

mode=build
case "${1:-}" in
  "") ;;
  --print-path) mode=print ;;
  --force) mode=force ;;
  -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
  *) die "unknown argument: $1 (try --help)" ;;
esac

# shellcheck source=hack/helm/versions.env disable=SC1091
source "$SCRIPT_DIR/versions.env"
for v in HELM_GO_MODULE HELM_VERSION HELM_MAIN_PACKAGE HELM_GOTOOLCHAIN; do
  [[ -n "${!v:-}" ]] || die "$v is not set in $SCRIPT_DIR/versions.env"
done

CACHE="$(ferry_cache_dir "$REPO_ROOT")"

ID="helm-${HELM_VERSION}"
BIN_DIR="$CACHE/bin/$ID"
BIN="$BIN_DIR/helm"
WORK="$CACHE/build/$ID"

if [[ "$mode" == print ]]; then
  echo "$BIN"
  exit 0
fi

verify() {
  local out
  out="$("$1" version --short 2>&1)" || { printf '%s\n' "$out" >&2; return 1; }
  [[ "$out" == "$HELM_VERSION"* ]] || { log "$1 reports $out, expected $HELM_VERSION"; return 1; }
  log "verified: $1 version --short -> $out"
}

if [[ "$mode" == build && -x "$BIN" ]]; then
  verify "$BIN" || die "cached binary $BIN is not $HELM_VERSION or does not run; re-run with --force"
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || die "'go' not found in PATH (need Go >= the module's go directive)"
mkdir -p "$BIN_DIR" "$WORK"

take_build_lock "$WORK"   # then re-check: another build may have finished meanwhile
if [[ "$mode" == build && -x "$BIN" ]] && verify "$BIN"; then
  echo "$BIN"
  exit 0
fi

export GOTOOLCHAIN="$HELM_GOTOOLCHAIN" CGO_ENABLED=0 GOFLAGS="-buildvcs=false"
log "go: $(go version)"
start=$SECONDS

log "step 1/2: downloading $HELM_GO_MODULE@$HELM_VERSION"
gomod="$(downloaded_go_mod "$WORK" "$HELM_GO_MODULE" "$HELM_VERSION")"

# What helm's Makefile injects: its version, and the Kubernetes version `helm template`
# and `helm lint` assume, derived from the client-go it requires (v0.37.x -> 1.37).
client_go="$(sed -n 's/^[[:space:]]*k8s\.io\/client-go v\([0-9]*\)\.\([0-9]*\)\..*/\1 \2/p' "$gomod" | head -n1)"
[[ -n "$client_go" ]] || die "no k8s.io/client-go requirement in $gomod"
read -r cg_major cg_minor <<<"$client_go"
k8s_major=$((cg_major + 1))
pkg="$HELM_GO_MODULE"
ldflags="-s -w -X $pkg/internal/version.version=$HELM_VERSION -X $pkg/internal/version.gitTreeState=clean"
ldflags+=" -X $pkg/pkg/lint/rules.k8sVersionMajor=$k8s_major -X $pkg/pkg/lint/rules.k8sVersionMinor=$cg_minor"
ldflags+=" -X $pkg/pkg/chartutil.k8sVersionMajor=$k8s_major -X $pkg/pkg/chartutil.k8sVersionMinor=$cg_minor"

# `go install pkg@version` builds with exactly the module's own go.mod/go.sum (it refuses
# modules with replace directives, so nothing upstream is silently dropped).
log "step 2/2: compiling $HELM_MAIN_PACKAGE@$HELM_VERSION (Kubernetes $k8s_major.$cg_minor; a few minutes on 2 cores)"
tmpdir="$(mktemp -d "$BIN_DIR/.install.XXXXXX")"
trap 'rm -rf "$tmpdir"' EXIT
if ! (cd "$WORK" && GOBIN="$tmpdir" go install -trimpath -ldflags "$ldflags" \
      "$HELM_MAIN_PACKAGE@$HELM_VERSION") >"$WORK/build.log" 2>&1; then
  tail -n 40 "$WORK/build.log" >&2
  die "go install failed; full log: $WORK/build.log"
fi
verify "$tmpdir/helm" || die "the freshly built binary does not run ($tmpdir/helm)"
mv -f "$tmpdir/helm" "$BIN"
log "done in $((SECONDS - start))s: $BIN ($(du -h "$BIN" | cut -f1))"
echo "$BIN"
