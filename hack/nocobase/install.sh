#!/usr/bin/env bash
# Install the pinned NocoBase release (hack/nocobase/VERSION) into a cache
# directory outside the repo, from the npm registry only.
#
#   hack/nocobase/install.sh            # install if missing, print the app dir
#   hack/nocobase/install.sh --check    # exit 0 if installed, 1 if not (no network)
#   hack/nocobase/install.sh --force    # reinstall
#
# Layout:  ${FERRY_CACHE:-$HOME/.cache/ferry}/nocobase/<version>/
#            tools/   yarn 1.x + create-nocobase-app (npm packages)
#            app/     the generated NocoBase app (node_modules, no storage/)
#            .installed  marker (version + lockfile checksum)
# The last line printed on stdout is the app directory.
#
# Needs: node >= 18 (20 recommended), npm, network access to the npm registry
# (only). Takes ~2 min and ~1.2 GB (plus yarn's package cache, see
# YARN_CACHE_FOLDER) on first run; later runs are no-ops.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSION="${NOCOBASE_VERSION:-$(tr -d ' \n' < "$HERE/VERSION")}"
CACHE_ROOT="${FERRY_CACHE:-$HOME/.cache/ferry}"
DIR="$CACHE_ROOT/nocobase/$VERSION"
APP="$DIR/app"
TOOLS="$DIR/tools"
LOCK_SRC="$HERE/yarn.lock"
YARN_VERSION=1.22.22

log() { echo "[nocobase-install] $*" >&2; }
die() { echo "[nocobase-install] ERROR: $*" >&2; exit 1; }

MODE=install
case "${1:-}" in
  --check) MODE=check ;;
  --force) MODE=force ;;
  "") ;;
  -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
  *) die "unknown argument: $1" ;;
esac

lock_sum() { if [ -f "$LOCK_SRC" ] && [ "${NOCOBASE_VERSION:-}" = "" ]; then sha256sum "$LOCK_SRC" | cut -c1-16; else echo none; fi; }
marker_ok() {
  [ -f "$DIR/.installed" ] && [ -f "$APP/node_modules/@nocobase/app/lib/index.js" ] &&
    grep -qx "version=$VERSION" "$DIR/.installed"
}

if [ "$MODE" = check ]; then
  if marker_ok; then echo "$APP"; exit 0; fi
  log "NocoBase $VERSION is not installed in $DIR (run hack/nocobase/install.sh)"
  exit 1
fi

# ---- prerequisites -------------------------------------------------------
command -v node >/dev/null 2>&1 || die "node is required (Node.js >= 18, 20 recommended): apt-get install nodejs npm, or use nvm"
command -v npm  >/dev/null 2>&1 || die "npm is required (apt-get install npm)"
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
[ "$NODE_MAJOR" -ge 18 ] || die "Node.js >= 18 is required, found $(node -v)"
command -v flock >/dev/null 2>&1 || die "flock (util-linux) is required"

mkdir -p "$DIR"
exec 9>"$DIR/.lock"
flock 9

if [ "$MODE" = install ] && marker_ok; then
  log "NocoBase $VERSION already installed in $APP"
  echo "$APP"
  exit 0
fi

# Never download anything from outside the npm registry.
export PUPPETEER_SKIP_DOWNLOAD=1 PUPPETEER_SKIP_CHROMIUM_DOWNLOAD=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
  CYPRESS_INSTALL_BINARY=0 ELECTRON_SKIP_BINARY_DOWNLOAD=1 SENTRYCLI_SKIP_DOWNLOAD=1 \
  DISABLE_PKG_DOWNLOAD=true NOCOBASE_TELEMETRY_DISABLED=1 TELEMETRY_ENABLED=off \
  DO_NOT_TRACK=1 NEXT_TELEMETRY_DISABLED=1 HUSKY=0 npm_config_fund=false npm_config_audit=false \
  npm_config_update_notifier=false
