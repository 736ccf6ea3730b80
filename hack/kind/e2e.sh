#!/usr/bin/env bash
# End-to-end smoke test on kind: builds the kube-proxy-ts image, creates a kind cluster without
# kube-proxy (hack/kind/cluster.yaml), deploys hack/deploy/kube-proxy-ts.yaml in its place and
# checks Services through it: ClusterIP over TCP and UDP, NodePort, the UDP client that must get
# answers again after its Service's pods went away and came back, and the metrics endpoint.
#
#   hack/kind/e2e.sh                   build, create, test, delete the cluster
#   KEEP_CLUSTER=1 hack/kind/e2e.sh    keep the cluster afterwards (kubectl --context kind-NAME)
#
# Environment (defaults in brackets): CLUSTER_NAME [kube-proxy-ts-e2e], IMAGE [kube-proxy-ts:dev],
# KEEP_CLUSTER [0], AGNHOST_IMAGE [registry.k8s.io/e2e-test-images/agnhost:2.53],
# TIMEOUT for rollouts [180s], UDP_RECOVERY_SECONDS [10].
#
# Needs docker, kind and kubectl. Sourcing this file only defines variables and functions (main
# runs when it is executed), so tests call render_manifest, pod_subnet_of and the *_manifest
# functions directly (test/unit/deploy/).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
MANIFEST="$REPO_ROOT/hack/deploy/kube-proxy-ts.yaml"
DOCKERFILE="$REPO_ROOT/hack/deploy/Dockerfile"
KIND_CONFIG="$SCRIPT_DIR/cluster.yaml"

CLUSTER_NAME=${CLUSTER_NAME:-kube-proxy-ts-e2e}
IMAGE=${IMAGE:-kube-proxy-ts:dev}
KEEP_CLUSTER=${KEEP_CLUSTER:-0}
AGNHOST_IMAGE=${AGNHOST_IMAGE:-registry.k8s.io/e2e-test-images/agnhost:2.53}
TIMEOUT=${TIMEOUT:-180s}
UDP_RECOVERY_SECONDS=${UDP_RECOVERY_SECONDS:-10}

# Namespace of the smoke-test workload, and the ports it uses.
NS=kpts-e2e
NODEPORT_TCP=30080
NODEPORT_UDP=30081
UDP_CLIENT_PORT=31337

cluster_created=0
work_dir=

log() { printf '%s e2e: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  log "FAIL: $*"
  exit 1
}

# kubectl against this cluster only, whatever the current context is.
kc() { kubectl --context "kind-${CLUSTER_NAME}" "$@"; }

# Renders the kube-proxy-ts manifest (stdin) for one cluster (stdout): the pod CIDR into the
# KubeProxyConfiguration's clusterCIDR, the API server address into KUBERNETES_SERVICE_HOST/PORT,
# and the image.
render_manifest() {
  local pod_cidr=$1 apiserver_host=$2 apiserver_port=$3 image=$4
  awk -v cidr="$pod_cidr" -v host="$apiserver_host" -v port="$apiserver_port" -v image="$image" '
    function lead(s) { match(s, /^ */); return substr(s, 1, RLENGTH) }
    want != "" && $1 == "value:" { print lead($0) "value: \"" want "\""; want = ""; next }
    $1 == "clusterCIDR:" { print lead($0) "clusterCIDR: \"" cidr "\""; next }
    $1 == "image:" { print lead($0) "image: " image; next }
    $1 == "-" && $2 == "name:" && $3 == "KUBERNETES_SERVICE_HOST" { want = host }
    $1 == "-" && $2 == "name:" && $3 == "KUBERNETES_SERVICE_PORT" { want = port }
    { print }
  '
}

# Prints networking.podSubnet of a kubeadm ClusterConfiguration read from stdin.
pod_subnet_of() {
  awk '$1 == "podSubnet:" { gsub(/["'\'']/, "", $2); print $2; exit }'
}

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed or not on PATH ($2)"
}

require_tools() {
  need docker "install Docker Engine or Docker Desktop"
  need kind "install kind, see its Quick Start"
  need kubectl "install kubectl, see the Kubernetes documentation's Install Tools page"
  docker info >/dev/null 2>&1 ||
    die "docker is installed but its daemon does not answer (is it running, and may this user use it?)"
  if kind get clusters 2>/dev/null | grep -qxF "$CLUSTER_NAME"; then
    die "a kind cluster named $CLUSTER_NAME exists already; delete it (kind delete cluster --name $CLUSTER_NAME) or set CLUSTER_NAME"
  fi
}

