#!/usr/bin/env bash
# The real node of the local cluster: containerd + runc, kubelet, kube-scheduler,
# kube-proxy and CoreDNS on this machine, beside the control plane of hack/cluster/up.sh.
# Called by `hack/cluster/up.sh --node` (what `make cluster` runs), in two steps:
#
#   hack/node/up.sh prepare DIR   before the API server starts: takes the one-node-per-machine
#                                 lock, records the host state cluster-down restores
#                                 (iptables, sysctls, paths), creates the bridge, issues the
#                                 node's certificates and kubeconfigs, adds the egress guard.
#   hack/node/up.sh start DIR     after the control plane is ready: starts the node and waits
#                                 until it is Ready.
#
# Stop with hack/node/down.sh DIR (hack/cluster/down.sh calls it). Facts behind the
# settings: docs/local-control-plane.md and ../shared/product/REAL-NODE.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=net.env
source "$HERE/net.env"
STEP="${1:?usage: up.sh prepare|start DIR}"
DIR="$(cd "${2:?usage: up.sh prepare|start DIR}" && pwd -P)"
NODE="$DIR/node"
# shellcheck source=/dev/null
source "$DIR/cluster.env"
FERRY_CACHE="${FERRY_CACHE:-${HOME}/.cache/ferry}"