START=$(date +%s)

# ---- tools: yarn classic + create-nocobase-app (from the npm registry) ----
if [ ! -x "$TOOLS/node_modules/.bin/yarn" ] || [ ! -x "$TOOLS/node_modules/.bin/create-nocobase-app" ] ||
   ! grep -q "\"version\": \"$VERSION\"" "$TOOLS/node_modules/create-nocobase-app/package.json" 2>/dev/null; then
  log "installing yarn@$YARN_VERSION and create-nocobase-app@$VERSION into $TOOLS"
  mkdir -p "$TOOLS"
  npm install --no-audit --no-fund --loglevel=error --prefix "$TOOLS" \
    "yarn@$YARN_VERSION" "create-nocobase-app@$VERSION" >&2 ||
    die "npm install of yarn/create-nocobase-app failed (is the npm registry reachable? does create-nocobase-app@$VERSION exist?)"
fi
export PATH="$TOOLS/node_modules/.bin:$PATH"

# ---- generate the app into a temp dir, then swap it in ---------------------
TMPP="$DIR/tmp.$$"
TMP="$TMPP/app"
rm -rf "$DIR"/tmp.*
mkdir -p "$TMPP"
trap 'rm -rf "$TMPP"' EXIT
log "generating app skeleton with create-nocobase-app@$VERSION"
(cd "$TMPP" && create-nocobase-app app --skip-dev-dependencies -d postgres -e APP_ENV=production >&2) ||
  die "create-nocobase-app failed"

# xlsx is referenced by NocoBase as a tarball URL on the SheetJS CDN (not on the
# npm registry); @e965/xlsx is the same SheetJS 0.20.3 release published on npm.
node - "$TMP/package.json" <<'EOF'
const fs = require('fs');
const f = process.argv[2];
const p = JSON.parse(fs.readFileSync(f, 'utf8'));
p.resolutions = Object.assign({}, p.resolutions, { xlsx: 'npm:@e965/xlsx@0.20.3' });
fs.writeFileSync(f, JSON.stringify(p, null, 2) + '\n');
EOF

# Runtime configuration comes from the environment (hack/nocobase/run.sh), not from .env.
cat > "$TMP/.env" <<'EOF'
# Intentionally empty: Ferry's hack/nocobase/run.sh passes every setting
# (DB_*, APP_KEY, APP_PORT, STORAGE_PATH, ...) through the environment.
EOF

YARN_ARGS=(install --ignore-engines --non-interactive --network-timeout 600000)
if [ -f "$LOCK_SRC" ] && [ -z "${NOCOBASE_VERSION:-}" ]; then
  cp "$LOCK_SRC" "$TMP/yarn.lock"
  YARN_ARGS+=(--frozen-lockfile)
  log "using pinned lockfile $LOCK_SRC"
fi
log "yarn ${YARN_ARGS[*]} (this takes ~1-2 minutes)"
(cd "$TMP" && yarn "${YARN_ARGS[@]}" >&2) || die "yarn install failed (see output above)"
[ -f "$TMP/node_modules/@nocobase/app/lib/index.js" ] || die "install finished but @nocobase/app is missing"
INSTALLED="$(node -p "require('$TMP/node_modules/@nocobase/server/package.json').version")"
[ "$INSTALLED" = "$VERSION" ] || die "expected @nocobase/server $VERSION, got $INSTALLED"

rm -rf "$TMP/storage"
rm -rf "$APP"
mv "$TMP" "$APP"
rm -rf "$TMPP"
trap - EXIT
printf 'version=%s\nlock=%s\ninstalled_at=%s\nseconds=%s\n' "$VERSION" "$(lock_sum)" \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(( $(date +%s) - START ))" > "$DIR/.installed"
log "NocoBase $VERSION installed in $APP ($(( $(date +%s) - START ))s, $(du -sh "$APP" | cut -f1))"
echo "$APP"
