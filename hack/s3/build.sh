#!/usr/bin/env bash
# Build the pinned S3-compatible test server (SeaweedFS `weed`) from the Go
# module proxy into Ferry's binary cache, outside the repository.
#
#   hack/s3/build.sh              build if missing; print the binary's path (last stdout line)
#   hack/s3/build.sh --print-path print where the binary is/would be; do not build
#   hack/s3/build.sh --force      rebuild even if the binary exists
#
# Pins: hack/s3/versions.env.  Cache: ${FERRY_CACHE:-$HOME/.cache/ferry}
#   <cache>/bin/<name>-<version>/<name>     the binary
#   <cache>/build/<name>-<version>/         throwaway wrapper module (go.mod/go.sum, build log)
# Idempotent and safe to run concurrently (flock).  Progress goes to stderr.
# See docs/s3-test-server.md.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd -P)"

log() { printf '[s3/build] %s\n' "$*" >&2; }
die() { printf '[s3/build] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=hack/lib/gobuild.sh
source "$REPO_ROOT/hack/lib/gobuild.sh"

mode=build
case "${1:-}" in
  "") ;;
  --print-path) mode=print ;;
  --force) mode=force ;;
  -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
  *) die "unknown argument: $1 (try --help)" ;;
esac

# shellcheck source=hack/s3/versions.env disable=SC1091
source "$SCRIPT_DIR/versions.env"
for v in S3_SERVER_NAME S3_GO_MODULE S3_GO_VERSION S3_GO_MAIN_PACKAGE S3_GOTOOLCHAIN; do
  [[ -n "${!v:-}" ]] || die "$v is not set in $SCRIPT_DIR/versions.env"
done

CACHE="$(ferry_cache_dir "$REPO_ROOT")"

ID="${S3_SERVER_NAME}-${S3_GO_VERSION}"
BIN_DIR="$CACHE/bin/$ID"
BIN="$BIN_DIR/$S3_SERVER_NAME"
WORK="$CACHE/build/$ID"

if [[ "$mode" == print ]]; then
  echo "$BIN"
  exit 0
fi

verify() {
  local out
  out="$("$1" version 2>&1)" || { printf '%s\n' "$out" >&2; return 1; }
  log "verified: $1 version -> $(printf '%s' "$out" | head -n1)"
}

if [[ "$mode" == build && -x "$BIN" ]]; then
  verify "$BIN" || die "cached binary $BIN does not run; re-run with --force"
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || die "'go' not found in PATH (need Go >= the module's go directive; see versions.env)"
mkdir -p "$BIN_DIR" "$WORK"

take_build_lock "$WORK"   # then re-check: another build may have finished meanwhile
if [[ "$mode" == build && -x "$BIN" ]]; then
  verify "$BIN" || die "cached binary $BIN does not run; re-run with --force"
  echo "$BIN"
  exit 0
fi

export GOTOOLCHAIN="$S3_GOTOOLCHAIN" GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
log "go: $(go version)"
log "building $S3_GO_MAIN_PACKAGE from $S3_GO_MODULE@$S3_GO_VERSION"
log "wrapper module: $WORK"
start=$SECONDS

cd "$WORK"
rm -f go.mod go.sum
go mod init ferry.local/s3build >/dev/null 2>&1 || die "go mod init failed in $WORK"

log "step 1/4: downloading $S3_GO_MODULE@$S3_GO_VERSION"
gomod="$(downloaded_go_mod "$WORK" "$S3_GO_MODULE" "$S3_GO_VERSION")"

# `replace` directives only apply in the main module, so the upstream ones
# (e.g. go-bip39 => cosmos/go-bip39) must be copied into the wrapper.
log "step 2/4: copying upstream replace directives"
while read -r old new; do
  [[ -n "$old" ]] || continue
  case "$new" in
    ./*|../*|/*) log "  skipping local-path replace $old => $new" ; continue ;;
  esac
  log "  replace $old => $new"
  go mod edit -replace "$old=$new"
done < <(go mod edit -json "$gomod" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"], r["New"]
    o = old["Path"] + ("@" + old["Version"] if old.get("Version") else "")
    n = new["Path"] + ("@" + new["Version"] if new.get("Version") else "")
    print(o, n)
')

log "step 3/4: resolving dependencies (go get)"
if ! go get "$S3_GO_MODULE@$S3_GO_VERSION" >"$WORK/get.log" 2>&1; then
  tail -n 40 "$WORK/get.log" >&2
  die "go get $S3_GO_MODULE@$S3_GO_VERSION failed; full log: $WORK/get.log"
fi

ldflags="-s -w"
commit="${S3_GO_VERSION##*-}"   # pseudo-versions end in the 12-hex-digit commit
if [[ "$commit" =~ ^[0-9a-f]{12}$ ]]; then
  ldflags+=" -X github.com/seaweedfs/seaweedfs/weed/util/version.COMMIT=$commit"
fi
log "step 4/4: compiling (CGO_ENABLED=0; the slow part: ~5 min on 2 cores, more on a cold module cache)"
tmp="$BIN_DIR/.$S3_SERVER_NAME.tmp.$$"
trap 'rm -f "$tmp"' EXIT
if ! go build -trimpath -ldflags "$ldflags" -o "$tmp" "$S3_GO_MAIN_PACKAGE" >"$WORK/build.log" 2>&1; then
  tail -n 40 "$WORK/build.log" >&2
  die "go build failed; full log: $WORK/build.log"
fi
verify "$tmp" || die "the freshly built binary does not run ($tmp)"
mv -f "$tmp" "$BIN"
trap - EXIT
size="$(du -h "$BIN" | cut -f1)"
log "done in $((SECONDS - start))s: $BIN ($size)"
echo "$BIN"
