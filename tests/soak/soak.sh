#!/usr/bin/env bash
# veer load-and-fault soak (`make soak`, issue 21): SOAK_TIME seconds of mixed keep-alive
# and connection-per-request HTTP through kernel-path and L7 services, while weights flip,
# veer-proxy and veer-agent are killed at random and hostile files come and go in the
# config directory. Reports requests sent and failed, failures by cause and by the fault
# active in the preceding second, and how each fault episode went; exits non-zero if a
# request failed for a cause the README promises never happens, or an episode broke a
# promise (a hostile file applied or not rejected in time, a flip or a restart not live in
# time). The thresholds are the "Verdict" block below.
#
# The node: a veer-world test world (bookinfo pods; reviews v1/v2/v3 answer their version),
# veer-agent attached to the world's cgroup with a private bpffs mount, veer-proxy in the
# world's node netns. The config dir holds the bookinfo inventory and DestinationRules,
# soak-services.yaml (reviews-l7, 10.96.0.28: the reviews pods as an L7 service) and
# routes.yaml (the weights, rewritten by each flip). veer-soak-load runs in the client pod:
#   kernel    10.96.0.20:9080      reviews, weights v1/v2/v3 flip     any version
#   kernel6   [fd00:96::20]:9080   the same over IPv6                 any version
#   l7        10.96.0.28:9080      reviews-l7, weights v1/v2 flip     v1 or v2
#   l7-jason  10.96.0.28:9080      with `end-user: jason` -> v3       v3 only
#
# Fault episodes, one at a time with a random pause (seeded RNG; SOAK_SEED replays the
# sequence) before each; every kind comes once in a shuffled round before any repeats:
#   flip              routes.yaml replaced atomically with new weights; live in APPLY_BOUND_S
#   proxy-kill        kill -9 veer-proxy; the agent restarts it within RECOVER_BOUND_S
#   agent-kill        kill -9 veer-agent, down 0.5-3 s, restarted; live in RECOVER_BOUND_S
#   agent-proxy-kill  as agent-kill, and veer-proxy killed while no agent runs
#   hostile-deep      a ConfigMap nested 20,000 flow sequences deep
#   hostile-deep-proxy-kill  the same, and veer-proxy killed 300 ms later (mid-parse)
#   hostile-big       a 5 MB ConfigMap (a one-line flow map)
#   hostile-weights   a VirtualService whose weights sum to 90
#   hostile-symloop   a directory whose symlink leads back to the config dir
#   hostile-halfwrite the inventory rewritten in place in two writes 300 ms apart, cut
#                     before a reviews pod: the first write alone parses
#   agent-restart-hostile  kill -9 and restart veer-agent while hostile-weights is present
# A hostile file comes with a new routes.yaml (the probe): a rejected dir bumps the
# datapath's rejected counter and keeps the old digest; an accepted one makes the probe's
# digest live. deep, big and weights must be rejected within REJECT_BOUND_MS; the symlink
# loop may be rejected or skipped, within the same bound; the half-written file must never
# be applied (no apply, no digest change while it is mid-write, nor in the OBSERVE_MS
# after). The file then goes, and the probe must be live within APPLY_BOUND_S.
#
# Needs root. Traffic stays inside the world's namespaces; the machine's root cgroup is
# never touched. Cleans up the load, the agent, veer-proxy, the pins (private bpffs), the
# world and the run directory on exit, failure, Ctrl-C or SIGTERM.
#
# Environment: SOAK_TIME (600 s), SOAK_SEED (the clock), SOAK_KEEPALIVE (3 connections per
# target), SOAK_CLOSE (2 loops per target), SOAK_PAUSE_MS (10, between one worker's
# requests), SOAK_TIMEOUT_MS (2000 per request), SOAK_MAX_EVENTS (300000 failure lines kept
# for attribution), SOAK_ARTIFACTS (a directory to copy the logs into before cleanup).
set -euo pipefail
export LC_ALL=C # EPOCHREALTIME with a '.', sort and awk in one order

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=$ROOT/build/bin
CONFIGS=$ROOT/configs

SOAK_TIME=${SOAK_TIME:-600}
SEED=${SOAK_SEED:-$(date +%s)}
KEEPALIVE=${SOAK_KEEPALIVE:-3}
CLOSE=${SOAK_CLOSE:-2}
PAUSE_MS=${SOAK_PAUSE_MS:-10}
TIMEOUT_MS=${SOAK_TIMEOUT_MS:-2000}
MAX_EVENTS=${SOAK_MAX_EVENTS:-300000}
ARTIFACTS=${SOAK_ARTIFACTS:-}

