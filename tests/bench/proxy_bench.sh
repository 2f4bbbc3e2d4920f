#!/usr/bin/env bash
# `make bench` entry point: veer-proxy against HAProxy and nginx (issue 4).
#
# One namespace world (veer-world): reviews-v1/v2/v3 pods running veer-testsrv, an
# "l7proxy" pod running every proxy on its own port, and the "client" pod running wrk.
# Every proxy gets the same rules: header `end-user: jason` -> v3, else 90/10 v1/v2,
# with upstream keep-alive: HAProxy 1 thread (`http-reuse always`), nginx 1 worker
# (upstream keepalive), veer-proxy 1 thread (routes compiled from the same Istio YAML
# by veer-routes, as the agent would). "direct" is wrk straight at reviews-v1.
# Before measuring, each proxy's split is checked on a sample (x-veer-version counts):
# a proxy that routes differently would make the comparison unfair, so that is an error.
#
# Three phases, each with the same cases. "plain": every process runs unconstrained on
# the machine's cores, beside wrk and the backends. "limited": each proxy runs under the
# same CPU limit (a CFS quota, BENCH_CPU_LIMIT cores per BENCH_CPU_PERIOD_US, as a
# DaemonSet's resources.limits.cpu sets one), so the proxy, not wrk or the backends, is
# what limits requests/s: on a 2-core machine wrk and the backends otherwise take more
# CPU per request than any of the proxies. "accelerated": veer-agent
# --socket-acceleration attached to the world's cgroup (no services: only its socket
# acceleration acts), every proxy restarted so its upstream connections are made
# under it, veer-proxy with --no-defer-accept --io epoll as the agent starts it. Node-local
# TCP data then goes straight to the peer socket for every case alike, so the
# accelerated phase compares the proxies on veer's datapath, and the plain phase
# compares them on the kernel's.
#
# Cases are interleaved and rotated over rounds; the table shows medians over rounds of
# requests/s, p99 latency and CPU microseconds per request (the proxy process's
# utime+stime from /proc over the run, divided by the requests wrk completed), and
# ratios against the faster of HAProxy and nginx.
#
# Knobs (environment): BENCH_ROUNDS (3), BENCH_SECONDS (5 per case and round),
# BENCH_CONNECTIONS (64), BENCH_SAMPLE (1000 requests per split check), BENCH_PHASES
# ("plain limited accelerated"), BENCH_CPU_LIMIT (0.5), BENCH_CPU_PERIOD_US (100000,
# Kubernetes' CFS period).
# A/B: BENCH_VEER_B_ARGS (e.g. "--io epoll") and/or BENCH_VEER_B_BIN (another veer-proxy
# binary) add a case "veer-b": a second veer-proxy with those arguments, interleaved with
# the others and reported with its own ratios and a veer/veer-b line.
# Exit status: non-zero only on errors (including an unfair split), never on a missed
# performance goal.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

rounds=${BENCH_ROUNDS:-3}
seconds=${BENCH_SECONDS:-5}
conns=${BENCH_CONNECTIONS:-64}
sample=${BENCH_SAMPLE:-1000}
phases=${BENCH_PHASES:-plain limited accelerated}
cpu_limit=${BENCH_CPU_LIMIT:-0.5}
cpu_period=${BENCH_CPU_PERIOD_US:-100000}

if [[ $EUID -ne 0 ]]; then
  echo "proxy_bench: needs root (network namespaces, cgroups)" >&2
  exit 1
fi
bash scripts/install-deps.sh haproxy nginx-light wrk curl
for bin in veer-proxy veer-world veer-testsrv veer-routes veer-agent veerctl; do
  if [[ ! -x build/bin/$bin ]]; then
    echo "proxy_bench: build/bin/$bin missing; run 'make all' first" >&2
    exit 1
  fi
done

