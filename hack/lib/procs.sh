# shellcheck shell=bash
# Processes, ports and certificates of the local cluster, shared by hack/cluster/up.sh and hack/node/up.sh.
# Callers define DIR (its pids/ and logs/ hold each process's pid and output), log(),
# die(), WATCHED (the names whose exit ends a wait with their log's tail) and TAKEN (ports
# already handed out, space-separated with a leading and trailing space).

alive() { local f="$DIR/pids/$1.pid"; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }

port_free() {
    case "$TAKEN" in *" $1 "*) return 1 ;; esac
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A free port on 127.0.0.1. Runs in $(...), so the caller adds it to TAKEN.
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 30000 ))
        if port_free "$p"; then echo "$p"; return 0; fi
    done
    die "no free port found"
}

start() { # name cmd...
    local name="$1"; shift
    setsid "$@" >"$DIR/logs/$name.log" 2>&1 < /dev/null &
    echo $! > "$DIR/pids/$name.pid"
    log "started $name (pid $!)"
}

wait_until() { # description timeout cmd...
    local what="$1" timeout="$2" deadline p; shift 2
    deadline=$(( $(date +%s) + timeout ))
    until "$@" >/dev/null 2>&1; do
        for p in $WATCHED; do
            if [ -f "$DIR/pids/$p.pid" ] && ! alive "$p"; then
                tail -n 20 "$DIR/logs/$p.log" >&2 || true
                die "$p exited while waiting for $what (log: $DIR/logs/$p.log)"
            fi
        done
        [ "$(date +%s)" -lt "$deadline" ] || die "timed out after ${timeout}s waiting for $what"
        sleep 0.5
    done
    log "$what: ok"
}

# A key and certificate NAME.{key,crt} signed by ca.{crt,key} in the current directory.
sign_cert() { # name subject extensions
    openssl req -new -newkey rsa:2048 -nodes -sha256 -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
    printf '%b' "$3" > "$1.ext"
    openssl x509 -req -sha256 -days 3650 -in "$1.csr" -CA ca.crt -CAkey ca.key \
        -CAcreateserial -out "$1.crt" -extfile "$1.ext" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