# --- Verdict: what the README promises, as numbers ---------------------------------------
MAX_BROKEN_REQUESTS=0  # requests that may fail for a cause no fault excuses (below)
REJECT_BOUND_MS=3000   # a hostile file is rejected (or skipped) within this, on a busy node
APPLY_BOUND_S=10       # a good config (a flip, the probe after a hostile file) is live within
RECOVER_BOUND_S=10     # after a kill, veer-proxy (or the restarted agent) serves within
OBSERVE_MS=1500        # after a half-written file is whole, how long an apply is watched for
GRACE_MS=1000          # a failure is charged to a fault active in the preceding second
HOSTILE_WAIT_S=90      # how long a slow rejection is waited for, to report how slow it was
# The failures a fault excuses: "CAUSE PATH FAULTS" (PATH kernel or l7, FAULTS a|b). Every
# other failure breaks a promise: kernel-path services never fail; L7 services are never
# refused, and while veer-proxy is down they take the kernel path (header rules are not
# applied then, and requests in flight through the killed proxy are lost).
PROXY_KILLS="proxy-kill|agent-proxy-kill|hostile-deep-proxy-kill"
EXCUSED=(
  "reset l7 $PROXY_KILLS"
  "eof l7 $PROXY_KILLS"
  "wrong-version l7 $PROXY_KILLS"
)

SERVICE_KERNEL=10.96.0.20
SERVICE_KERNEL6=fd00:96::20
SERVICE_L7=10.96.0.28
PORT=9080
PROXY=10.244.1.1:15001

WORLD=soak$$
TMP=""
BPFFS=""
CONF=""
RUN=""
AGENT_LOG=""
MOUNTED=0
WORLD_UP=0
AGENT_PID=""
LOAD_PID=""
CLEANED=0

say() { printf '%s\n' "$*"; }
die() {
  say "soak: $*" >&2
  exit 1
}

# stop PID: SIGTERM, then SIGKILL if it is still there after 5 s (an agent busy in a parse
# reads no signal until it is done).
stop() {
  local i
  kill -TERM "$1" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  ((CLEANED)) && return
  CLEANED=1
  [[ -n $LOAD_PID ]] && stop "$LOAD_PID"
  [[ -n $AGENT_PID ]] && stop "$AGENT_PID"
  if [[ -n $ARTIFACTS && -n $TMP && -d $TMP ]]; then
    mkdir -p "$ARTIFACTS" &&
      cp -f "$TMP"/*.log "$TMP"/*.txt "$ARTIFACTS"/ 2>/dev/null &&
      say "soak: logs copied to $ARTIFACTS" >&2
  fi
  if ((MOUNTED)); then
    # Detaches the hooks from the world's cgroup and stops the veer-proxy of the pid file;
    # any other (retired, orphaned) veer-proxy lives in the world's cgroup and goes with it.
    "$BIN/veer-agent" --uninstall --bpffs "$BPFFS" --run-dir "$RUN" >/dev/null 2>&1
    umount "$BPFFS" 2>/dev/null || umount -l "$BPFFS" 2>/dev/null
  fi
  if ((WORLD_UP)); then
    "$BIN/veer-world" down --name "$WORLD" >/dev/null 2>&1
  fi
  [[ -n $TMP ]] && rm -rf "$TMP"
  return "$rc"
}
on_signal() {
  say "" >&2
  say "soak: interrupted; cleaning up" >&2
  exit 130
}
trap cleanup EXIT
trap on_signal INT TERM

[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, cgroups, BPF)"
for v in SOAK_TIME KEEPALIVE CLOSE PAUSE_MS TIMEOUT_MS MAX_EVENTS SEED; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
((SOAK_TIME >= 30)) || die "SOAK_TIME must be at least 30 seconds"
for b in veer-agent veer-proxy veerctl veer-world veer-testsrv veer-soak-load; do
  [[ -x $BIN/$b ]] || die "$BIN/$b missing: run 'make all' (or 'make soak')"
done
bash "$ROOT/scripts/install-deps.sh" jq

# --- small tools ---------------------------------------------------------------------------
# Random numbers come from bash's RANDOM seeded once, and only in this shell (never in a
# $(...) subshell), so SOAK_SEED replays the same choices in the same order.
RANDOM=$SEED
R=0
rand() { R=$((RANDOM % $1)); } # 0 .. $1-1

NOW=0
now_ms() {
  local t=$EPOCHREALTIME
  NOW=$((${t%.*} * 1000 + 10#${t#*.} / 1000))
}

# LIVE_APPLIED LIVE_REJECTED LIVE_DIGEST LIVE_READY from the pinned maps.
LIVE_APPLIED=0
LIVE_REJECTED=0
LIVE_DIGEST=""
LIVE_READY=""
live() {
  local line
  line=$("$BIN/veerctl" --bpffs "$BPFFS" status --json 2>/dev/null |
    jq -r '"\(.applied) \(.rejected) \(.digest) \(.proxy.ready)"' 2>/dev/null) || line=""
  if [[ -z $line ]]; then
    return 1
  fi
  read -r LIVE_APPLIED LIVE_REJECTED LIVE_DIGEST LIVE_READY <<<"$line"
}

# The digest the config dir compiles to (what `veerctl wait` waits for), from a copy: the
# live dir may hold a hostile file.
digest_of() {
  local d
  d=$("$BIN/veerctl" validate "$1" 2>/dev/null | sed -n 's/.*(digest \([0-9a-f]*\)).*/\1/p' |
    tail -n 1)
  [[ -n $d ]] && printf '%16s\n' "$d" | tr ' ' 0 # status --json prints it 0-padded
}

