#!/usr/bin/env bash
# veer demo (`make demo`): a small node of network namespaces as pods (a client, the
# bookinfo backends; reviews v1/v2/v3 answer with their version), veer-agent (and the
# veer-proxy it runs in the node's netns) on the seed 000/001/002 configs, and real HTTP
# traffic to the reviews service address 10.96.0.20:9080 (on no interface: only the
# cgroup connect hook makes it reachable). Each step prints the observed split per
# version and checks it against what the step intends; header and cookie steps go
# through veer-proxy, request by request.
#
# Needs root. Uses a private bpffs mount, so a real veer install is never touched.
# Cleans up everything it made on exit, failure, Ctrl-C or SIGTERM.
#
# Environment: DEMO_REQUESTS (default 200) HTTP requests per step.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/build/bin
CONFIGS=$ROOT/configs
REQUESTS=${DEMO_REQUESTS:-200}
SERVICE_V4=10.96.0.20
SERVICE_V6=fd00:96::20
PORT=9080

WORLD=demo$$                   # veer-world names: [A-Za-z0-9_]{1,16}
TMP=""                         # everything temporary lives under here
BPFFS=""
MOUNTED=0
WORLD_UP=0
AGENT_PID=""
AGENT_LOG=""
CLEANED=0
UNEXPECTED=0

say() { printf '%s\n' "$*"; }
die() {
  say "demo: $*" >&2
  exit 1
}

agent_log_tail() {
  if [[ -n $AGENT_LOG && -s $AGENT_LOG ]]; then
    say "--- last lines of the agent log ($AGENT_LOG) ---" >&2
    tail -n 20 "$AGENT_LOG" >&2 || true
    say "---" >&2
  fi
}

# Idempotent and quiet; safe at any point (every step checks what was actually made).
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if ((CLEANED)); then
    return
  fi
  CLEANED=1
  if ((rc != 0 && rc != 130)); then
    agent_log_tail
  fi
  if [[ -n $AGENT_PID ]]; then
    kill -TERM "$AGENT_PID" 2>/dev/null
    wait "$AGENT_PID" 2>/dev/null
  fi
  if ((MOUNTED)); then
    "$BIN/veer-agent" --uninstall --bpffs "$BPFFS" >/dev/null 2>&1
    umount "$BPFFS" 2>/dev/null || umount -l "$BPFFS" 2>/dev/null
  fi
  if ((WORLD_UP)); then
    "$BIN/veer-world" down --name "$WORLD" >/dev/null 2>&1
  fi
  if [[ -n $TMP ]]; then
    rm -rf "$TMP"
  fi
  return "$rc"
}
on_signal() {
  say "" >&2
  say "demo: interrupted; cleaning up" >&2
  exit 130
}
trap cleanup EXIT
trap on_signal INT TERM

[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, cgroups, BPF)"
[[ $REQUESTS =~ ^[1-9][0-9]*$ ]] || die "DEMO_REQUESTS must be a positive integer"
for b in veer-agent veer-proxy veerctl veer-world veer-testsrv; do
  [[ -x $BIN/$b ]] || die "$BIN/$b missing: run 'make all' (or 'make demo')"
done
command -v curl >/dev/null || die "curl missing: run 'make deps'"

# --- setup ----------------------------------------------------------------------
TMP=$(mktemp -d /run/veer-demo.XXXXXX)
BPFFS=$TMP/bpffs
CONF=$TMP/config
AGENT_LOG=$TMP/agent.log
mkdir -p "$BPFFS" "$CONF"
mount -t bpf bpf "$BPFFS"
MOUNTED=1

say "== veer demo: world '$WORLD', private bpffs $BPFFS, $REQUESTS requests per step"
WORLD_UP=1   # set before `up`: a half-built world is still torn down by `down`
"$BIN/veer-world" up --name "$WORLD" --inventory "$CONFIGS/bookinfo/inventory.yaml" --detach \
  >"$TMP/world-up.log" 2>&1 || { cat "$TMP/world-up.log" >&2; die "veer-world up failed"; }
CGROUP=$("$BIN/veer-world" cgroup --name "$WORLD")
say "   pods: $("$BIN/veer-world" pods --name "$WORLD" | awk '{print $1}' | sort | tr '\n' ' ')"