dump_diagnostics() {
  log "diagnostics follow"
  kc get nodes -o wide || true
  kc get pods -A -o wide || true
  kc -n kube-system logs -l k8s-app=kube-proxy-ts --prefix --tail=200 || true
  kc -n "$NS" get endpointslices -o wide || true
  kc -n "$NS" logs udp-client --tail=40 || true
  local node
  for node in $(kind get nodes --name "$CLUSTER_NAME" 2>/dev/null); do
    log "nat KUBE-* rules on $node (first 100 lines)"
    docker exec "$node" sh -c 'iptables-save -t nat | grep -e "KUBE-" | head -n 100' || true
  done
}

cleanup() {
  local rc=$?
  trap - EXIT
  if [[ $cluster_created == 1 ]]; then
    if [[ $rc != 0 ]]; then dump_diagnostics >&2; fi
    if [[ $KEEP_CLUSTER == 1 ]]; then
      log "KEEP_CLUSTER=1: cluster $CLUSTER_NAME kept (kubectl --context kind-$CLUSTER_NAME; kind delete cluster --name $CLUSTER_NAME)"
    else
      kind delete cluster --name "$CLUSTER_NAME" || log "could not delete cluster $CLUSTER_NAME"
    fi
  fi
  if [[ -n $work_dir ]]; then rm -rf "$work_dir"; fi
  exit "$rc"
}

# Runs "$@" every second until it succeeds; gives up (status 1) after $1 seconds.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    if ((SECONDS >= deadline)); then return 1; fi
    sleep 1
  done
}

build_image() {
  log "building $IMAGE"
  docker build -f "$DOCKERFILE" -t "$IMAGE" "$REPO_ROOT"
}

create_cluster() {
  log "creating kind cluster $CLUSTER_NAME (no kube-proxy)"
  cluster_created=1
  kind create cluster --name "$CLUSTER_NAME" --config "$KIND_CONFIG"
  kind load docker-image "$IMAGE" --name "$CLUSTER_NAME"
}