proxy_pid() {
  local pid
  pid=$(cat "$RUN/veer-proxy.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */veer-proxy ]] &&
    echo "$pid"
}

start_agent() {
  "$BIN/veer-agent" --config-dir "$CONF" --cgroup "$CGROUP" --bpffs "$BPFFS" --run-dir "$RUN" \
    --metrics-listen off \
    --proxy-listen "$PROXY" --proxy-netns "$NODE_NETNS" >>"$AGENT_LOG" 2>&1 &
  AGENT_PID=$!
}

kill_agent() {
  kill -KILL "$AGENT_PID" 2>/dev/null || true
  wait "$AGENT_PID" 2>/dev/null || true
  AGENT_PID=""
}

# veerctl wait on the config dir: true once maps and veer-proxy run it.
wait_live() {
  "$BIN/veerctl" --bpffs "$BPFFS" wait "$CONF" --timeout "$1" >/dev/null 2>&1
}

put() { # put NAME CONTENT: replace a config file atomically (a reader sees old or new)
  printf '%s' "$2" >"$CONF/.$1.tmp"
  mv -f "$CONF/.$1.tmp" "$CONF/$1"
}

# routes.yaml with fresh weights: reviews v1/v2/v3 (kernel path), reviews-l7 v1/v2 behind
# its header rule (L7). Sets WEIGHTS to a short description.
WEIGHTS=""
ROUTES=""
new_routes() {
  local a b c l
  rand 101
  a=$R
  rand $((101 - a))
  b=$R
  c=$((100 - a - b))
  rand 101
  l=$R
  WEIGHTS="kernel $a/$b/$c, l7 $l/$((100 - l))"
  ROUTES="# Written by tests/soak/soak.sh (a weight flip).
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: $a}
    - {destination: {host: reviews, subset: v2}, weight: $b}
    - {destination: {host: reviews, subset: v3}, weight: $c}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-l7, namespace: default}
spec:
  hosts: [reviews-l7]
  http:
  - match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews-l7, subset: v3}
  - route:
    - {destination: {host: reviews-l7, subset: v1}, weight: $l}
    - {destination: {host: reviews-l7, subset: v2}, weight: $((100 - l))}
"
}

# --- the record: fault windows and episode checks -----------------------------------------
FAULTS=""  # "START_MS END_MS NAME" per episode
CHECKS=""  # "NAME ok|FAIL MS DETAIL" per episode
FAULT=""
FAULT_START=0
EPISODE_FAILS=0
begin_fault() {
  FAULT=$1
  now_ms
  FAULT_START=$NOW
}
end_fault() { # end_fault ok|FAIL MS DETAIL...
  local verdict=$1 ms=$2
  shift 2
  now_ms
  echo "$FAULT_START $NOW $FAULT" >>"$FAULTS"
  echo "$FAULT $verdict $ms $*" >>"$CHECKS"
  if [[ $verdict != ok ]]; then
    EPISODE_FAILS=$((EPISODE_FAILS + 1))
    say "   $(date -u +%T) $FAULT: FAIL: $*"
  else
    say "   $(date -u +%T) $FAULT: $*"
  fi
}

# Milliseconds since FAULT_START (or since $1).
ELAPSED=0
elapsed() {
  now_ms
  ELAPSED=$((NOW - ${1:-$FAULT_START}))
}

# Polls until a veer-proxy other than $1 runs, for at most $2 s. Prints its pid.
wait_new_proxy() {
  local old=$1 until pid
  now_ms
  until=$((NOW + $2 * 1000))
  while :; do
    pid=$(proxy_pid) && [[ $pid != "$old" ]] && { echo "$pid"; return 0; }
    now_ms
    ((NOW < until)) || return 1
    sleep 0.02
  done
}

# Polls until the maps say veer-proxy is ready, for at most $1 s. After a new pid is seen,
# "ready" is the new proxy's: the agent clears it when the old one exits.
wait_ready() {
  local until
  now_ms
  until=$((NOW + $1 * 1000))
  while :; do
    live && [[ $LIVE_READY == true ]] && return 0
    now_ms
    ((NOW < until)) || return 1
    sleep 0.02
  done
}

# --- fault episodes ---------------------------------------------------------------------------
episode_flip() {
  begin_fault flip
  new_routes
  put routes.yaml "$ROUTES"
  if wait_live "$APPLY_BOUND_S"; then
    elapsed
    end_fault ok "$ELAPSED" "weights $WEIGHTS live in $ELAPSED ms"
  else
    elapsed
    end_fault FAIL "$ELAPSED" "weights $WEIGHTS not live within $APPLY_BOUND_S s"
  fi
}

