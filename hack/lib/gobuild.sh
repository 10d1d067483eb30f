# shellcheck shell=bash
# Shared steps of the scripts that build a pinned Go program from the Go module proxy
# into Ferry's binary cache (hack/cluster/build.sh, hack/helm/build.sh, hack/s3/build.sh).
# Source it after defining log() and die().

# The absolute cache directory (FERRY_CACHE, default ~/.cache/ferry); refuses one inside
# the repository, where built binaries must never land.
ferry_cache_dir() {
  local repo_root=$1 cache
  cache="${FERRY_CACHE:-${HOME:?HOME is not set}/.cache/ferry}"
  cache="$(realpath -m -- "$cache")"   # absolute, symlinks resolved, need not exist yet
  case "$cache/" in
    "$repo_root/"*) die "cache dir $cache is inside the repository $repo_root; set FERRY_CACHE elsewhere" ;;
  esac
  printf '%s\n' "$cache"
}

# Serialise concurrent builds (parallel test sessions) on a lock file in the work dir.
# Callers re-check for a finished binary once this returns.
take_build_lock() {
  local work=$1
  exec 9>"$work/.lock"
  if command -v flock >/dev/null; then
    log "waiting for build lock $work/.lock"
    flock 9
  fi
}

# Download MODULE@VERSION through the module proxy (run in DIR); print its go.mod's path.
downloaded_go_mod() {
  local dir=$1 module=$2 version=$3 json gomod
  json="$(cd "$dir" && go mod download -json "$module@$version")" \
    || die "go mod download failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"
  gomod="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' | head -n1)"
  [[ -f "$gomod" ]] || die "could not locate the downloaded go.mod (go mod download output: $json)"
  printf '%s\n' "$gomod"
}