world=pb$$
tmp=$(mktemp -d /tmp/veer-proxy-bench.XXXXXX)
pids=()
limit_cg=
stop_all() {
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  pids=()
}
cleanup() {
  stop_all
  if mountpoint -q "$tmp/bpffs" 2>/dev/null; then
    build/bin/veer-agent --uninstall --bpffs "$tmp/bpffs" >/dev/null 2>&1 || true
    umount "$tmp/bpffs" || true
  fi
  build/bin/veer-world down --name "$world" >/dev/null 2>&1 || true
  remove_limit_cgroup || true
  rm -rf "$tmp"
}
trap cleanup EXIT

proxy_ip=10.244.77.20
v1=10.244.77.11
v2=10.244.77.12
v3=10.244.77.13
port_haproxy=8001
port_nginx=8002
port_veer=8003
port_veer_b=8004
veer_b_bin=${BENCH_VEER_B_BIN:-}
veer_b_args=${BENCH_VEER_B_ARGS:-}
ab=
if [[ -n $veer_b_bin || -n $veer_b_args ]]; then
  ab=1
  veer_b_bin=${veer_b_bin:-build/bin/veer-proxy}
fi

pod() { # name ip [version]
  local labels="    app: l7proxy"
  if [[ -n ${3:-} ]]; then
    labels=$'    app: reviews\n    version: '"$3"
  fi
  cat <<EOF
---
apiVersion: v1
kind: Pod
metadata:
  name: $1
  namespace: default
  labels:
$labels
spec:
  containers:
  - name: c
    ports:
    - name: http
      containerPort: 9080
status:
  phase: Running
  podIP: $2
  podIPs:
  - ip: $2
  conditions:
  - type: Ready
    status: "True"
EOF
}

# The service address is the l7proxy pod's: without the connect hooks, veer-proxy
# listens on it directly and routes by getsockname(), as documented in the engine.
{
  cat <<EOF
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: default
spec:
  clusterIP: $proxy_ip
  ports:
  - name: http
    port: $port_veer
    protocol: TCP
    targetPort: 9080
  - name: http-b
    port: $port_veer_b
    protocol: TCP
    targetPort: 9080
  selector:
    app: reviews
EOF
  pod reviews-v1 $v1 v1
  pod reviews-v2 $v2 v2
  pod reviews-v3 $v3 v3
  pod l7proxy $proxy_ip
  cat <<EOF
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
spec:
  host: reviews
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
  - name: v3
    labels:
      version: v3
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: reviews
        subset: v3
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 90
    - destination:
        host: reviews
        subset: v2
      weight: 10
EOF
} >"$tmp/world.yaml"

build/bin/veer-routes "$tmp/world.yaml" >"$tmp/routes.json"

cat >"$tmp/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  option http-keep-alive
  http-reuse always
frontend fe
  bind $proxy_ip:$port_haproxy
  use_backend v3 if { req.hdr(end-user) -m str jason }
  default_backend split
backend split
  balance roundrobin
  server v1 $v1:9080 weight 90
  server v2 $v2:9080 weight 10
backend v3
  server v3 $v3:9080
EOF