episode_proxy_kill() {
  local old new
  begin_fault proxy-kill
  if ! old=$(proxy_pid); then
    end_fault FAIL 0 "no veer-proxy running before the kill"
    return
  fi
  kill -KILL "$old" 2>/dev/null || true
  if new=$(wait_new_proxy "$old" "$RECOVER_BOUND_S") && wait_live "$RECOVER_BOUND_S"; then
    elapsed
    if ((ELAPSED <= RECOVER_BOUND_S * 1000)); then
      end_fault ok "$ELAPSED" "veer-proxy $old killed; $new serving in $ELAPSED ms"
    else
      end_fault FAIL "$ELAPSED" "veer-proxy $old killed; $new serving only after $ELAPSED ms"
    fi
  else
    elapsed
    end_fault FAIL "$ELAPSED" "veer-proxy $old killed; no veer-proxy serving within $RECOVER_BOUND_S s"
  fi
}

# episode_agent_kill NAME KILL_PROXY(0|1)
episode_agent_kill() {
  local name=$1 kill_proxy=$2 down old="" restarted what
  begin_fault "$name"
  rand 2501
  down=$((500 + R))
  old=$(proxy_pid) || old=""
  kill_agent
  what="veer-agent killed"
  if ((kill_proxy)); then
    if [[ -n $old ]]; then
      kill -KILL "$old" 2>/dev/null || true
      what="$what, then veer-proxy $old"
    else
      what="$what (no veer-proxy to kill)"
    fi
  fi
  # The fault itself: how long the node runs without an agent (not a readiness wait).
  sleep "$((down / 1000)).$(printf '%03d' $((down % 1000)))"
  now_ms
  restarted=$NOW
  start_agent
  # A new agent always starts its own veer-proxy (and retires one it adopted): a new pid
  # shows it came up and published, where the pinned maps alone would look live anyway.
  if wait_new_proxy "$old" "$RECOVER_BOUND_S" >/dev/null && wait_live "$RECOVER_BOUND_S"; then
    elapsed "$restarted"
    end_fault ok "$ELAPSED" "$what; down $down ms; serving $ELAPSED ms after the restart"
  else
    elapsed "$restarted"
    end_fault FAIL "$ELAPSED" "$what; down $down ms; not serving within $RECOVER_BOUND_S s of the restart"
  fi
}

# The hostile files. Each writes $CONF/$HOSTILE_PATH (a file or a directory) and sets
# HOSTILE_WHAT; hostile-big and -deep are made outside the dir and moved in whole: their
# hostility is their content, not a partial write.
HOSTILE_PATH=""
HOSTILE_WHAT=""
make_hostile() {
  case $1 in
  deep)
    HOSTILE_PATH=soak-deep.yaml
    HOSTILE_WHAT="ConfigMap nested 20000 deep"
    awk 'BEGIN {
      printf "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: soak-deep, namespace: default}\ndata:\n  deep: "
      for (i = 0; i < 20000; i++) printf "["
      for (i = 0; i < 20000; i++) printf "]"
      printf "\n" }' >"$TMP/$HOSTILE_PATH"
    mv -f "$TMP/$HOSTILE_PATH" "$CONF/$HOSTILE_PATH"
    ;;
  big)
    HOSTILE_PATH=soak-big.yaml
    HOSTILE_WHAT="5 MB ConfigMap"
    awk 'BEGIN {
      printf "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: soak-big, namespace: default}\ndata: {"
      n = 0
      for (i = 0; n < 5 * 1024 * 1024; i++) { s = sprintf("k%d: v%d, ", i, i); printf "%s", s; n += length(s) }
      printf "end: x}\n" }' >"$TMP/$HOSTILE_PATH"
    mv -f "$TMP/$HOSTILE_PATH" "$CONF/$HOSTILE_PATH"
    ;;
  weights)
    HOSTILE_PATH=soak-bad-weights.yaml
    HOSTILE_WHAT="weights summing to 90"
    put "$HOSTILE_PATH" "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - route:
    - {destination: {host: ratings, subset: v1}, weight: 60}
    - {destination: {host: ratings, subset: v2}, weight: 30}
"
    ;;
  symloop)
    HOSTILE_PATH=soak-loop
    HOSTILE_WHAT="soak-loop/up -> .. (a directory cycle)"
    mkdir "$TMP/soak-loop"
    ln -s .. "$TMP/soak-loop/up"
    mv "$TMP/soak-loop" "$CONF/soak-loop"
    ;;
  esac
}

