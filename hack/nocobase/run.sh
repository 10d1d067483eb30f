#!/usr/bin/env bash
# Start one headless NocoBase app (the pinned version, see VERSION) against a
# PostgreSQL database, on 127.0.0.1:<port>, and wait until its HTTP API answers.
#
#   hack/nocobase/run.sh --db-url postgres://USER:PASS@HOST:PORT/DB --port 13001 [options]
#   hack/nocobase/run.sh --stop --pid-file FILE
#
# Database (either --db-url or the usual NocoBase env vars DB_HOST, DB_PORT,
# DB_DATABASE, DB_USER, DB_PASSWORD; DB_SCHEMA, DB_UNDERSCORED and
# DB_TABLE_PREFIX are passed through when set):
#   --db-url URL         postgres://user:pass@host:port/dbname (also mariadb://, mysql://:
#                        NocoBase's mariadb / mysql dialects, the drivers it ships;
#                        sqlite:///ABS/PATH needs the sqlite3 driver on NODE_PATH)
#   --create-db          create the database if it does not exist (via the pg
#                        driver shipped with NocoBase; connects to db "postgres")
# App:
#   --port N             HTTP port (APP_PORT), default 13000; binds 127.0.0.1 only
#   --storage DIR        STORAGE_PATH (uploads, logs, aes_key.dat, gateway.sock);
#                        default /tmp/ferry-nocobase-<port>. Use one per app.
#   --app-key KEY        APP_KEY (JWT secret), default "ferry-nocobase-dev-key"
#   --aes-key HEX        APP_AES_SECRET_KEY (64 hex chars = 32 bytes) used to
#                        encrypt secret environment variables. Default: NocoBase
#                        generates STORAGE/apps/main/aes_key.dat on first start.
#   --install            (default) run `nocobase install` first (no-op if the
#                        database is already installed)
#   --reinstall          run `nocobase install -f` first (DROPS all tables)
#   --no-install         only start (the database must already be installed)
#   --install-only       run the install step and exit without starting (e.g. to
#                        build a template database for `createdb -T`)
#   --timeout SECS       readiness timeout, default 240
#   --pid-file FILE      where to write the process-group id, default STORAGE/nocobase.pid
#   --log FILE           stdout/stderr of the app, default STORAGE/nocobase.log
#   --foreground         exec the app in the foreground instead (no waiting)
# Stop:
#   --stop               stop the app whose pid file is given (or STORAGE/nocobase.pid)
#
# Initial admin: INIT_ROOT_EMAIL (admin@nocobase.com), INIT_ROOT_PASSWORD
# (admin123), INIT_ROOT_USERNAME (nocobase), INIT_ROOT_NICKNAME; override via env.
# On success prints KEY=VALUE lines: NOCOBASE_URL, NOCOBASE_PID, NOCOBASE_LOG,
# NOCOBASE_STORAGE. Exit code != 0 (with the log tail) on failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { echo "[nocobase-run] $*" >&2; }
die() { echo "[nocobase-run] ERROR: $*" >&2; exit 1; }

PORT="${APP_PORT:-13000}"
DB_URL=""
STORAGE=""
APPKEY="${APP_KEY:-ferry-nocobase-dev-key}"
AESKEY="${APP_AES_SECRET_KEY:-}"
INSTALL=install
TIMEOUT=240
PIDFILE=""
LOGFILE=""
FOREGROUND=0
STOP=0
CREATE_DB=0
INSTALL_ONLY=0

while [ $# -gt 0 ]; do
  case "$1" in
    --db-url) DB_URL="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --storage) STORAGE="$2"; shift 2 ;;
    --app-key) APPKEY="$2"; shift 2 ;;
    --aes-key) AESKEY="$2"; shift 2 ;;
    --install) INSTALL=install; shift ;;
    --reinstall) INSTALL=reinstall; shift ;;
    --no-install) INSTALL=none; shift ;;
    --install-only) INSTALL_ONLY=1; shift ;;
    --create-db) CREATE_DB=1; shift ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    --pid-file) PIDFILE="$2"; shift 2 ;;
    --log) LOGFILE="$2"; shift 2 ;;
    --foreground) FOREGROUND=1; shift ;;
    --stop) STOP=1; shift ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

