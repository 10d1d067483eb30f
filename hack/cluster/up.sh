#!/usr/bin/env bash
# Start a throwaway local Kubernetes control plane (etcd + kube-apiserver +
# kube-controller-manager) on 127.0.0.1 for Ferry's end-to-end tests.
#
# Usage: hack/cluster/up.sh [DIR] [--node]
#   DIR defaults to ${FERRY_CACHE:-$HOME/.cache/ferry}/cluster
#   --node also starts a real node (kubelet, containerd, kube-scheduler, kube-proxy,
#   CoreDNS: hack/node/up.sh) so that pods run; one per machine, root only.
#
# - Binaries come from hack/cluster/build.sh (built once, cached outside git).
#   Set FERRY_K8S_BIN=/path/to/bin to use prebuilt binaries instead.
# - Every start is a fresh cluster: DIR's previous state (etcd data, certs,
#   logs) is wiped. If a control plane from DIR is already running and healthy,
#   it is left alone.
# - Ports are picked at random among free ones; see DIR/cluster.env.
# - Logs: DIR/logs/*.log, pids: DIR/pids/*.pid. Stop with hack/cluster/down.sh DIR.
# - Last line on stdout: export KUBECONFIG=DIR/kubeconfig
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FERRY_CACHE="${FERRY_CACHE:-${HOME}/.cache/ferry}"
DIR="${FERRY_CACHE}/cluster"
NODE=0
for a in "$@"; do
    case "$a" in
        --node) NODE=1 ;;
        *) DIR="$a" ;;
    esac
done
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd -P)"
READY_TIMEOUT="${FERRY_READY_TIMEOUT:-120}"