# episode_hostile NAME KIND MUST_REJECT(0|1) KILL_PROXY(0|1)
# KILL_PROXY: veer-proxy is also killed KILL_AFTER_MS after the file lands, while the agent
# is (today) busy parsing it; it must still be back within RECOVER_BOUND_S.
KILL_AFTER_MS=300
episode_hostile() {
  local kind=$2 must=$3 kill_proxy=$4 before_d before_r probe_dir probe verdict detail ms
  local old="" killed_at=0 new
  begin_fault "$1"
  if ((kill_proxy)) && ! old=$(proxy_pid); then
    end_fault FAIL 0 "no veer-proxy running before the kill"
    return
  fi
  if ! live; then
    end_fault FAIL 0 "cannot read the live state"
    return
  fi
  before_d=$LIVE_DIGEST
  before_r=$LIVE_REJECTED
  # The probe: new weights, whose digest shows whether the dir with the hostile file in it
  # was accepted. Compiled from a clean copy, with the hostile file left out.
  probe_dir=$TMP/probe
  rm -rf "$probe_dir"
  cp -r "$CONF" "$probe_dir"
  probe=$before_d
  while [[ $probe == "$before_d" ]]; do # weights that happen to equal the live ones prove nothing
    new_routes
    printf '%s' "$ROUTES" >"$probe_dir/routes.yaml"
    probe=$(digest_of "$probe_dir") || { end_fault FAIL 0 "the probe config is invalid"; return; }
  done
  make_hostile "$kind"
  put routes.yaml "$ROUTES"
  verdict=""
  while :; do
    elapsed
    ms=$ELAPSED
    if ((kill_proxy && !killed_at && ms >= KILL_AFTER_MS)); then
      kill -KILL "$old" 2>/dev/null || true
      killed_at=$NOW
    fi
    if live; then
      if ((LIVE_REJECTED > before_r)) && [[ $LIVE_DIGEST == "$before_d" ]]; then
        verdict=rejected
        break
      fi
      if [[ $LIVE_DIGEST == "$probe" ]]; then
        verdict=accepted
        break
      fi
      if [[ $LIVE_DIGEST != "$before_d" ]]; then
        verdict="changed to $LIVE_DIGEST"
        break
      fi
    fi
    ((ms < HOSTILE_WAIT_S * 1000)) || break
    sleep 0.02
  done
  detail="$HOSTILE_WHAT:"
  local ok=1
  case $verdict in
  rejected)
    detail="$detail rejected in $ms ms"
    ((ms <= REJECT_BOUND_MS)) || { ok=0; detail="$detail (bound $REJECT_BOUND_MS ms)"; }
    ;;
  accepted)
    detail="$detail accepted: the dir with it in went live in $ms ms"
    if ((must)); then
      ok=0
    elif ((ms > REJECT_BOUND_MS)); then
      ok=0
      detail="$detail (bound $REJECT_BOUND_MS ms)"
    fi
    ;;
  "")
    ok=0
    detail="$detail neither rejected nor applied within $HOSTILE_WAIT_S s (the agent is stuck)"
    ;;
  *)
    ok=0
    detail="$detail live digest $verdict, neither the last good nor the probe's"
    ;;
  esac
  if ((kill_proxy)); then
    if ((!killed_at)); then # judged before the kill was due: kill it now
      kill -KILL "$old" 2>/dev/null || true
      now_ms
      killed_at=$NOW
    fi
    if new=$(wait_new_proxy "$old" "$HOSTILE_WAIT_S") && wait_ready "$HOSTILE_WAIT_S"; then
      elapsed "$killed_at"
      detail="$detail; veer-proxy $old killed $((killed_at - FAULT_START)) ms in, $new serving $ELAPSED ms after"
      if ((ELAPSED > RECOVER_BOUND_S * 1000)); then
        ok=0
        detail="$detail (bound $RECOVER_BOUND_S s)"
      fi
    else
      ok=0
      detail="$detail; veer-proxy $old killed, none serving within $HOSTILE_WAIT_S s"
    fi
  fi
  # Let traffic run with it there a while (1-4 s), then take it away: the probe goes live.
  rand 3001
  sleep "$((1 + R / 1000)).$(printf '%03d' $((R % 1000)))"
  if [[ $verdict == rejected ]] && live && [[ $LIVE_DIGEST != "$before_d" ]]; then
    ok=0
    detail="$detail; then the live digest changed to $LIVE_DIGEST while it was there"
  fi
  rm -rf "${CONF:?}/$HOSTILE_PATH"
  local removed
  now_ms
  removed=$NOW
  if wait_live "$APPLY_BOUND_S"; then
    elapsed "$removed"
    detail="$detail; removed, probe live in $ELAPSED ms"
  else
    ok=0
    detail="$detail; removed, probe not live within $APPLY_BOUND_S s"
  fi
  end_fault "$( ((ok)) && echo ok || echo FAIL)" "$ms" "$detail"
}