deploy_proxy() {
  local pod_cidr apiserver_ips apiserver_ip
  pod_cidr=$(kc -n kube-system get configmap kubeadm-config -o jsonpath='{.data.ClusterConfiguration}' | pod_subnet_of)
  [[ -n $pod_cidr ]] || die "no networking.podSubnet in kube-system/kubeadm-config"
  # The API server's own address: the kubernetes Service's ClusterIP needs a running proxy.
  apiserver_ips=$(kc get node "${CLUSTER_NAME}-control-plane" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
  read -r apiserver_ip _ <<<"$apiserver_ips"
  [[ -n $apiserver_ip ]] || die "no InternalIP on node ${CLUSTER_NAME}-control-plane"
  log "deploying kube-proxy-ts (clusterCIDR $pod_cidr, API server $apiserver_ip:6443)"
  render_manifest "$pod_cidr" "$apiserver_ip" 6443 "$IMAGE" <"$MANIFEST" >"$work_dir/kube-proxy-ts.yaml"
  grep -qF "clusterCIDR: \"$pod_cidr\"" "$work_dir/kube-proxy-ts.yaml" || die "render_manifest did not set clusterCIDR"
  kc apply -f "$work_dir/kube-proxy-ts.yaml"
  kc -n kube-system rollout status daemonset/kube-proxy-ts --timeout="$TIMEOUT"
  kc wait --for=condition=Ready nodes --all --timeout="$TIMEOUT"
  # CoreDNS reaches the API server through the kubernetes Service: the first ClusterIP that
  # only works because of kube-proxy-ts.
  kc -n kube-system rollout status deployment/coredns --timeout="$TIMEOUT"
}

# The smoke-test workload: 2 echo pods (TCP 8080 and UDP 8081 answer with their hostname), a
# ClusterIP and a NodePort Service for them, and a client pod to send requests from.
workload_manifest() {
  cat <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $NS
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
  namespace: $NS
spec:
  replicas: 2
  selector:
    matchLabels:
      app: echo
  template:
    metadata:
      labels:
        app: echo
    spec:
      # One pod per node where possible, so that Service traffic crosses nodes.
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              app: echo
      tolerations:
        - key: node-role.kubernetes.io/control-plane
          operator: Exists
          effect: NoSchedule
      terminationGracePeriodSeconds: 1
      containers:
        - name: echo
          image: $AGNHOST_IMAGE
          args: ["netexec", "--http-port=8080", "--udp-port=8081"]
          ports:
            - containerPort: 8080
              protocol: TCP
            - containerPort: 8081
              protocol: UDP
          readinessProbe:
            httpGet:
              path: /healthz
              port: 8080
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: $NS
spec:
  type: ClusterIP
  selector:
    app: echo
  ports:
    - name: http
      protocol: TCP
      port: 80
      targetPort: 8080
    - name: udp
      protocol: UDP
      port: 81
      targetPort: 8081
---
apiVersion: v1
kind: Service
metadata:
  name: echo-nodeport
  namespace: $NS
spec:
  type: NodePort
  selector:
    app: echo
  ports:
    - name: http
      protocol: TCP
      port: 80
      targetPort: 8080
      nodePort: $NODEPORT_TCP
    - name: udp
      protocol: UDP
      port: 81
      targetPort: 8081
      nodePort: $NODEPORT_UDP
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: $NS
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: client
      image: $AGNHOST_IMAGE
      args: ["pause"]
EOF
}

deploy_workload() {
  log "deploying the echo Deployment, its Services and the client pod"
  workload_manifest | kc apply -f -
  kc -n "$NS" rollout status deployment/echo --timeout="$TIMEOUT"
  kc -n "$NS" wait --for=condition=Ready pod/client --timeout="$TIMEOUT"
}

# Runs a shell command in the client pod; "$@" after the script become its $1, $2, ...
in_client() {
  local script=$1
  shift
  kc -n "$NS" exec client -- sh -c "$script" sh "$@"
}

# Runs curl in the client pod.
client_curl() { kc -n "$NS" exec client -- curl "$@"; }

echo_pods() { kc -n "$NS" get pods -l app=echo -o jsonpath='{.items[*].metadata.name}'; }
no_echo_pods() { [[ -z $(echo_pods) ]]; }

node_ips() { kc get nodes -o jsonpath='{range .items[*]}{.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}' | awk '{ print $1 }'; }

# Fails unless each name after the first two arguments is one of the reply lines in $2.
expect_replies_from() {
  local what=$1 replies=$2 name
  shift 2
  for name in "$@"; do
    grep -qxF "$name" <<<"$replies" ||
      die "$what: no reply from $name; replies were: $(sort <<<"$replies" | uniq -c | tr -s ' \n' ' ')"
  done
  log "ok: $what reached $*"
}

# 20 TCP requests (each a new connection) and 20 UDP requests (each from a new source port, so a
# new conntrack entry) to host:port; prints one hostname per line.
# shellcheck disable=SC2016 # the single-quoted scripts are expanded by the client pod's shell
tcp_hostnames() { in_client 'for i in $(seq 1 20); do curl -s --max-time 2 "http://$1/hostname"; echo; done' "$1"; }
# shellcheck disable=SC2016
udp_hostnames() { in_client 'for i in $(seq 1 20); do echo hostname | nc -u -w 1 "$1" "$2"; echo; done' "$1" "$2"; }

check_cluster_ip() {
  local svc_ip client_ip seen
  local -a pods
  svc_ip=$(kc -n "$NS" get service echo -o jsonpath='{.spec.clusterIP}')
  read -r -a pods <<<"$(echo_pods)"
  ((${#pods[@]} == 2)) || die "expected 2 echo pods, found: ${pods[*]}"
  expect_replies_from "TCP to ClusterIP $svc_ip:80" "$(tcp_hostnames "$svc_ip:80")" "${pods[@]}"
  expect_replies_from "UDP to ClusterIP $svc_ip:81" "$(udp_hostnames "$svc_ip" 81)" "${pods[@]}"
  # Pod-to-Service traffic is not masqueraded when clusterCIDR covers the pods (detect-local-mode
  # ClusterCIDR): the server sees the client pod's own address.
  client_ip=$(kc -n "$NS" get pod client -o jsonpath='{.status.podIP}')
  seen=$(client_curl -s --max-time 2 "http://$svc_ip:80/clientip")
  [[ ${seen%:*} == "$client_ip" ]] ||
    die "ClusterIP traffic from pod $client_ip arrived from ${seen%:*}: masqueraded (is clusterCIDR the pod CIDR?)"
  log "ok: ClusterIP traffic from a pod keeps its source address $client_ip"
}

check_node_port() {
  local ip replies all_tcp="" all_udp=""
  local -a pods ips
  read -r -a pods <<<"$(echo_pods)"
  mapfile -t ips < <(node_ips)
  ((${#ips[@]} == 2)) || die "expected 2 node IPs, found: ${ips[*]}"
  for ip in "${ips[@]}"; do
    replies=$(tcp_hostnames "$ip:$NODEPORT_TCP")
    grep -q . <<<"$replies" || die "no TCP answer on NodePort $ip:$NODEPORT_TCP"
    all_tcp+=$replies$'\n'
    replies=$(udp_hostnames "$ip" "$NODEPORT_UDP")
    grep -q . <<<"$replies" || die "no UDP answer on NodePort $ip:$NODEPORT_UDP"
    all_udp+=$replies$'\n'
  done
  expect_replies_from "TCP to NodePort $NODEPORT_TCP on ${ips[*]}" "$all_tcp" "${pods[@]}"
  expect_replies_from "UDP to NodePort $NODEPORT_UDP on ${ips[*]}" "$all_udp" "${pods[@]}"
}

# A pod that sends "hostname" to $1:81/UDP from source port $UDP_CLIENT_PORT, over and over, and
# logs "<epoch seconds> try=<n> reply=<hostname or none>" for each try.
udp_client_manifest() {
  local svc_ip=$1
  cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: udp-client
  namespace: $NS
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: udp-client
      image: $AGNHOST_IMAGE
      command: ["/bin/sh", "-c"]
      args:
        - |
          i=0
          while true; do
            i=\$((i + 1))
            reply=\$(echo hostname | nc -u -w 1 -p $UDP_CLIENT_PORT $svc_ip 81)
            echo "\$(date +%s) try=\$i reply=\${reply:-none}"
            sleep 0.2
          done
EOF
}

# A UDP client keeps sending from one source port while the Service goes to zero endpoints and
# back. Its conntrack entry would keep pointing at the old state (a deleted pod, or no DNAT at
# all) for as long as it keeps sending, unless the proxy flushes it: upstream kube-proxy's
# long-standing UDP bug (kubernetes#48370, fixed by #48524 and reworked since).
check_udp_recovery() {
  local svc_ip started elapsed
  local -a old_pods new_pods
  svc_ip=$(kc -n "$NS" get service echo -o jsonpath='{.spec.clusterIP}')
  udp_client_manifest "$svc_ip" | kc apply -f -
  kc -n "$NS" wait --for=condition=Ready pod/udp-client --timeout="$TIMEOUT"
  read -r -a old_pods <<<"$(echo_pods)"
  wait_until 30 udp_client_heard_from "${old_pods[@]}" || die "the UDP client got no answer before the scale-down"
  log "ok: UDP client (source port $UDP_CLIENT_PORT) gets answers; scaling echo to 0"

  kc -n "$NS" scale deployment/echo --replicas=0
  wait_until 120 no_echo_pods || die "the echo pods did not go away"
  sleep 5 # the client keeps sending into a Service without endpoints
  log "scaling echo back to 2"
  kc -n "$NS" scale deployment/echo --replicas=2
  kc -n "$NS" rollout status deployment/echo --timeout="$TIMEOUT"
  started=$SECONDS
  read -r -a new_pods <<<"$(echo_pods)"
  wait_until "$UDP_RECOVERY_SECONDS" udp_client_heard_from "${new_pods[@]}" ||
    die "the UDP client got no answer from the new pods (${new_pods[*]}) within ${UDP_RECOVERY_SECONDS}s of them being ready"
  elapsed=$((SECONDS - started))
  log "ok: UDP client answered by a new pod ${elapsed}s after the pods were ready"
}

# True when the UDP client's log shows a reply from one of the given pods.
udp_client_heard_from() {
  local logs name
  logs=$(kc -n "$NS" logs udp-client) || return 1
  for name in "$@"; do
    if grep -q " reply=${name}\$" <<<"$logs"; then return 0; fi
  done
  return 1
}

check_metrics_and_health() {
  local ip metrics
  for ip in $(node_ips); do
    metrics=$(client_curl -fsS --max-time 5 "http://$ip:10249/metrics") ||
      die "kube-proxy-ts metrics on $ip:10249 did not answer"
    # A successful sync has happened: the last-sync timestamp (one series per IP family) is set.
    awk '$1 ~ /^kubeproxy_sync_proxy_rules_last_timestamp_seconds([{]|$)/ && $NF + 0 > 0 { ok = 1 }
         END { exit !ok }' <<<"$metrics" ||
      die "kube-proxy-ts metrics on $ip:10249: no non-zero kubeproxy_sync_proxy_rules_last_timestamp_seconds"
    client_curl -fsS --max-time 5 -o /dev/null "http://$ip:10256/healthz" ||
      die "kube-proxy-ts /healthz on $ip:10256 is not healthy"
    log "ok: metrics and /healthz answer on $ip"
  done
}

main() {
  require_tools
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  work_dir=$(mktemp -d)
  build_image
  create_cluster
  deploy_proxy
  deploy_workload
  check_cluster_ip
  check_node_port
  check_udp_recovery
  check_metrics_and_health
  log "PASS: kube-proxy-ts on kind cluster $CLUSTER_NAME"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