# The config dir: inventory + the seed's DestinationRules + one step's VirtualServices.
cp "$CONFIGS/bookinfo/inventory.yaml" "$CONF/inventory.yaml"
cp "$CONFIGS/000-asm-bookinfo/destination-rules.yaml" "$CONF/destination-rules.yaml"
cp "$CONFIGS/000-asm-bookinfo/steps/01-all-v1.yaml" "$CONF/routes.yaml"

# veer-proxy listens on the node's bridge address (the pods' gateway), in the node netns.
PROXY=10.244.1.1:15001
# The agent's /metrics on a free loopback port (the node's 9967 may be taken).
METRICS=""
for port in $(seq 19967 20066); do
  if ! ss -Hltn "sport = :$port" | grep -q .; then
    METRICS=127.0.0.1:$port
    break
  fi
done
[[ -n $METRICS ]] || die "no free port in 19967-20066 for the agent's metrics"
"$BIN/veer-agent" --config-dir "$CONF" --cgroup "$CGROUP" --bpffs "$BPFFS" \
  --metrics-listen "$METRICS" --run-dir "$TMP/run" --proxy-listen "$PROXY" \
  --proxy-netns "$("$BIN/veer-world" node-netns --name "$WORLD")" >"$AGENT_LOG" 2>&1 &
AGENT_PID=$!
say "   veer-agent pid $AGENT_PID attached to $CGROUP (veer-proxy on $PROXY); log: $AGENT_LOG"

# Atomically replace a file of the config dir (the agent watches the directory).
put() {
  local src=$1 dst=$2
  cmp -s "$src" "$CONF/$dst" && return 0
  cp "$src" "$CONF/.$dst.tmp"
  mv -f "$CONF/.$dst.tmp" "$CONF/$dst"
}

wait_live() {
  kill -0 "$AGENT_PID" 2>/dev/null || die "veer-agent exited"
  "$BIN/veerctl" --bpffs "$BPFFS" wait "$CONF" --timeout 30 >"$TMP/wait.log" 2>&1 ||
    { cat "$TMP/wait.log" >&2; die "config did not go live (veerctl wait)"; }
}