STORAGE="${STORAGE:-${TMPDIR:-/tmp}/ferry-nocobase-$PORT}"
PIDFILE="${PIDFILE:-$STORAGE/nocobase.pid}"
LOGFILE="${LOGFILE:-$STORAGE/nocobase.log}"

stop_app() {
  [ -f "$PIDFILE" ] || { log "no pid file $PIDFILE: nothing to stop"; return 0; }
  local pgid; pgid="$(cat "$PIDFILE")"
  if [ -n "$pgid" ] && kill -0 -- "-$pgid" 2>/dev/null; then
    log "stopping NocoBase process group $pgid"
    kill -TERM -- "-$pgid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 -- "-$pgid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 -- "-$pgid" 2>/dev/null; then kill -KILL -- "-$pgid" 2>/dev/null || true; fi
  fi
  rm -f "$PIDFILE"
}

if [ "$STOP" = 1 ]; then stop_app; exit 0; fi

APP_DIR="$("$HERE/install.sh" --check 2>/dev/null | tail -n1)" || {
  if [ "${FERRY_NO_AUTO_INSTALL:-0}" = 1 ]; then
    die "NocoBase is not installed; run hack/nocobase/install.sh"
  fi
  log "NocoBase not installed yet: running install.sh"
  APP_DIR="$("$HERE/install.sh" | tail -n1)"
}
TOOLS="$(dirname "$APP_DIR")/tools"

# ---- database parameters ---------------------------------------------------
if [ -n "$DB_URL" ]; then
  eval "$(node - "$DB_URL" <<'EOF'
const u = new URL(process.argv[2]);
const dialects = { 'postgres:': 'postgres', 'postgresql:': 'postgres', 'mariadb:': 'mariadb', 'mysql:': 'mysql', 'sqlite:': 'sqlite' };
const dialect = dialects[u.protocol];
if (!dialect) { console.error('only postgres://, mariadb://, mysql:// and sqlite:///PATH URLs are supported'); process.exit(1); }
const q = (s) => "'" + String(s).replace(/'/g, "'\\''") + "'";
console.log(`DB_DIALECT=${q(dialect)}`);
if (dialect === 'sqlite') {
  const file = decodeURIComponent(u.pathname);
  console.log(`DB_STORAGE=${q(file)}`);
  console.log(`DB_DATABASE=${q(file)}`);
  process.exit(0);
}
console.log(`DB_HOST=${q(u.hostname || '127.0.0.1')}`);
console.log(`DB_PORT=${q(u.port || (dialect === 'postgres' ? '5432' : '3306'))}`);
console.log(`DB_DATABASE=${q(decodeURIComponent(u.pathname.replace(/^\//, '')))}`);
console.log(`DB_USER=${q(decodeURIComponent(u.username || 'postgres'))}`);
console.log(`DB_PASSWORD=${q(decodeURIComponent(u.password || ''))}`);
const schema = u.searchParams.get('schema'); if (schema) console.log(`DB_SCHEMA=${q(schema)}`);
EOF
)" || die "cannot parse --db-url"
fi
: "${DB_HOST:=127.0.0.1}" "${DB_PORT:=5432}" "${DB_USER:=postgres}" "${DB_PASSWORD:=}"
[ -n "${DB_DATABASE:-}" ] || die "no database given: use --db-url or DB_DATABASE/DB_HOST/DB_PORT/DB_USER/DB_PASSWORD"
: "${DB_DIALECT:=postgres}"
export DB_DIALECT DB_HOST DB_PORT DB_DATABASE DB_USER DB_PASSWORD
[ -n "${DB_STORAGE:-}" ] && export DB_STORAGE
[ -n "${DB_SCHEMA:-}" ] && export DB_SCHEMA
export DB_LOGGING="${DB_LOGGING:-off}"