log() { printf '[up.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    printf '[up.sh] ERROR: %s\n' "$*" >&2
    for f in "$DIR"/logs/*.log; do
        [ -f "$f" ] || continue
        printf '[up.sh] ---- last lines of %s ----\n' "$f" >&2
        tail -n 15 "$f" >&2
    done
    # Do not leave a half-started control plane behind.
    if [ -d "$DIR/pids" ]; then "$HERE/down.sh" "$DIR" >&2 || true; fi
    exit 1
}

# shellcheck source=../lib/procs.sh
source "$HERE/../lib/procs.sh"
export WATCHED="etcd kube-apiserver kube-controller-manager"  # read by wait_until

# ---------------------------------------------------------------------------
# Binaries
# ---------------------------------------------------------------------------
if [ -n "${FERRY_K8S_BIN:-}" ]; then
    BIN="$FERRY_K8S_BIN"
else
    BIN="$("$HERE/build.sh" | tail -n 1)" || die "build.sh failed"
fi
for b in etcd kube-apiserver kube-controller-manager kubectl; do
    [ -x "$BIN/$b" ] || die "missing binary $BIN/$b (run hack/cluster/build.sh)"
done
KUBECTL="$BIN/kubectl"

# Already running from this DIR?
if alive etcd && alive kube-apiserver && alive kube-controller-manager \
    && "$KUBECTL" --kubeconfig "$DIR/kubeconfig" get --raw /readyz >/dev/null 2>&1 \
    && { [ "$NODE" = 0 ] || alive kubelet; }; then
    log "control plane in $DIR is already running"
    echo "export KUBECONFIG=$DIR/kubeconfig"
    exit 0
fi

# Half-running leftovers: stop them, then start from scratch.
"$HERE/down.sh" "$DIR" >&2 || true
rm -rf "$DIR/etcd" "$DIR/pki" "$DIR/logs" "$DIR/pids" "$DIR/kubeconfig" "$DIR/cluster.env"
mkdir -p "$DIR/pki" "$DIR/logs" "$DIR/pids"
chmod 700 "$DIR/pki"

# ---------------------------------------------------------------------------
# Free ports on 127.0.0.1
# ---------------------------------------------------------------------------
TAKEN=" "
ETCD_PORT=$(free_port);      TAKEN+="$ETCD_PORT "
ETCD_PEER_PORT=$(free_port); TAKEN+="$ETCD_PEER_PORT "
API_PORT=$(free_port);       TAKEN+="$API_PORT "
KCM_PORT=$(free_port);       TAKEN+="$KCM_PORT "
SERVICE_CIDR="10.0.0.0/24"
SERVICE_IP="10.0.0.1"
# Without a node the API server listens on loopback only. With one, pods reach it on the
# bridge through the `kubernetes` Service (lease endpoint reconciler + kube-proxy).
BIND_ADDRESS=127.0.0.1
ADVERTISE_ADDRESS=127.0.0.1
RECONCILER=none
EXTRA_SAN=""
NODE_FLAGS=()
if [ "$NODE" = 1 ]; then
    # shellcheck source=../node/net.env
    source "$HERE/../node/net.env"
    BIND_ADDRESS=0.0.0.0
    ADVERTISE_ADDRESS="$BRIDGE_IP"
    RECONCILER=lease
    EXTRA_SAN=",IP:${BRIDGE_IP}"
    NODE_FLAGS=(--kubelet-client-certificate "$DIR/pki/apiserver-kubelet-client.crt"
                --kubelet-client-key "$DIR/pki/apiserver-kubelet-client.key"
                --kubelet-preferred-address-types InternalIP)
fi

# ---------------------------------------------------------------------------
# PKI (openssl): CA, apiserver serving cert, admin + controller-manager client
# certs, service-account signing key pair.
# ---------------------------------------------------------------------------
command -v openssl >/dev/null || die "openssl not found"
PKI="$DIR/pki"
log "generating certificates in $PKI"
(
    set -e
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
        -keyout ca.key -out ca.crt -subj "/CN=ferry-local-ca" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
    sign_cert apiserver "/CN=kube-apiserver" \
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:${SERVICE_IP}${EXTRA_SAN},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
    client_ext="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
    sign_cert admin "/O=system:masters/CN=ferry-admin" "$client_ext"
    sign_cert controller-manager "/CN=system:kube-controller-manager" "$client_ext"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
    openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
    chmod 600 ./*.key
) || die "certificate generation failed"

b64() { base64 -w0 < "$1"; }
write_kubeconfig() { # file user cert key
    umask 077
    cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ferry-local
  cluster:
    server: https://127.0.0.1:${API_PORT}
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(b64 "$3")
    client-key-data: $(b64 "$4")
contexts:
- name: ferry-local
  context:
    cluster: ferry-local
    user: $2
current-context: ferry-local
EOF
}
write_kubeconfig "$DIR/kubeconfig" ferry-admin "$PKI/admin.crt" "$PKI/admin.key"
write_kubeconfig "$PKI/controller-manager.kubeconfig" system:kube-controller-manager \
    "$PKI/controller-manager.crt" "$PKI/controller-manager.key"

cat > "$DIR/cluster.env" <<EOF
FERRY_CLUSTER_DIR=$DIR
FERRY_K8S_BIN=$BIN
KUBECONFIG=$DIR/kubeconfig
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
API_PORT=$API_PORT
KCM_PORT=$KCM_PORT
EOF

if [ "$NODE" = 1 ]; then
    "$HERE/../node/up.sh" prepare "$DIR" || die "preparing the node failed"
fi

# ---------------------------------------------------------------------------
# etcd
# ---------------------------------------------------------------------------
start etcd "$BIN/etcd" \
    --name ferry \
    --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:${ETCD_PORT}" \
    --advertise-client-urls "http://127.0.0.1:${ETCD_PORT}" \
    --listen-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" \
    --initial-cluster "ferry=http://127.0.0.1:${ETCD_PEER_PORT}" \
    --unsafe-no-fsync \
    --log-level warn
wait_until "etcd health" 30 curl -fsS "http://127.0.0.1:${ETCD_PORT}/health"

# ---------------------------------------------------------------------------
# kube-apiserver
# ---------------------------------------------------------------------------
start kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:${ETCD_PORT}" \
    --bind-address "$BIND_ADDRESS" \
    --advertise-address "$ADVERTISE_ADDRESS" \
    --secure-port "$API_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" \
    --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --authorization-mode Node,RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" \
    --service-account-signing-key-file "$PKI/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --endpoint-reconciler-type "$RECONCILER" \
    --allow-privileged=true \
    --profiling=false \
    "${NODE_FLAGS[@]}" \
    --v 1
wait_until "kube-apiserver /readyz" "$READY_TIMEOUT" "$KUBECTL" --kubeconfig "$DIR/kubeconfig" get --raw /readyz

# ---------------------------------------------------------------------------
# kube-controller-manager (namespace deletion, garbage collection, service
# accounts, root CA configmaps, ...)
# ---------------------------------------------------------------------------
KCM_KUBECONFIG="$PKI/controller-manager.kubeconfig"
start kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig "$KCM_KUBECONFIG" \
    --authentication-kubeconfig "$KCM_KUBECONFIG" \
    --authorization-kubeconfig "$KCM_KUBECONFIG" \
    --bind-address 127.0.0.1 \
    --secure-port "$KCM_PORT" \
    --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file "$PKI/sa.key" \
    --root-ca-file "$PKI/ca.crt" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --profiling=false \
    --v 1
wait_until "kube-controller-manager /healthz" "$READY_TIMEOUT" curl -kfsS "https://127.0.0.1:${KCM_PORT}/healthz"
# The service-account controller creating "default" proves the controllers run.
wait_until "default ServiceAccount (controllers running)" "$READY_TIMEOUT" \
    "$KUBECTL" --kubeconfig "$DIR/kubeconfig" -n default get serviceaccount default

log "control plane ready: https://127.0.0.1:${API_PORT} (state in $DIR)"
if [ "$NODE" = 1 ]; then
    "$HERE/../node/up.sh" start "$DIR" || die "starting the node failed"
fi
echo "export KUBECONFIG=$DIR/kubeconfig"
