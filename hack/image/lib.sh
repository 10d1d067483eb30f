# shellcheck shell=bash
# Shared by hack/image/base.sh and hack/image/build.sh: Ferry's own container storage
# (never the machine's default /var/lib/containers) and the export of OCI archives that
# `ctr -n k8s.io images import FILE` reads. Source it after hack/lib/gobuild.sh, with
# log() and die() defined.

# Point every buildah call of this shell at <cache>/containers: its own storage.conf
# (overlay driver, graph and run roots) and containers.conf (network configuration and
# locks there too, not in /etc/cni or /etc/containers), and make <cache>/images; sets
# IMAGES to it. Not in a subshell: the exports are the point. By hand:
#   CONTAINERS_STORAGE_CONF=<cache>/containers/storage.conf \
#   CONTAINERS_CONF=<cache>/containers/containers.conf buildah images
ferry_image_storage() {
  local dir="$1/containers"
  mkdir -p "$dir/storage" "$dir/run" "$dir/net.d" "$1/images"
  write_if_changed "$dir/storage.conf" "$(printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"' \
    "$dir/storage" "$dir/run")"
  write_if_changed "$dir/containers.conf" "$(printf '[network]\nnetwork_backend = "cni"\nnetwork_config_dir = "%s"\ncni_plugin_dirs = ["/usr/lib/cni"]' \
    "$dir/net.d")"
  export CONTAINERS_STORAGE_CONF="$dir/storage.conf" CONTAINERS_CONF="$dir/containers.conf"
  # shellcheck disable=SC2034  # read by the scripts that source this file
  IMAGES="$1/images"
}

write_if_changed() {
  [[ -f "$1" && "$(cat "$1")" = "$2" ]] || printf '%s\n' "$2" > "$1"
}

# True when REF names an image in Ferry's storage.
image_present() {
  buildah inspect --type image "$1" >/dev/null 2>&1
}

# The ID of image REF (empty when absent).
image_id() {
  buildah inspect --type image --format '{{.FromImageID}}' "$1" 2>/dev/null || true
}

# Write image REF to FILE as an OCI archive whose index names REF (so that ctr import
# registers it under that name); written next to FILE first, then renamed, so a reader
# never sees half an archive. FILE.id records the image ID it holds. zstd layers:
# half the time of gzip for Ferry's image (16 s against 36 s here) and 15 % smaller;
# containerd unpacks them.
export_oci_archive() {
  local ref=$1 file=$2 id
  id="$(image_id "$ref")"
  [[ -n "$id" ]] || die "no image $ref to export"
  rm -f "$file.partial"
  buildah push --quiet --compression-format zstd "$ref" "oci-archive:$file.partial:$ref" >&2 \
    || die "buildah push $ref to $file failed"
  mv -f "$file.partial" "$file"
  printf '%s\n' "$id" > "$file.id"
}

# True when FILE exists and holds the current image REF.
archive_current() {
  local ref=$1 file=$2 id
  id="$(image_id "$ref")"
  [[ -n "$id" && -f "$file" && -f "$file.id" && "$(cat "$file.id")" = "$id" ]]
}

# Two host paths that buildah cannot be pointed away from: containers/image's blob-info
# cache (fixed at /var/lib/containers/cache for root, whatever the storage) and
# libmount's /run/mount. Call host_paths_record first and host_paths_restore on exit:
# what this run created goes again, so the host stays as it was.
HOST_PATHS=(/var/lib/containers /run/mount)
NEW_HOST_PATHS=()
host_paths_record() {
  local p
  for p in "${HOST_PATHS[@]}"; do [[ -e "$p" ]] || NEW_HOST_PATHS+=("$p"); done
}
host_paths_restore() {
  local p
  for p in "${NEW_HOST_PATHS[@]}"; do
    if [[ "$p" = /var/lib/containers ]]; then
      rm -f "$p/cache/blob-info-cache-v1.boltdb"
      rmdir "$p/cache" 2>/dev/null || true
    fi
    rmdir "$p" 2>/dev/null || true   # only when empty: never someone else's data
  done
}

# A 12-hex digest of what `buildah bud ROOT` reads: every file the .dockerignore lets in
# (its "!" entries; caches excluded as it excludes them), the Dockerfile and .dockerignore
# themselves, and BASE_ID, the ID of the PYTHON_IMAGE. Any change to one gives a new
# digest, so a rebuilt image gets a new tag; files outside the context do not.
context_digest() {
  local root=$1 base_id=$2 line roots=()
  [[ -n "$base_id" ]] || die "context_digest: no base image ID"
  while IFS= read -r line || [[ -n "$line" ]]; do
    case "$line" in
      '!'*[*?[]*) die ".dockerignore entry '$line' is a pattern; context_digest reads plain paths only" ;;
      '!'*) roots+=("${line#!}") ;;
    esac
  done < "$root/.dockerignore"
  [[ "${#roots[@]}" -gt 0 ]] || die "$root/.dockerignore lets nothing in"
  local listing
  listing="$(cd "$root" && find "${roots[@]%/}" Dockerfile .dockerignore -type f \
    ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)" \
    || die "cannot read the build context under $root"
  printf '%s\nbase %s\n' "$listing" "$base_id" | sha256sum | cut -c1-12
}