# One exec per step: N sequential HTTP requests (each a new connection) from the client,
# with optional extra curl arguments (a header).
send_requests() {
  local n=$1 out=$2
  shift 2
  local args=""
  (($#)) && args=$(printf " %q" "$@")
  "$BIN/veer-world" exec --name "$WORLD" client -- sh -c \
    "for i in \$(seq $n); do curl -s --max-time 2$args http://$SERVICE_V4:$PORT/ || echo FAILED; done" \
    >"$out"
}

check_split() {
  if show_split "$1" "$2"; then
    say "  ok"
  else
    say "  UNEXPECTED (intended: $2)"
    UNEXPECTED=$((UNEXPECTED + 1))
  fi
}

# show_split OUTFILE "v1=80 v2=20": counts, percentages, bars; ok/UNEXPECTED.
show_split() {
  local out=$1 expected=$2
  # Within 1 point; if N is not a multiple of 100, also allow one connection's worth.
  awk -v n="$REQUESTS" -v expected="$expected" '
    { seen[$0]++ }
    END {
      tol = 1.0
      if (n % 100 != 0 && 100.0 / n > tol) tol = 100.0 / n
      split(expected, pairs, " ")
      for (i in pairs) { split(pairs[i], kv, "="); want[kv[1]] = kv[2]; all[kv[1]] = 1 }
      for (v in seen) all[v] = 1
      for (v in want) if (!(v in seen)) seen[v] = 0
      bad = 0
      m = 0
      for (v in all) names[++m] = v
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (names[j] < names[i]) { t = names[i]; names[i] = names[j]; names[j] = t }
      for (i = 1; i <= m; i++) {
        v = names[i]; c = seen[v]; p = 100.0 * c / n
        bar = ""; for (k = 0; k < int(p / 5 + 0.5); k++) bar = bar "#"
        w = (v in want) ? want[v] : 0
        d = p - w; if (d < 0) d = -d
        if (d > tol) bad = 1
        printf "  %-4s %5d  %5.1f%%  %-21s (intended %d%%)\n", v, c, p, bar, w
      }
      exit bad
    }' "$out"
}

# step SEED FILE DR_FILE INTENT EXPECTED [jason:EXPECTED | ipv6:VERSION]
step() {
  local seed=$1 file=$2 dr=$3 intent=$4 expected=$5 extra=${6:-}
  local name=${file%.yaml}
  say ""
  say "== $seed / $name: $intent"
  if [[ $extra == jason:* ]]; then
    say "  (a header match: reviews takes the L7 path, veer-proxy routes each request)"
  fi
  # Routes first, then the DestinationRules: on a seed switch the intermediate config
  # (new routes, old DRs) stays valid, as the old DRs declare every subset used.
  put "$CONFIGS/$seed/steps/$file" routes.yaml
  put "$CONFIGS/$seed/$dr" destination-rules.yaml
  "$BIN/veerctl" validate "$CONF" 2>&1 | grep -i 'warning' | sed "s|$CONF/||; s|^|  note: |" || true
  wait_live
  send_requests "$REQUESTS" "$TMP/responses"
  check_split "$TMP/responses" "$expected"
  if [[ $extra == jason:* ]]; then
    say "  with 'end-user: jason':"
    send_requests "$REQUESTS" "$TMP/responses" -H "end-user: jason"
    check_split "$TMP/responses" "${extra#jason:}"
  fi
  if [[ $extra == ipv6:* ]]; then
    ipv6_request "${extra#ipv6:}"
  fi
}

ipv6_request() {
  local want=$1 got
  got=$("$BIN/veer-world" exec --name "$WORLD" client -- \
    curl -gs --max-time 2 "http://[$SERVICE_V6]:$PORT/" || echo FAILED)
  say "  IPv6: curl http://[$SERVICE_V6]:$PORT/ -> $got"
  if [[ $got != "$want" ]]; then
    say "  UNEXPECTED (intended: $want)"
    UNEXPECTED=$((UNEXPECTED + 1))
  fi
}

# --- seed 000: Anthos Service Mesh bookinfo ----------------------------------------
S=000-asm-bookinfo
D=destination-rules.yaml
step $S 01-all-v1.yaml $D "all traffic to v1" "v1=100"
step $S 02-reviews-v2.yaml $D "blue/green: reviews switched whole to v2" "v2=100" ipv6:v2
step $S 03-reviews-v2-v3-50.yaml $D "canary by weight: 50/50 v2/v3" "v2=50 v3=50"
step $S 04-jason-v3.yaml $D "canary by header: end-user jason -> v3, everyone else v2" "v2=100" jason:v3=100

# --- seed 001: Istio traffic-shifting canary ---------------------------------------
S=001-istio-canary
D=destination-rule.yaml
step $S 01-all-v1.yaml $D "all traffic to v1 (v2 deployed dark)" "v1=100"
step $S 02-test-user-v2.yaml $D "test user jason -> v2, everyone else v1" "v1=100" jason:v2=100
step $S 03-80-20.yaml $D "80/20 v1/v2" "v1=80 v2=20"
step $S 04-5.yaml $D "gradual rollout: 5% to v2" "v1=95 v2=5"
step $S 05-10.yaml $D "gradual rollout: 10% to v2" "v1=90 v2=10"
step $S 06-20.yaml $D "gradual rollout: 20% to v2" "v1=80 v2=20"
step $S 07-50.yaml $D "gradual rollout: 50% to v2" "v1=50 v2=50"
step $S 08-100.yaml $D "all production traffic to v2" "v2=100"
step $S 09-rollback.yaml $D "rollback: everything back to v1" "v1=100"

# --- seed 002: a sticky canary by cookie ---------------------------------------------
S=002-sticky-canary
step $S 01-cookie-90-10.yaml destination-rule.yaml \
  "90/10, and v2's responses set a cookie that keeps that client on v2" "v1=90 v2=10"
say "  one browser-like client (curl's cookie engine, one keep-alive connection), 20 requests:"
seq_out=$("$BIN/veer-world" exec --name "$WORLD" client -- \
  curl -s -b "" "http://$SERVICE_V4:$PORT/?i=[1-20]" | tr '\n' ' ')
say "    $seq_out"
if [[ $seq_out =~ ^(v1\ )*(v2\ )+$ ]]; then
  say "  ok: once on v2 it stays there"
else
  say "  UNEXPECTED: the client left v2 (or never reached it)"
  UNEXPECTED=$((UNEXPECTED + 1))
fi

say ""
say "== veerctl status (live kernel counters, per version)"
"$BIN/veerctl" --bpffs "$BPFFS" status --agent "$METRICS" --run-dir "$TMP/run" | sed 's/^/  /'

say ""
if ((UNEXPECTED)); then
  say "== demo: $UNEXPECTED step(s) UNEXPECTED"
  exit 1
fi
say "== demo: every step ok"