cat >"$tmp/nginx.conf" <<EOF
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err warn;
events { worker_connections 8000; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $tmp/nginx-body;
  proxy_temp_path $tmp/nginx-proxy;
  split_clients "\$request_id" \$split { 90% v1; * v2; }
  map \$http_end_user \$pool { jason v3; default \$split; }
  upstream v1 { server $v1:9080; keepalive 256; keepalive_requests 1000000; }
  upstream v2 { server $v2:9080; keepalive 256; keepalive_requests 1000000; }
  upstream v3 { server $v3:9080; keepalive 256; keepalive_requests 1000000; }
  server {
    listen $proxy_ip:$port_nginx;
    location / {
      proxy_pass http://\$pool;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF

echo "proxy_bench: world $world: $rounds rounds x ${seconds}s, $conns connections" >&2
build/bin/veer-world up --name "$world" --inventory "$tmp/world.yaml" --detach >/dev/null

in_pod() { # pod cmd...
  local p=$1
  shift
  build/bin/veer-world exec --name "$world" "$p" -- "$@"
}

# In the background, as the process itself: veer-world exec execs the command, so $! is the
# proxy's pid (killed by stop_all, measured by cpu_ticks), not a shell that would leave it
# running when killed.
spawn_in_pod() { # pod cmd...
  local p=$1
  shift
  (exec build/bin/veer-world exec --name "$world" "$p" -- "$@") &
}

# Fairness: the same split and the same header routing through every proxy.
check_split() { # name port
  local args=() i
  for ((i = 0; i < sample; i++)); do
    args+=(-o /dev/null "http://$proxy_ip:$2/")
  done
  local plain jason
  plain=$(in_pod client curl -s -w '%header{x-veer-version}\n' "${args[@]}" | sort | uniq -c |
    awk '{printf "%s=%s ", $2, $1}')
  jason=$(in_pod client curl -s -H 'end-user: jason' -w '%header{x-veer-version}\n' \
    "${args[@]:0:300}" | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}')
  echo "split $1: plain: $plain jason: $jason" >&2
  local n1 n2 n3
  n1=$(sed -n 's/.*v1=\([0-9]*\).*/\1/p' <<<"$plain")
  n2=$(sed -n 's/.*v2=\([0-9]*\).*/\1/p' <<<"$plain")
  n3=$(sed -n 's/.*v3=\([0-9]*\).*/\1/p' <<<"$plain")
  if [[ -n $n3 || -z $n1 || -z $n2 || $((n1 + n2)) -ne $sample ||
    $((n2 * 100)) -lt $((sample * 6)) || $((n2 * 100)) -gt $((sample * 14)) ||
    $jason != "v3=100 " ]]; then
    echo "proxy_bench: $1 does not split 90/10 and route jason to v3; not comparable" >&2
    exit 1
  fi
}

start_proxies() { # veer-proxy extra arguments
  local veer_extra=$1 b_extra=$1
  # A listener left from the previous phase would share its port (SO_REUSEPORT) and
  # take part of the load unmeasured.
  if in_pod l7proxy ss -Hltn | grep -qE "$proxy_ip:($port_haproxy|$port_nginx|$port_veer|$port_veer_b) "; then
    echo "proxy_bench: a proxy port is still in use: $(in_pod l7proxy ss -Hltnp)" >&2
    exit 1
  fi
  if [[ $veer_b_args == *--io* ]]; then # veer-b's own --io wins
    b_extra=${veer_extra/--io epoll/}
  fi
  spawn_in_pod l7proxy haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1
  pid_haproxy=$!
  pids+=("$pid_haproxy")
  spawn_in_pod l7proxy nginx -c "$tmp/nginx.conf" -g 'daemon off;' >"$tmp/nginx.log" 2>&1
  pid_nginx=$!
  pids+=("$pid_nginx")
  spawn_in_pod l7proxy build/bin/veer-proxy --listen "$proxy_ip:$port_veer" --routes "$tmp/routes.json" \
    --threads 1 $veer_extra --ready-fd 3 3>"$tmp/veer.ready" >"$tmp/veer.log" 2>&1
  pid_veer=$!
  pids+=("$pid_veer")
  if [[ -n $ab ]]; then
    # shellcheck disable=SC2086 # the arguments are words
    spawn_in_pod l7proxy "$veer_b_bin" --listen "$proxy_ip:$port_veer_b" --routes "$tmp/routes.json" \
      --threads 1 --ready-fd 3 $b_extra $veer_b_args 3>"$tmp/veer-b.ready" >"$tmp/veer-b.log" 2>&1
    pid_veer_b=$!
    pids+=("$pid_veer_b")
  fi

  # Ready when each accepts and answers (curl retries refused connects, bounded).
  for port in $port_haproxy $port_nginx $port_veer ${ab:+$port_veer_b}; do
    if ! in_pod client curl -sf --retry 50 --retry-connrefused --retry-delay 0 --retry-max-time 20 \
      -o /dev/null "http://$proxy_ip:$port/"; then
      echo "proxy_bench: proxy on port $port does not answer" >&2
      tail -n 20 "$tmp"/*.log "$tmp/nginx.err" >&2 2>/dev/null || true
      exit 1
    fi
  done
  if ! grep -q '^loaded ' "$tmp/veer.ready"; then
    echo "proxy_bench: veer-proxy did not load its routes: $(cat "$tmp/veer.ready")" >&2
    exit 1
  fi

  check_split haproxy $port_haproxy
  check_split nginx $port_nginx
  check_split veer $port_veer
  if [[ -n $ab ]]; then
    check_split veer-b $port_veer_b
    echo "veer-b: $veer_b_bin $veer_b_args ($(grep -o 'threads, [a-z_]*' "$tmp/veer-b.log" | head -1))" >&2
    echo "veer:   build/bin/veer-proxy ($(grep -o 'threads, [a-z_]*' "$tmp/veer.log" | head -1))" >&2
  fi
}

# The cgroup the "limited" phase moves each proxy into, with the CPU limit as a CFS quota:
# cgroup v2's cpu.max where a v2 hierarchy has the cpu controller, else cgroup v1's cpu
# hierarchy. Created here, removed when the phase ends. (On cgroup v2 this takes the proxies
# out of their pod's cgroup; no veer-agent runs in this phase.)
make_limit_cgroup() {
  local quota v2 v1
  quota=$(awk -v l="$cpu_limit" -v p="$cpu_period" 'BEGIN {printf "%d", l * p}')
  v2=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/self/mounts)
  v1=$(awk '$3 == "cgroup" && $4 ~ /(^|,)cpu(,|$)/ {print $2; exit}' /proc/self/mounts)
  if [[ -n $v2 ]] && grep -qw cpu "$v2/cgroup.controllers"; then
    if ! grep -qw cpu "$v2/cgroup.subtree_control"; then
      echo "proxy_bench: the limited phase needs the cpu controller enabled in" \
        "$v2/cgroup.subtree_control" >&2
      exit 1
    fi
    limit_cg=$v2/veer-proxy-bench-$$
    mkdir "$limit_cg"
    echo "$quota $cpu_period" >"$limit_cg/cpu.max"
  elif [[ -n $v1 ]]; then
    limit_cg=$v1/veer-proxy-bench-$$
    mkdir "$limit_cg"
    echo "$cpu_period" >"$limit_cg/cpu.cfs_period_us"
    echo "$quota" >"$limit_cg/cpu.cfs_quota_us"
  else
    echo "proxy_bench: the limited phase needs a cgroup hierarchy with the cpu controller" >&2
    exit 1
  fi
}

remove_limit_cgroup() {
  if [[ -n $limit_cg && -d $limit_cg ]]; then
    local p
    for p in $(cat "$limit_cg/cgroup.procs"); do # stop_all reaped the proxies: strays only
      kill "$p" 2>/dev/null && tail --pid="$p" -f /dev/null
    done
    rmdir "$limit_cg"
  fi
  limit_cg=
}

children() { # pid: its child processes (/proc/PID/stat; a comm may hold spaces)
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } |
    awk -v p="$1" '{pid = $1; sub(/.*\) /, ""); if ($2 == p) print pid}'
}

limit() { # pid: the process and every descendant into the limit cgroup
  local p=$1 c
  echo "$p" >"$limit_cg/cgroup.procs"
  for c in $(children "$p"); do
    limit "$c"
  done
}

# CPU ticks (utime+stime) of a process and its child processes (nginx's worker).
cpu_ticks() {
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | # processes may exit while being read
    awk -v top="$1" '$1 == top || $4 == top {t += $14 + $15} END {print t + 0}'
}

to_ms() { # wrk latency: 812.00us 1.23ms 2.01s
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000
    printf "%.3f", n }'
}

hz=$(getconf CLK_TCK)
cases=(direct haproxy nginx veer ${ab:+veer-b})
declare -A url pid
url[direct]="http://$v1:9080/"
url[haproxy]="http://$proxy_ip:$port_haproxy/"
url[nginx]="http://$proxy_ip:$port_nginx/"
url[veer]="http://$proxy_ip:$port_veer/"
url[veer-b]="http://$proxy_ip:$port_veer_b/"
results=$tmp/results # phase mode case rps p99ms cpu_us_per_req

run_case() { # phase mode case
  local phase=$1 mode=$2 c=$3 extra=() before=0 after=0 out
  [[ $mode == close ]] && extra=(-H "Connection: close")
  [[ -n ${pid[$c]} ]] && before=$(cpu_ticks "${pid[$c]}")
  out=$(in_pod client wrk -t1 -c"$conns" -d"${seconds}s" --latency "${extra[@]}" "${url[$c]}")
  [[ -n ${pid[$c]} ]] && after=$(cpu_ticks "${pid[$c]}")
  local rps p99 reqs cpu=-
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  if [[ -z $rps || -z $reqs ]]; then
    echo "proxy_bench: $c/$mode: wrk failed: $out" >&2
    exit 1
  fi
  if [[ -n ${pid[$c]} && $reqs -gt 0 ]]; then
    cpu=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$reqs" 'BEGIN {printf "%.2f", t * 1e6 / hz / n}')
  fi
  if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
    echo "proxy_bench: $c/$mode: $(grep 'Non-2xx\|Socket errors' <<<"$out")" >&2
  fi
  echo "$phase $mode $c $rps $p99 $cpu" >>"$results"
  printf '  %-11s %-9s %-8s %10s req/s  p99 %8s ms  %8s us/req\n' "$phase" "$mode" "$c" "$rps" \
    "$p99" "$cpu" >&2
}

# veer-agent with socket acceleration on the world's cgroup, on a private bpffs, with no
# services: its connect hooks pass everything through, its sockops/sk_msg accelerate.
start_agent() {
  mkdir -p "$tmp/bpffs" "$tmp/config"
  mountpoint -q "$tmp/bpffs" || mount -t bpf bpf "$tmp/bpffs"
  build/bin/veer-agent --config-dir "$tmp/config" --bpffs "$tmp/bpffs" --metrics-listen off --socket-acceleration \
    --cgroup "$(build/bin/veer-world cgroup --name "$world")" >"$tmp/agent.log" 2>&1 &
  pids+=("$!")
  if ! build/bin/veerctl --bpffs "$tmp/bpffs" wait --timeout 20 "$tmp/config" >/dev/null; then
    echo "proxy_bench: veer-agent did not apply its (empty) config" >&2
    tail -n 20 "$tmp/agent.log" >&2
    exit 1
  fi
}

for phase in $phases; do
  case $phase in
  plain) start_proxies "" ;;
  limited)
    start_proxies ""
    make_limit_cgroup
    for p in "$pid_haproxy" "$pid_nginx" "$pid_veer" ${ab:+"$pid_veer_b"}; do
      limit "$p"
    done
    ;;
  accelerated)
    start_agent
    start_proxies "--no-defer-accept --io epoll" # as veer-agent starts it then
    ;;
  *)
    echo "proxy_bench: unknown phase $phase (BENCH_PHASES: plain limited accelerated)" >&2
    exit 1
    ;;
  esac
  pid[direct]=""
  pid[haproxy]=$pid_haproxy
  pid[nginx]=$pid_nginx # the master; its worker is its child
  pid[veer]=$pid_veer
  pid[veer-b]=${pid_veer_b:-}
  # Warm every path (pools, caches) once, unmeasured.
  for c in "${cases[@]}"; do
    in_pod client wrk -t1 -c"$conns" -d1s "${url[$c]}" >/dev/null
  done
  for ((r = 0; r < rounds; r++)); do
    echo "$phase: round $((r + 1))/$rounds" >&2
    for mode in keepalive close; do
      for ((i = 0; i < ${#cases[@]}; i++)); do
        run_case "$phase" "$mode" "${cases[$(((i + r) % ${#cases[@]}))]}"
      done
    done
  done
  if [[ $phase == accelerated ]]; then
    build/bin/veerctl --bpffs "$tmp/bpffs" status | grep '^socket acceleration' >&2 ||
      { echo "proxy_bench: socket acceleration joined no connection" >&2; exit 1; }
  fi
  stop_all
  remove_limit_cgroup
  if [[ $phase == accelerated ]]; then # pinned: acceleration outlives the agent until this
    build/bin/veer-agent --uninstall --bpffs "$tmp/bpffs" >/dev/null
  fi
done

median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

echo
echo "veer-proxy vs HAProxy (1 thread, http-reuse always) and nginx (1 worker), $conns connections,"
echo "medians of $rounds rounds x ${seconds}s; ratios against the faster of HAProxy and nginx in the"
echo "same phase (limited: each proxy under a CPU limit of $cpu_limit cores, CFS period ${cpu_period}us;"
echo "accelerated: veer-agent --socket-acceleration on for every case)"
printf '%-11s %-9s %-8s %11s %9s %11s %9s %9s\n' phase mode case req/s p99-ms cpu-us/req rps-ratio \
  cpu-ratio
col() { # phase mode case field
  awk -v p="$1" -v m="$2" -v c="$3" -v f="$4" '$1 == p && $2 == m && $3 == c && $f != "-" {print $f}' \
    "$results" | median
}
declare -A bestplain
for phase in $phases; do
  for mode in keepalive close; do
    declare -A rps p99 cpu
    for c in "${cases[@]}"; do
      rps[$c]=$(col "$phase" "$mode" "$c" 4)
      p99[$c]=$(col "$phase" "$mode" "$c" 5)
      cpu[$c]=$(col "$phase" "$mode" "$c" 6)
    done
    best=haproxy
    if awk -v a="${rps[nginx]}" -v b="${rps[haproxy]}" 'BEGIN {exit !(a > b)}'; then
      best=nginx
    fi
    [[ $phase == plain ]] && bestplain[$mode]="$best ${rps[$best]}"
    for c in "${cases[@]}"; do
      ratio=$(awk -v a="${rps[$c]}" -v b="${rps[$best]}" 'BEGIN {printf "%.2fx", a / b}')
      cratio=-
      if [[ ${cpu[$c]} != - && ${cpu[$best]} != - ]]; then
        cratio=$(awk -v a="${cpu[$c]}" -v b="${cpu[$best]}" 'BEGIN {printf "%.2fx", a / b}')
      fi
      printf '%-11s %-9s %-8s %11s %9s %11s %9s %9s\n' "$phase" "$mode" "$c" "${rps[$c]}" \
        "${p99[$c]}" "${cpu[$c]}" "$ratio" "$cratio"
    done
    if [[ -n $ab ]]; then
      # Per round (the two ran close together), then the median of the per-round ratios.
      pair() { # field
        awk -v p="$phase" -v m="$mode" -v f="$1" '$1 == p && $2 == m && $3 == "veer" {a[++na] = $f}
          $1 == p && $2 == m && $3 == "veer-b" {b[++nb] = $f}
          END {for (i = 1; i <= na && i <= nb; i++) print a[i] / b[i]}' "$results" | median
      }
      printf '%-11s %-9s veer/veer-b: req/s %.3fx  cpu-us/req %.3fx (medians of per-round ratios)\n' \
        "$phase" "$mode" "$(pair 4)" "$(pair 6)"
    fi
    if [[ $phase == accelerated && -n ${bestplain[$mode]:-} ]]; then
      read -r pbest prps <<<"${bestplain[$mode]}"
      printf '%-11s %-9s veer on its node datapath vs plain %s: %.2fx req/s (across phases)\n' \
        "$phase" "$mode" "$pbest" "$(awk -v a="${rps[veer]}" -v b="$prps" 'BEGIN {print a / b}')"
    fi
    unset rps p99 cpu
  done
done
echo "(faster baseline per phase and mode: the higher req/s of haproxy and nginx; direct = wrk to"
echo " reviews-v1)"