# ---- app environment -------------------------------------------------------
mkdir -p "$STORAGE"
STORAGE="$(cd "$STORAGE" && pwd)"
export APP_ENV=production APP_PORT="$PORT" APP_KEY="$APPKEY" STORAGE_PATH="$STORAGE"
export APP_HOST=127.0.0.1
[ -n "$AESKEY" ] && export APP_AES_SECRET_KEY="$AESKEY"
export INIT_ROOT_EMAIL="${INIT_ROOT_EMAIL:-admin@nocobase.com}" INIT_ROOT_PASSWORD="${INIT_ROOT_PASSWORD:-admin123}"
export INIT_ROOT_USERNAME="${INIT_ROOT_USERNAME:-nocobase}" INIT_ROOT_NICKNAME="${INIT_ROOT_NICKNAME:-Super Admin}"
export INIT_LANG="${INIT_LANG:-en-US}"
# nothing may be fetched from outside: commercial-plugin download and telemetry off
export DISABLE_PKG_DOWNLOAD=true TELEMETRY_ENABLED=off LOGGER_LEVEL="${LOGGER_LEVEL:-info}"
export APP_LAUNCH_MODE=node
export PATH="$TOOLS/node_modules/.bin:$APP_DIR/node_modules/.bin:$PATH"

if [ "$CREATE_DB" = 1 ]; then
  (cd "$APP_DIR" && node - <<'EOF'
const { Client } = require('pg');
(async () => {
  const c = new Client({ host: process.env.DB_HOST, port: +process.env.DB_PORT, user: process.env.DB_USER,
    password: process.env.DB_PASSWORD, database: 'postgres' });
  await c.connect();
  const db = process.env.DB_DATABASE;
  const r = await c.query('select 1 from pg_database where datname = $1', [db]);
  if (!r.rowCount) { await c.query(`CREATE DATABASE "${db.replace(/"/g, '""')}"`); console.error(`[nocobase-run] created database ${db}`); }
  await c.end();
})().catch((e) => { console.error(`[nocobase-run] ERROR: cannot create database: ${e.message}`); process.exit(1); });
EOF
  ) || exit 1
fi

# refuse to start a second app on a busy port
if [ "$INSTALL_ONLY" = 0 ] && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  die "port $PORT is already in use"
fi

cd "$APP_DIR"
case "$INSTALL" in
  install|reinstall)
    flag=(); [ "$INSTALL" = reinstall ] && flag=(-f)
    log "nocobase install ${flag[*]} (db $DB_DATABASE on $DB_HOST:$DB_PORT)"
    if ! nocobase-v1 install "${flag[@]}" >>"$LOGFILE" 2>&1; then
      tail -n 40 "$LOGFILE" >&2
      die "nocobase install failed (log: $LOGFILE)"
    fi
    ;;
esac

if [ "$INSTALL_ONLY" = 1 ]; then
  [ "$INSTALL" = none ] && die "--install-only with --no-install does nothing"
  log "installed database $DB_DATABASE (not started)"
  exit 0
fi

if [ "$FOREGROUND" = 1 ]; then
  exec nocobase-v1 start --launch-mode node
fi

log "starting NocoBase on http://127.0.0.1:$PORT (log: $LOGFILE)"
setsid nocobase-v1 start --launch-mode node >>"$LOGFILE" 2>&1 < /dev/null &
PGID=$!
echo "$PGID" > "$PIDFILE"

deadline=$(( $(date +%s) + TIMEOUT ))
while :; do
  if ! kill -0 "$PGID" 2>/dev/null; then
    tail -n 40 "$LOGFILE" >&2
    rm -f "$PIDFILE"
    die "NocoBase exited during startup (log: $LOGFILE)"
  fi
  code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/api/app:getInfo" 2>/dev/null || true)"
  [ "$code" = 200 ] && break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    tail -n 40 "$LOGFILE" >&2
    stop_app
    die "NocoBase not ready after ${TIMEOUT}s (last HTTP status: $code)"
  fi
  sleep 1
done
log "NocoBase ready on http://127.0.0.1:$PORT"
echo "NOCOBASE_URL=http://127.0.0.1:$PORT"
echo "NOCOBASE_PID=$PGID"
echo "NOCOBASE_LOG=$LOGFILE"
echo "NOCOBASE_STORAGE=$STORAGE"