log() { printf '[node/up.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[node/up.sh] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=../lib/procs.sh
source "$HERE/../lib/procs.sh"
export WATCHED="containerd kubelet kube-scheduler kube-proxy coredns"  # read by wait_until
KUBECTL=("$FERRY_K8S_BIN/kubectl" --kubeconfig "$DIR/kubeconfig")

# --- prepare -------------------------------------------------------------------------
take_node_lock() {
    [ "$(id -u)" = 0 ] || die "the real node needs root (kubelet, containerd, iptables, cgroups)"
    if [ -f "$NODE_LOCK" ]; then
        local owner; owner="$(cat "$NODE_LOCK")"
        if [ "$owner" != "$DIR" ]; then
            if [ -f "$owner/pids/kubelet.pid" ] && kill -0 "$(cat "$owner/pids/kubelet.pid")" 2>/dev/null; then
                die "a real node already runs for the cluster in $owner (one per machine); use it (export KUBECONFIG=$owner/kubeconfig) or stop it first: hack/cluster/down.sh $owner"
            fi
            log "a stale node of $owner is left on this host; restoring the host from its record first"
            "$HERE/down.sh" "$owner" || die "could not clean up the stale node of $owner"
        fi
    fi
    echo "$DIR" > "$NODE_LOCK"
}

# What cluster-down must put back; recorded once, so a second prepare never overwrites it.
record_host() {
    local host="$NODE/host"
    [ -f "$host/recorded" ] && return 0
    mkdir -p "$host"
    iptables-save > "$host/iptables.v4"
    ip6tables-save > "$host/iptables.v6"
    # iptables-nft creates whole tables; cluster-down deletes the ones the host did not have.
    if command -v nft >/dev/null; then nft list tables > "$host/nft-tables"; fi
    local key
    : > "$host/sysctl"
    for key in vm.overcommit_memory kernel.panic kernel.panic_on_oops net.ipv4.ip_forward \
        net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables \
        net.bridge.bridge-nf-call-ip6tables; do
        if v="$(sysctl -n "$key" 2>/dev/null)"; then echo "$key=$v" >> "$host/sysctl"; fi
    done
    : > "$host/absent"
    for p in /var/lib/kubelet /var/lib/cni /run/containerd /run/netns /etc/cni /var/run/netns; do
        [ -e "$p" ] || echo "$p" >> "$host/absent"
    done
    ls /run/netns 2>/dev/null > "$host/netns" || : > "$host/netns"
    touch "$host/recorded"
}

make_bridge() {
    modprobe br_netfilter 2>/dev/null || true
    sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1 \
        || die "br_netfilter is needed so that Service traffic between pods on the bridge is translated"
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
        ip addr add "$BRIDGE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
    fi
    ip link set "$BRIDGE" up
}

# Pods reach the host on the bridge and nothing else; the API server (bound to every address
# so that pods reach it on the bridge) answers only on loopback and the bridge.
guard() {
    iptables -N FERRY-NODE 2>/dev/null || iptables -F FERRY-NODE
    iptables -A FERRY-NODE -s "$POD_CIDR" ! -o "$BRIDGE" -j DROP
    iptables -A FERRY-NODE -d "$POD_CIDR" ! -i "$BRIDGE" -j DROP
    iptables -C FORWARD -j FERRY-NODE 2>/dev/null || iptables -I FORWARD 1 -j FERRY-NODE
    iptables -N FERRY-NODE-INPUT 2>/dev/null || iptables -F FERRY-NODE-INPUT
    iptables -A FERRY-NODE-INPUT -p tcp --dport "$API_PORT" -i lo -j RETURN
    iptables -A FERRY-NODE-INPUT -p tcp --dport "$API_PORT" -i "$BRIDGE" -j RETURN
    iptables -A FERRY-NODE-INPUT -p tcp --dport "$API_PORT" -j DROP
    iptables -C INPUT -j FERRY-NODE-INPUT 2>/dev/null || iptables -I INPUT 1 -j FERRY-NODE-INPUT
}

issue_certs() {
    local pki="$DIR/pki"
    [ -f "$pki/kubelet.crt" ] && return 0
    (
        set -e
        cd "$pki"
        client="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
        sign_cert kubelet "/O=system:nodes/CN=system:node:${NODE_NAME}" "$client"
        sign_cert kubelet-serving "/CN=${NODE_NAME}" \
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:${BRIDGE_IP},DNS:${NODE_NAME}\n"
        sign_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
        sign_cert kube-proxy "/CN=system:kube-proxy" "$client"
        sign_cert kube-scheduler "/CN=system:kube-scheduler" "$client"
        sign_cert coredns "/CN=ferry:coredns" "$client"
        chmod 600 ./*.key
    ) || die "node certificate generation failed"
    local who
    for who in kubelet kube-proxy kube-scheduler coredns; do
        kubeconfig "$pki/$who.kubeconfig" "$who" "$pki/$who.crt" "$pki/$who.key"
    done
}

kubeconfig() { # file user cert key
    (umask 077; cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ferry-local
  cluster:
    server: https://127.0.0.1:${API_PORT}
    certificate-authority: $DIR/pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $3
    client-key: $4
contexts:
- name: ferry-local
  context: {cluster: ferry-local, user: $2}
current-context: ferry-local
EOF
    )
}

prepare() {
    take_node_lock
    mkdir -p "$NODE"
    record_host
    make_bridge
    guard
    issue_certs
    log "prepared: bridge $BRIDGE $BRIDGE_IP, pod subnet $POD_CIDR, host state in $NODE/host"
}

# --- start ---------------------------------------------------------------------------
TAKEN=" $ETCD_PORT $ETCD_PEER_PORT $API_PORT $KCM_PORT "

cgroups() {
    local h
    for h in /sys/fs/cgroup/*; do
        if [ ! -d "$h" ] || [ -L "$h" ] || [ "$(basename "$h")" = unified ]; then continue; fi
        mkdir -p "$h/$CGROUP_ROOT"
        if [ -f "$h/cpuset.cpus" ]; then
            cat "$h/cpuset.cpus" > "$h/$CGROUP_ROOT/cpuset.cpus"
            cat "$h/cpuset.mems" > "$h/$CGROUP_ROOT/cpuset.mems"
        fi
    done
}

containerd_config() {
    local c="$NODE/containerd"
    mkdir -p "$c/root" "$c/state" "$c/opt" "$NODE/cni/net.d" "$NODE/cni/ipam"
    cat > "$c/config.toml" <<EOF
version = 3
root = "$c/root"
state = "$c/state"
[grpc]
  address = "$c/containerd.sock"
[ttrpc]
  address = "$c/containerd.sock.ttrpc"
[plugins]
  [plugins.'io.containerd.internal.v1.opt']
    path = "$c/opt"
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = 'localhost/pause:ferry'
  [plugins.'io.containerd.cri.v1.runtime']
    restrict_oom_score_adj = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = '$(command -v runc)'
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['/usr/lib/cni']
      conf_dir = '$NODE/cni/net.d'
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
EOF
}

cni_config() { # last: containerd reports NetworkReady once a config appears
    cat > "$NODE/cni/net.d/10-ferry.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "ferry", "plugins": [{
  "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
  "ipam": {"type": "host-local", "dataDir": "$NODE/cni/ipam",
           "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$BRIDGE_IP"}]],
           "routes": [{"dst": "0.0.0.0/0"}]}}]}
EOF
}

kubelet_config() {
    local kport="$1" hport="$2"
    printf 'nameserver %s\nsearch %s\noptions ndots:5\n' "$DNS_IP" "$CLUSTER_DOMAIN" > "$NODE/resolv.conf"
    cat > "$NODE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $BRIDGE_IP
port: $kport
healthzBindAddress: 127.0.0.1
healthzPort: $hport
readOnlyPort: 0
tlsCertFile: $DIR/pki/kubelet-serving.crt
tlsPrivateKeyFile: $DIR/pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $DIR/pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_ROOT
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$NODE/containerd/containerd.sock
clusterDNS: [$DNS_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $NODE/resolv.conf
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
rotateCertificates: false
volumePluginDir: $NODE/volume-plugins
EOF
}

proxy_config() {
    local hport="$1" mport="$2"
    cat > "$NODE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $DIR/pki/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:$hport
metricsBindAddress: 127.0.0.1:$mport
iptables: {localhostNodePorts: false}
conntrack: {maxPerCore: 0}
EOF
}

coredns_config() {
    local hport="$1"
    cat > "$NODE/Corefile" <<EOF
.:53 {
    bind $DNS_IP
    errors
    health 127.0.0.1:$hport
    kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
        kubeconfig $DIR/pki/coredns.kubeconfig ferry-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
EOF
    "${KUBECTL[@]}" apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "ferry:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "ferry:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "ferry:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "ferry:coredns"}]
EOF
}

# Import an OCI archive into the node's containerd (images are used with imagePullPolicy Never).
import_image() {
    "$NODE_BIN/ctr" --address "$NODE/containerd/containerd.sock" -n k8s.io images import \
        --all-platforms "$1" >/dev/null || die "ctr images import $1 failed"
}

start_node() {
    # hack/cluster/up.sh writes its kubeconfigs under umask 077; containerd would create every
    # snapshot's root 0700 with it, and only root could use an image's files.
    umask 022
    NODE_BIN="$("$HERE/build.sh" | tail -n 1)" || die "hack/node/build.sh failed"
    export PATH="$NODE_BIN:$PATH"
    if alive kubelet && alive containerd; then log "the node of $DIR is already running"; return 0; fi
    local sched_port kport khport phport pmport dport
    local name
    for name in sched_port kport khport phport pmport dport; do
        printf -v "$name" '%s' "$(free_port)"
        TAKEN+="${!name} "
    done
    start kube-scheduler "$NODE_BIN/kube-scheduler" \
        --kubeconfig "$DIR/pki/kube-scheduler.kubeconfig" \
        --authentication-kubeconfig "$DIR/pki/kube-scheduler.kubeconfig" \
        --authorization-kubeconfig "$DIR/pki/kube-scheduler.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$sched_port" --leader-elect=false --v 1
    cgroups
    containerd_config
    start containerd "$NODE_BIN/containerd" --config "$NODE/containerd/config.toml"
    wait_until "containerd socket" 30 test -S "$NODE/containerd/containerd.sock"
    python3 "$HERE/pause_image.py" "$NODE_BIN/pause" "$NODE/pause.tar" localhost/pause:ferry
    import_image "$NODE/pause.tar"
    cni_config
    kubelet_config "$kport" "$khport"
    start kubelet "$NODE_BIN/kubelet" --config "$NODE/kubelet.yaml" \
        --kubeconfig "$DIR/pki/kubelet.kubeconfig" --root-dir "$NODE/kubelet" \
        --hostname-override "$NODE_NAME" --node-ip "$BRIDGE_IP" --v 1
    proxy_config "$phport" "$pmport"
    start kube-proxy "$NODE_BIN/kube-proxy" --config "$NODE/kube-proxy.yaml"
    coredns_config "$dport"
    start coredns "$NODE_BIN/coredns" -conf "$NODE/Corefile"
    cat >> "$DIR/cluster.env" <<EOF
FERRY_NODE_BIN=$NODE_BIN
FERRY_NODE_NAME=$NODE_NAME
CONTAINERD_ADDRESS=$NODE/containerd/containerd.sock
BRIDGE_IP=$BRIDGE_IP
POD_CIDR=$POD_CIDR
EOF
    wait_until "node $NODE_NAME Ready" 120 "${KUBECTL[@]}" wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s
    wait_until "CoreDNS health" 30 curl -fsS "http://127.0.0.1:$dport/health"
    log "node $NODE_NAME ready (pods on $BRIDGE $POD_CIDR, DNS $DNS_IP)"
}

case "$STEP" in
    prepare) prepare ;;
    start) start_node ;;
    import) NODE_BIN="$("$HERE/build.sh" | tail -n 1)"; import_image "${3:?usage: up.sh import DIR ARCHIVE}" ;;
    *) die "unknown step $STEP (prepare|start|import)" ;;
esac