# The inventory rewritten in place: truncated to before a reviews pod's document (what
# parses alone: that version's subset empties), then, 300 ms later, the rest appended.
episode_halfwrite() {
  local inv=$CONF/inventory.yaml pods=(reviews-v1 reviews-v2 reviews-v3) pod cut before_a
  local before_d seen="" until ms part2_at
  begin_fault hostile-halfwrite
  if ! live; then
    end_fault FAIL 0 "cannot read the live state"
    return
  fi
  before_a=$LIVE_APPLIED
  before_d=$LIVE_DIGEST
  rand 3
  pod=${pods[$R]}
  # The '---' line that opens the pod's document.
  cut=$(awk -v pod="$pod" '/^---/ { sep = NR } $0 ~ "^  name: " pod "$" { print sep; exit }' \
    "$TMP/inventory.yaml")
  if [[ -z $cut ]]; then
    end_fault FAIL 0 "no document for $pod in the inventory"
    return
  fi
  head -n $((cut - 1)) "$TMP/inventory.yaml" >"$inv" # open(O_TRUNC), write, close
  now_ms
  part2_at=$((NOW + 300))
  until=$((part2_at + OBSERVE_MS))
  while :; do
    now_ms
    if [[ -n $part2_at ]] && ((NOW >= part2_at)); then
      tail -n +"$cut" "$TMP/inventory.yaml" >>"$inv" # the second write: the file is whole
      part2_at=""
    fi
    ((NOW < until)) || break
    if live && [[ -z $seen ]] && { ((LIVE_APPLIED != before_a)) || [[ $LIVE_DIGEST != "$before_d" ]]; }; then
      elapsed
      seen="applied after $ELAPSED ms (digest $LIVE_DIGEST, $((LIVE_APPLIED - before_a)) apply)"
    fi
    sleep 0.02
  done
  elapsed
  ms=$ELAPSED
  if live && [[ -z $seen ]] && { ((LIVE_APPLIED != before_a)) || [[ $LIVE_DIGEST != "$before_d" ]]; }; then
    seen="applied (digest $LIVE_DIGEST, $((LIVE_APPLIED - before_a)) apply)"
  fi
  if [[ -n $seen ]]; then
    wait_live "$APPLY_BOUND_S" || true
    end_fault FAIL "$ms" "inventory cut before $pod, then whole 300 ms later: the half-written file was $seen"
  elif wait_live "$APPLY_BOUND_S"; then
    end_fault ok "$ms" "inventory cut before $pod, then whole 300 ms later: never applied half-written"
  else
    end_fault FAIL "$ms" "inventory cut before $pod: the whole file again is not live within $APPLY_BOUND_S s"
  fi
}

episode_agent_restart_hostile() {
  local before_d before_r restarted ok=1 detail
  begin_fault agent-restart-hostile
  if ! live; then
    end_fault FAIL 0 "cannot read the live state"
    return
  fi
  before_d=$LIVE_DIGEST
  before_r=$LIVE_REJECTED
  kill_agent # first: the running agent must not be the one that sees the file
  make_hostile weights
  now_ms
  restarted=$NOW
  start_agent
  while :; do
    elapsed "$restarted"
    if live && { ((LIVE_REJECTED > before_r)) || [[ $LIVE_DIGEST != "$before_d" ]]; }; then
      break
    fi
    ((ELAPSED < RECOVER_BOUND_S * 1000)) || break
    sleep 0.02
  done
  if ((LIVE_REJECTED > before_r)) && [[ $LIVE_DIGEST == "$before_d" ]]; then
    detail="restarted with $HOSTILE_WHAT present: rejected in $ELAPSED ms, the pinned config kept"
  elif [[ $LIVE_DIGEST != "$before_d" ]]; then
    ok=0
    detail="restarted with $HOSTILE_WHAT present: the live digest changed to $LIVE_DIGEST"
  else
    ok=0
    detail="restarted with $HOSTILE_WHAT present: no rejection within $RECOVER_BOUND_S s"
  fi
  rm -f "$CONF/$HOSTILE_PATH"
  if wait_live "$RECOVER_BOUND_S"; then
    elapsed "$restarted"
    detail="$detail; removed, serving $ELAPSED ms after the restart"
  else
    ok=0
    detail="$detail; removed, not serving within $RECOVER_BOUND_S s"
  fi
  end_fault "$( ((ok)) && echo ok || echo FAIL)" "$ELAPSED" "$detail"
}

run_episode() {
  case $1 in
  flip) episode_flip ;;
  proxy-kill) episode_proxy_kill ;;
  agent-kill) episode_agent_kill agent-kill 0 ;;
  agent-proxy-kill) episode_agent_kill agent-proxy-kill 1 ;;
  hostile-deep) episode_hostile "$1" deep 1 0 ;;
  hostile-deep-proxy-kill) episode_hostile "$1" deep 1 1 ;;
  hostile-big) episode_hostile "$1" big 1 0 ;;
  hostile-weights) episode_hostile "$1" weights 1 0 ;;
  hostile-symloop) episode_hostile "$1" symloop 0 0 ;;
  hostile-halfwrite) episode_halfwrite ;;
  agent-restart-hostile) episode_agent_restart_hostile ;;
  esac
}

KINDS=(flip proxy-kill agent-kill agent-proxy-kill hostile-deep hostile-deep-proxy-kill
  hostile-big hostile-weights hostile-symloop hostile-halfwrite agent-restart-hostile)
DECK=()
next_kind() { # sets KIND: the next of a shuffled deck of every kind, reshuffled when empty
  local i j t
  if ((${#DECK[@]} == 0)); then
    DECK=("${KINDS[@]}")
    for ((i = ${#DECK[@]} - 1; i > 0; i--)); do
      rand $((i + 1))
      j=$R
      t=${DECK[i]}
      DECK[i]=${DECK[j]}
      DECK[j]=$t
    done
  fi
  KIND=${DECK[0]}
  DECK=("${DECK[@]:1}")
}

# --- setup --------------------------------------------------------------------------------------
TMP=$(mktemp -d /run/veer-soak.XXXXXX)
BPFFS=$TMP/bpffs
CONF=$TMP/config
RUN=$TMP/run
AGENT_LOG=$TMP/agent.log
FAULTS=$TMP/faults.txt
CHECKS=$TMP/checks.txt
EVENTS=$TMP/events.txt
: >"$FAULTS"
: >"$CHECKS"
mkdir -p "$BPFFS" "$CONF"
mount -t bpf bpf "$BPFFS"
MOUNTED=1

say "== veer soak: $SOAK_TIME s, seed $SEED (SOAK_SEED=$SEED replays the fault sequence)"
WORLD_UP=1 # before `up`: a half-built world is still torn down by `down`
"$BIN/veer-world" up --name "$WORLD" --inventory "$CONFIGS/bookinfo/inventory.yaml" --detach \
  >"$TMP/world-up.log" 2>&1 || { cat "$TMP/world-up.log" >&2; die "veer-world up failed"; }
CGROUP=$("$BIN/veer-world" cgroup --name "$WORLD")
NODE_NETNS=$("$BIN/veer-world" node-netns --name "$WORLD")

cp "$CONFIGS/bookinfo/inventory.yaml" "$TMP/inventory.yaml" # the pristine copy halfwrite cuts
cp "$CONFIGS/bookinfo/inventory.yaml" "$CONF/inventory.yaml"
cp "$CONFIGS/000-asm-bookinfo/destination-rules.yaml" "$CONF/destination-rules.yaml"
put soak-services.yaml "# Written by tests/soak/soak.sh: the reviews pods as an L7 service.
apiVersion: v1
kind: Service
metadata: {name: reviews-l7, namespace: default}
spec:
  clusterIP: $SERVICE_L7
  ports: [{name: http, port: $PORT, protocol: TCP, targetPort: http}]
  selector: {app: reviews}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-l7, namespace: default}
spec:
  host: reviews-l7
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
"
new_routes
put routes.yaml "$ROUTES"
"$BIN/veerctl" validate "$CONF" >"$TMP/validate.log" 2>&1 ||
  { cat "$TMP/validate.log" >&2; die "the soak's own config is invalid"; }

start_agent
say "   world $WORLD (cgroup $CGROUP), veer-agent pid $AGENT_PID, veer-proxy on $PROXY"
wait_live 60 || { tail -n 20 "$AGENT_LOG" >&2; die "the first config did not go live within 60 s"; }
say "   first config live: weights $WEIGHTS"

"$BIN/veer-world" exec --name "$WORLD" client -- "$BIN/veer-soak-load" \
  --target "kernel,$SERVICE_KERNEL:$PORT,*" \
  --target "kernel6,[$SERVICE_KERNEL6]:$PORT,*" \
  --target "l7,$SERVICE_L7:$PORT,v1+v2" \
  --target "l7-jason,$SERVICE_L7:$PORT,v3,end-user=jason" \
  --keepalive "$KEEPALIVE" --close "$CLOSE" --pause-ms "$PAUSE_MS" --timeout-ms "$TIMEOUT_MS" \
  --duration "$SOAK_TIME" --events "$EVENTS" --max-events "$MAX_EVENTS" --progress 30 \
  >"$TMP/load.txt" 2>"$TMP/load.log" &
LOAD_PID=$!
now_ms
LOAD_START=$NOW
say "   load: 4 targets x ($KEEPALIVE keep-alive + $CLOSE close) workers, $PAUSE_MS ms apart"

# --- the fault loop -----------------------------------------------------------------------------
# Episodes start until 5 s before the load ends, so its last seconds show the node recovered.
say "== faults"
LAST_END=$((LOAD_START + (SOAK_TIME - 5) * 1000))
while :; do
  rand 2501
  gap=$((500 + R))
  now_ms
  ((NOW + gap < LAST_END)) || break
  sleep "$((gap / 1000)).$(printf '%03d' $((gap % 1000)))" # the random interval between faults
  kill -0 "$LOAD_PID" 2>/dev/null || { cat "$TMP/load.log" >&2; die "veer-soak-load exited early"; }
  if [[ -n $AGENT_PID ]] && ! kill -0 "$AGENT_PID" 2>/dev/null; then
    wait "$AGENT_PID" && st=0 || st=$?
    begin_fault agent-crash
    end_fault FAIL 0 "veer-agent pid $AGENT_PID exited by itself (status $st); restarted"
    start_agent
    wait_live "$RECOVER_BOUND_S" || true
  fi
  # Flips are the common case: one before half of the other episodes, besides their own turn.
  rand 2
  if ((R)); then
    episode_flip
  fi
  next_kind
  run_episode "$KIND"
done

say "== waiting for the load to finish"
wait "$LOAD_PID" || die "veer-soak-load failed: $(cat "$TMP/load.log")"
LOAD_PID=""

# --- report ---------------------------------------------------------------------------------------
say ""
say "== requests (veer-soak-load; retried = a reused keep-alive connection closed under a GET,"
say "   resent once on a new connection as HTTP clients do)"
grep -v '^VEER_SOAK_LOAD' "$TMP/load.txt" | sed 's/^/  /'
SUMMARY=$(grep '^VEER_SOAK_LOAD' "$TMP/load.txt") || die "no summary line from veer-soak-load"
say "  $SUMMARY"
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$SUMMARY"; }
SENT=$(field sent)
FAILED=$(field failed)
DROPPED=$(field events_dropped)

say ""
say "== failures by cause, path and the fault active in the preceding ${GRACE_MS} ms"
excused=$(IFS=';'; echo "${EXCUSED[*]}")
awk -v grace="$GRACE_MS" -v excused="$excused" -v faults="$FAULTS" -v out="$TMP/kept.txt" '
  function sortkeys(arr, keys,    k, n, i, j, t) {
    n = 0
    for (k in arr) keys[++n] = k
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (keys[j] < keys[i]) { t = keys[i]; keys[i] = keys[j]; keys[j] = t }
    return n
  }
  # The fault active at t or in the grace before it (the latest started), or 0.
  function at(t,    i, best) {
    best = 0
    for (i = 1; i <= n; i++) if (start[i] <= t && t <= end_[i] + grace && (best == 0 || start[i] > start[best])) best = i
    return best
  }
  FILENAME == faults { n++; start[n] = $1; end_[n] = $2; name[n] = $3; next }
  {
    t = $1; path = ($2 ~ /^l7/) ? "l7" : "kernel"; cause = $4
    a = at(t)
    count[cause " " path " " (a ? name[a] : "none")]++
    # Answers that keep their keep-alive connection: which fault was on when it opened.
    if ($3 == "keepalive" && (cause == "wrong-version" || cause ~ /^http-/)) {
      o = at($7)
      key = cause " " path " " (o ? name[o] : "none")
      kept[key]++
      if (!((key, $6) in seen)) { seen[key, $6] = 1; conns[key]++ }
      late = o ? (t - end_[o]) / 1000 : -1
      if (!(key in last) || late > last[key]) last[key] = late
    }
  }
  END {
    m = split(excused, lines, ";")
    for (i = 1; i <= m; i++) {
      split(lines[i], f, " ")
      k = split(f[3], fs, "|")
      for (j = 1; j <= k; j++) ok[f[1] " " f[2] " " fs[j]] = 1
    }
    printf "  %-18s %-7s %-24s %9s  %s\n", "cause", "path", "fault", "requests", "verdict"
    broken = 0
    nk = sortkeys(count, keys)
    for (i = 1; i <= nk; i++) {
      split(keys[i], f, " ")
      v = (keys[i] in ok) ? "excused" : "BROKEN"
      if (v == "BROKEN") broken += count[keys[i]]
      printf "  %-18s %-7s %-24s %9d  %s\n", f[1], f[2], f[3], count[keys[i]], v
    }
    if (nk == 0) printf "  (no failed request)\n"
    printf "BROKEN %d\n", broken
    nk = sortkeys(kept, kkeys)
    for (i = 1; i <= nk; i++) {
      split(kkeys[i], f, " ")
      printf "  %-18s %-7s %-24s %9d %6d %9s\n", f[1], f[2], f[3], kept[kkeys[i]], conns[kkeys[i]],
        last[kkeys[i]] < 0 ? "-" : sprintf("%.1f", last[kkeys[i]]) > out
    }
  }' "$FAULTS" "$EVENTS" >"$TMP/attribution.txt"
grep -v '^BROKEN ' "$TMP/attribution.txt"
if [[ -s $TMP/kept.txt ]]; then
  say ""
  say "== of those, answers on keep-alive connections (which stay open), by the fault during"
  say "   which their connection opened; last: seconds after that fault ended"
  printf '  %-18s %-7s %-24s %9s %6s %9s\n' cause path "connection opened in" requests conns last
  cat "$TMP/kept.txt"
fi
BROKEN=$(sed -n 's/^BROKEN //p' "$TMP/attribution.txt")
if ((DROPPED > 0)); then
  say "  + $DROPPED failed requests past SOAK_MAX_EVENTS=$MAX_EVENTS lines: not attributed,"
  say "    counted as BROKEN"
  BROKEN=$((BROKEN + DROPPED))
fi

say ""
say "== fault episodes (ms: to recover, to reject, or until judged)"
printf '  %-24s %5s %5s %9s\n' episode runs FAIL "max ms"
awk '{ n[$1]++; if ($2 != "ok") bad[$1]++; if ($3 > max[$1]) max[$1] = $3 }
  END { for (k in n) printf "  %-24s %5d %5d %9d\n", k, n[k], bad[k], max[k] }' "$CHECKS" | sort
if ((EPISODE_FAILS > 0)); then
  say "  failed episodes:"
  grep -v '^[^ ]* ok ' "$CHECKS" | sed 's/^/    /'
fi

say ""
status=0
say "== verdict (seed $SEED)"
say "   $SENT requests sent, $FAILED failed; $BROKEN failed for a cause no fault excuses (threshold $MAX_BROKEN_REQUESTS)"
say "   $EPISODE_FAILS fault episode(s) broke a promise (threshold 0)"
if ((BROKEN > MAX_BROKEN_REQUESTS || EPISODE_FAILS > 0)); then
  say "   SOAK FAILED"
  status=1
else
  say "   soak passed"
fi
exit "$status"
