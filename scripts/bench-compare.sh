#!/usr/bin/env bash
# Side-by-side DHCPv6 benchmark, one command, one run:
#   Kea 2.2 (memfile, multi-threaded), the xdhcp6 socket backend, the xdhcp6 XDP backend, a
#   reference responder on AF_XDP and an in-kernel reference responder (an XDP program answering
#   with XDP_TX: the generator ceiling), each driven by perfdhcp and by xdhcp6-bench (AF_XDP
#   transport), with the same pools, through a veth pair between two network namespaces. Every
#   server gets a --find-max search (perfdhcp: a doubling ladder refined by bisection), one
#   trial at the rate found with the per-CPU time split (user/sys/softirq from /proc/stat),
#   and the servers a sweep over the load levels Kea sustains (p99 at each). Writes the
#   "## Comparison with Kea" section of docs/benchmarks.md and docs/bench-compare.svg (rate vs
#   latency). Raw results stay in $OUT (default target/bench-compare).
#
# Usage (as root): scripts/bench-compare.sh [--quick] [--no-build] [--targets "kea xdhcp6-socket ..."]
# Knobs (environment): TRIAL_SECS (3), CLIENTS (1000000), MAX_LOSS (1, percent),
#   SERVER_CPU (1), GEN_CPU (0; a list with GEN_CORES > 1), GEN_CORES (1),
#   GEN_TRANSPORT (xdp | socket | auto), QUEUES (veth queues on both ends, default GEN_CORES),
#   LEVELS (sweep rates, default: derived from Kea's maximum), REFLECTOR_CORES (2) and
#   REFLECTOR_CPUS (0,1): generator workers and CPUs against the in-kernel reflector, which needs
#   no CPU of its own (perfdhcp gets the same CPUs there), XDP_RX_RING (8192: the XDP
#   backend's RX and fill rings) and XDP_FRAMES (16384: its UMEM frames), XDP_IDLE_SPIN
#   (10000: µs an idle XDP worker spins before it sleeps; the server's CPU is its own here),
#   KEA_MT (true: Kea's multi-threading; false: single-threaded), KEA_THREADS (2: its thread
#   pool), KEA_QUEUE (2048: its packet queue), the best of each in A/B runs (docs/benchmarks.md),
#   GEN_BUSY_WAIT (0; 1: xdhcp6-bench --busy-wait. Not the default: on veth the generator's CPU
#   also runs the softirq work of its own packets, which a spinning generator delays by
#   milliseconds), XDHCP6_PREALLOC (CLIENTS * 1.5: leases the xdhcp6 servers preallocate their
#   lease file and indexes for; 0: grown on demand), CARGO_TARGET_DIR, OUT.
# Traffic never leaves the two namespaces this script creates.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
OUT=${OUT:-$TARGET_DIR/bench-compare}
TRIAL_SECS=${TRIAL_SECS:-3}
CLIENTS=${CLIENTS:-1000000}
MAX_LOSS=${MAX_LOSS:-1}
SERVER_CPU=${SERVER_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
GEN_CORES=${GEN_CORES:-1}
GEN_TRANSPORT=${GEN_TRANSPORT:-xdp}
QUEUES=${QUEUES:-$GEN_CORES}
LEVELS=${LEVELS:-}
# Kea first: its maximum sets the sweep levels every other server is measured at.
TARGETS="kea xdhcp6-socket xdhcp6-xdp responder reflector"
# Bisection steps refining perfdhcp's best rate between its last passing and first failing
# ladder rungs.
PERF_BISECT=${PERF_BISECT:-4}
REFLECTOR_CORES=${REFLECTOR_CORES:-2}
REFLECTOR_CPUS=${REFLECTOR_CPUS:-0,1}
XDP_RX_RING=${XDP_RX_RING:-8192}
XDP_FRAMES=${XDP_FRAMES:-16384}
XDP_IDLE_SPIN=${XDP_IDLE_SPIN:-10000}
GEN_BUSY_WAIT=${GEN_BUSY_WAIT:-0}
GEN_WAIT=()
[[ $GEN_BUSY_WAIT == 1 ]] && GEN_WAIT=(--busy-wait)
BUILD=1

while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) TRIAL_SECS=1; CLIENTS=200000; shift ;;
    --no-build) BUILD=0; shift ;;
    --targets) TARGETS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^# Traffic never leaves/p' "$0"; exit 0 ;;
    *) echo "bench-compare: unknown argument $1" >&2; exit 2 ;;
  esac
done

# The xdhcp6 servers' lease file and indexes are sized at start for the generator's clients
# and half as many again (`preallocate_leases`: a server sized for its subscribers).
XDHCP6_PREALLOC=${XDHCP6_PREALLOC:-$((CLIENTS + CLIENTS / 2))}

NS_S=xbc-srv NS_C=xbc-cli DEV_S=xbc-s DEV_C=xbc-c
ADDR_S=2001:db8:ffff::2 ADDR_C=2001:db8:ffff::1
SUBNET=2001:db8:1::/64 PD_PREFIX=2001:db8:8000:: PD_LEN=36 PD_DLEN=60
GEN_POOLS=(--pool 2001:db8:1::/64 --pd-pool "$PD_PREFIX/$PD_LEN,$PD_DLEN")
WORK=$OUT/run
SERVER_PID=
SEED=1

log() { printf '[bench-compare] %s\n' "$*" >&2; }

# --- dependencies --------------------------------------------------------------------------
install_deps() {
  [[ $(id -u) -eq 0 ]] || { echo "bench-compare: needs root (namespaces, apt-get)" >&2; exit 1; }
  local need=()
  command -v ip >/dev/null || need+=(iproute2)
  command -v ethtool >/dev/null || need+=(ethtool)
  command -v python3 >/dev/null || need+=(python3)
  command -v kea-dhcp6 >/dev/null || need+=(kea-dhcp6-server)
  command -v perfdhcp >/dev/null || need+=(kea-admin)
  command -v taskset >/dev/null || need+=(util-linux)
  command -v ss >/dev/null || need+=(iproute2)
  if [[ ${#need[@]} -gt 0 ]]; then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    # The Debian package starts a system Kea; it must not sit on port 547 of the host.
    systemctl stop kea-dhcp6-server 2>/dev/null || true
  fi
}

build() {
  [[ $BUILD -eq 1 ]] || return 0
  log "building (release)"
  (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --bins --quiet)
}

# --- namespaces ----------------------------------------------------------------------------
ns_down() {
  ip netns del $NS_S 2>/dev/null || true
  ip netns del $NS_C 2>/dev/null || true
}

ns_up() {
  ns_down
  ip netns add $NS_S
  ip netns add $NS_C
  ip link add $DEV_S type veth peer name $DEV_C
  ip link set $DEV_S netns $NS_S
  ip link set $DEV_C netns $NS_C
  local ns dev addr
  for spec in "$NS_S $DEV_S $ADDR_S" "$NS_C $DEV_C $ADDR_C"; do
    read -r ns dev addr <<<"$spec"
    ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$dev.accept_dad=0"
    ip netns exec "$ns" ip link set lo up
    # One AF_XDP socket per queue on the generator; the server binds every queue. Replies of
    # the XDP backend leave on the queue the request came in on.
    if [[ $QUEUES -gt 1 ]]; then
      ip netns exec "$ns" ethtool -L "$dev" rx "$QUEUES" tx "$QUEUES"
    fi
    ip netns exec "$ns" ip link set "$dev" up
    ip netns exec "$ns" ip addr add "$addr/64" dev "$dev" nodad
    # veth offloads TX checksums; AF_XDP readers would see them incomplete (BRIEF §7).
    ip netns exec "$ns" ethtool -K "$dev" tx off >/dev/null
  done
  sleep 1
}

stop_server() {
  if [[ -n $SERVER_PID ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
}

cleanup() { stop_server; ns_down; }
trap cleanup EXIT

# Wait until something in the server namespace listens on UDP 547 (or the process dies).
wait_listening() {
  for _ in $(seq 100); do
    kill -0 "$SERVER_PID" 2>/dev/null || return 1
    ip netns exec $NS_S ss -uln | grep -q ':547 ' && { sleep 0.5; return 0; }
    sleep 0.1
  done
  return 1
}

# --- targets: each start_<target> starts a server in $NS_S or prints why it cannot ----------
# The reference responder (no DHCP server: it pairs messages and hands out leases from a hash
# map) behind the server's AF_XDP worker: the ceiling for comparing the two generators.
start_responder() {
  ip netns exec $NS_S taskset -c "$SERVER_CPU" "$BIN/xdhcp6-bench" respond \
    --xdp-iface $DEV_S --cpu "$SERVER_CPU" --pool 2001:db8:1::/64 \
    --pd-pool "$PD_PREFIX/$PD_LEN,$PD_DLEN" --max-clients $((CLIENTS + CLIENTS / 2)) \
    --duration 3600 >"$WORK/responder.log" 2>&1 &
  SERVER_PID=$!
  # Nothing listens on a UDP socket: wait for the program to attach.
  for _ in $(seq 50); do
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "responder: $(tail -n 2 "$WORK/responder.log")"; return 1; }
    ip netns exec $NS_S ip link show $DEV_S | grep -q 'xdp' && { sleep 0.5; return 0; }
    sleep 0.1
  done
  echo "responder: XDP program never attached"
  return 1
}

# The in-kernel reference responder: an XDP program on the server's veth answers Solicit and
# Request itself (XDP_TX). It has no process to pin: veth runs the receiving side's XDP in the
# sender's softirq, so its (small) cost lands on the generator's CPU, in the per-CPU split.
start_reflector() {
  ip netns exec $NS_S "$BIN/xdhcp6-bench" respond --xdp-iface $DEV_S --xdp-reflect \
    --pool 2001:db8:1::/64 --duration 3600 >"$WORK/reflector.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 50); do
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "reflector: $(tail -n 2 "$WORK/reflector.log")"; return 1; }
    grep -q 'reflector attached' "$WORK/reflector.log" && { sleep 0.5; return 0; }
    sleep 0.1
  done
  echo "reflector: XDP program never attached"
  return 1
}

start_kea() {
  cat >"$WORK/kea.json" <<JSON
{ "Dhcp6": {
  "interfaces-config": { "interfaces": [ "$DEV_S/$ADDR_S" ] },
  "multi-threading": { "enable-multi-threading": ${KEA_MT:-true}, "thread-pool-size": ${KEA_THREADS:-2},
                       "packet-queue-size": ${KEA_QUEUE:-2048} },
  "lease-database": { "type": "memfile", "persist": false, "lfc-interval": 0 },
  "server-id": { "type": "LL", "persist": false },
  "preferred-lifetime": 3000, "valid-lifetime": 4000, "renew-timer": 1000, "rebind-timer": 2000,
  "subnet6": [ {
    "id": 1, "subnet": "$SUBNET", "interface": "$DEV_S", "rapid-commit": true,
    "pools": [ { "pool": "2001:db8:1::/80" } ],
    "pd-pools": [ { "prefix": "$PD_PREFIX", "prefix-len": $PD_LEN, "delegated-len": $PD_DLEN } ]
  } ],
  "loggers": [ { "name": "kea-dhcp6", "severity": "WARN",
                 "output_options": [ { "output": "$WORK/kea.log" } ] } ]
} }
JSON
  ip netns exec $NS_S taskset -c "$SERVER_CPU" kea-dhcp6 -c "$WORK/kea.json" \
    >"$WORK/kea.out" 2>&1 &
  SERVER_PID=$!
  wait_listening
}

# The xdhcp6 server, socket or XDP backend.
start_xdhcp6() {
  local backend=$1
  if ! "$BIN/xdhcp6" serve --help >/dev/null 2>&1; then
    echo "this xdhcp6 binary has no 'serve' command yet"
    return 1
  fi
  local dir=$WORK/xdhcp6-$backend
  rm -rf "$dir"; mkdir -p "$dir"
  cat >"$dir/xdhcp6.toml" <<TOML
[server]
interfaces = ["$DEV_S"]
backend = "$backend"
workers = 1
duid_file = "$dir/duid"
lease_file = "$dir/leases"
control_socket = "$dir/control.sock"
preallocate_leases = $XDHCP6_PREALLOC

[[link]]
name = "bench"
subnet = "$SUBNET"
interface = "$DEV_S"
rapid_commit = true
preferred_lifetime = 3000
valid_lifetime = 4000
address_pools = [{ first = "2001:db8:1::1", last = "2001:db8:1::ffff:ffff:ffff" }]
prefix_pools = [{ prefix = "$PD_PREFIX/$PD_LEN", delegated_length = $PD_DLEN }]
TOML
  if [[ $backend == xdp ]]; then
    # Deeper RX and fill rings than the default 2048 (12 ms at 160 k requests/s): the
    # generator's catch-up bursts after a hiccup of either side overflow a 2048 ring.
    cat >>"$dir/xdhcp6.toml" <<TOML

[xdp]
frame_count = $XDP_FRAMES
fill_ring = $XDP_RX_RING
rx_ring = $XDP_RX_RING
idle_spin_usecs = $XDP_IDLE_SPIN
TOML
  fi
  : >"$dir/server.log"
  ip netns exec $NS_S taskset -c "$SERVER_CPU" "$BIN/xdhcp6" serve --config "$dir/xdhcp6.toml" \
    >"$dir/server.log" 2>&1 &
  SERVER_PID=$!
  local up=1
  if [[ $backend == xdp ]]; then
    # No UDP socket on 547 behind XDP: wait for the backend to say it serves.
    up=0
    for _ in $(seq 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      grep -q 'XDP backend serving' "$dir/server.log" && { up=1; sleep 0.5; break; }
      sleep 0.1
    done
  else
    wait_listening || up=0
  fi
  if [[ $up -eq 0 ]]; then
    echo "xdhcp6 serve (backend=$backend) did not come up: $(tail -n 2 "$dir/server.log" | tr '\n' ' ')"
    return 1
  fi
  # The XDP backend must say so; a silent fallback to sockets would mislabel the numbers.
  if [[ $backend == xdp ]] && grep -q 'socket backend serving' "$dir/server.log"; then
    echo "backend = \"xdp\" fell back to the socket backend: no AF_XDP data path in this build"
    return 1
  fi
}
start_xdhcp6-socket() { start_xdhcp6 socket; }
start_xdhcp6-xdp() { start_xdhcp6 xdp; }

# --- generators ----------------------------------------------------------------------------
# xdhcp6-bench, direct clients (multicast Solicit from the link-local address) like perfdhcp.
# $2: "find-max" (the trials give the rate/latency curve) or "sweep" (one trial per $LEVELS).
measure_gen() {
  local target=$1 what=$2 mode=()
  if [[ $what == sweep ]]; then
    mode=(--sweep "$LEVELS")
  else
    mode=(--find-max --start-rate 1000)
  fi
  SEED=$((SEED + 1))
  local out=$OUT/raw/$target-xdhcp6-bench.json
  [[ $what == sweep ]] && out=$OUT/raw/$target-xdhcp6-bench-sweep.json
  timeout 900 ip netns exec $NS_C "$BIN/xdhcp6-bench" -i $DEV_C "${GEN_POOLS[@]}" \
    --transport "$GEN_TRANSPORT" --cores "$GEN_CORES" --cpus "$GEN_CPU" "${GEN_WAIT[@]}" \
    --scenario sarr --clients "$CLIENTS" --seed "$SEED" "${mode[@]}" \
    --max-loss "$MAX_LOSS" --trial-secs "$TRIAL_SECS" --timeout-ms 1000 \
    --json --quiet >"$out" 2>"$WORK/$target-gen-$what.err" || {
      log "xdhcp6-bench ($what) against $target failed: $(tail -n 3 "$WORK/$target-gen-$what.err")"
      rm -f "$out"
      return 0
    }
  python3 - "$out" "$what" <<'PY' >&2
import json, sys
r = json.load(open(sys.argv[1])); p = r["result"]
if sys.argv[2] == "sweep":
    for t in r["trials"]:
        q = t["result"]
        print(f"[bench-compare]   sweep {t['target_rate']:>8.0f}/s: completed {q['completed_per_s']:.0f}/s "
              f"loss {q['loss_pct']:.2f} %  p50 {q['latency_us']['p50']} µs  p99 {q['latency_us']['p99']} µs")
else:
    print(f"[bench-compare]   xdhcp6-bench ({r['transport']}): max {r['max_rate']:.0f}/s  "
          f"p50 {p['latency_us']['p50']} µs  p99 {p['latency_us']['p99']} µs  invalid {p['invalid']}  "
          f"generator CPU {p['generator_cpu_pct']:.0f} %")
PY
}

# The sweep levels: every 1000/s (500/s at first) up to the best rate Kea sustained.
derive_levels() {
  [[ -n $LEVELS ]] && return 0
  LEVELS=$(python3 - "$OUT/raw/kea-xdhcp6-bench.json" <<'PY'
import json, sys
try:
    top = json.load(open(sys.argv[1]))["max_rate"] or 0
except Exception:
    top = 0
top = int(top // 100 * 100) if top >= 1000 else 3000
levels = [500] + list(range(1000, top + 1, 1000))
if top not in levels:
    levels.append(top)
print(",".join(str(l) for l in levels))
PY
)
  log "sweep levels (Kea sustains up to the last): $LEVELS"
}

# perfdhcp has no search; climb a rate ladder until loss passes the threshold or the achieved
# rate falls short of the target.
# One perfdhcp run at $2/s against $1; appends its verdict to $3 and succeeds if it passed.
perfdhcp_trial() {
  local target=$1 rate=$2 out=$3
  local txt=$WORK/$target-perfdhcp-$rate.txt
  timeout $((TRIAL_SECS + 30)) ip netns exec $NS_C taskset -c "$GEN_CPU" \
    perfdhcp -6 -l $DEV_C -r "$rate" -R "$CLIENTS" -p "$TRIAL_SECS" \
    >"$txt" 2>&1 || true
  local verdict
  verdict=$(python3 - "$txt" "$rate" "$MAX_LOSS" <<'PY'
import json, re, sys
txt, rate, max_loss = open(sys.argv[1]).read(), float(sys.argv[2]), float(sys.argv[3])
m = re.search(r"Rate: ([\d.]+)", txt)
sent = [int(x) for x in re.findall(r"sent packets: (\d+)", txt)]
recv = [int(x) for x in re.findall(r"received packets: (\d+)", txt)]
avg = [float(x) for x in re.findall(r"avg delay: ([\d.]+) ms", txt)]
if not m or len(sent) < 2:
    print(json.dumps({"target_rate": rate, "error": txt.strip().splitlines()[-1:] }))
    sys.exit(0)
achieved = float(m.group(1))
loss = 100.0 * (1 - recv[1] / sent[0]) if sent[0] else 100.0
passed = loss <= max_loss and achieved >= 0.95 * rate
print(json.dumps({"target_rate": rate, "achieved": achieved, "loss_pct": loss,
                  "avg_delay_us": sum(avg) * 1000 if avg else None, "passed": passed}))
PY
)
  echo "$verdict" >>"$out"
  grep -q '"passed": true' <<<"$verdict"
}

# perfdhcp has no search; climb a doubling rate ladder until loss passes the threshold or the
# achieved rate falls short of the target, then bisect between the last passing and the first
# failing rung ($PERF_BISECT steps), so its maximum is not understated by up to half.
measure_perfdhcp() {
  local target=$1 out=$OUT/raw/$target-perfdhcp.jsonl
  : >"$out"
  # XDP_TX into a veth delivers only to a peer that runs NAPI: xdhcp6-bench's own receive
  # program gives its side one; for perfdhcp (a socket), an XDP_PASS program does. Without it
  # the reflector's replies are dropped, or (GRO on) held back and delivered late in bursts.
  local pass_obj=
  if [[ $target == reflector ]]; then
    pass_obj=$(ls -t "$TARGET_DIR"/release/build/xdhcp6-*/out/xdp_pass_test.o 2>/dev/null | head -n 1)
    if [[ -n $pass_obj ]]; then
      ip netns exec $NS_C ip link set dev $DEV_C xdpdrv obj "$pass_obj" sec xdp
    fi
  fi
  local rate=1000 lo=0 hi=0
  while [[ $rate -le 2000000 ]]; do
    if perfdhcp_trial "$target" "$rate" "$out"; then
      lo=$rate
      rate=$((rate * 2))
    else
      hi=$rate
      break
    fi
  done
  if [[ $lo -gt 0 && $hi -gt 0 ]]; then
    for _ in $(seq "$PERF_BISECT"); do
      local mid=$(((lo + hi) / 2))
      [[ $((hi - lo)) -le $((lo / 20)) ]] && break
      if perfdhcp_trial "$target" "$mid" "$out"; then lo=$mid; else hi=$mid; fi
    done
  fi
  if [[ -n $pass_obj ]]; then ip netns exec $NS_C ip link set dev $DEV_C xdpdrv off; fi
  python3 - "$out" <<'PY' >&2
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ok = [r for r in rows if r.get("passed")]
best = max((r["achieved"] for r in ok), default=0)
bad = min((r["target_rate"] for r in rows if not r.get("passed")), default=0)
print(f"[bench-compare]   perfdhcp: max {best:.0f}/s (fails at {bad:.0f}/s; {len(rows)} runs)")
PY
}

# One xdhcp6-bench trial at the rate --find-max found for $1, with /proc/stat read at two
# moments of its steady load: where each CPU's time went at the ceiling (user, sys, softirq,
# idle).
measure_cpu() {
  local target=$1 found=$OUT/raw/$1-xdhcp6-bench.json out=$OUT/raw/$1-cpu.json
  [[ -f $found ]] || return 0
  local rate
  rate=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["max_rate"] or 0))' "$found")
  [[ $rate -gt 0 ]] || return 0
  SEED=$((SEED + 1))
  # The load runs TRIAL_SECS + 2 s; the CPU split covers TRIAL_SECS s from 1 s in: no start-up,
  # and no drain (the wait for the timeouts of lost exchanges would count as idle).
  local gen
  timeout 300 ip netns exec $NS_C "$BIN/xdhcp6-bench" -i $DEV_C "${GEN_POOLS[@]}" \
    --transport "$GEN_TRANSPORT" --cores "$GEN_CORES" --cpus "$GEN_CPU" "${GEN_WAIT[@]}" \
    --scenario sarr --clients "$CLIENTS" --seed "$SEED" --rate "$rate" \
    --duration "$(awk -v s="$TRIAL_SECS" 'BEGIN { print s + 2 }')" --timeout-ms 1000 \
    --json --quiet >"$WORK/cpu-trial.json" 2>"$WORK/$target-cpu.err" &
  gen=$!
  sleep 1
  grep -E '^cpu[0-9]' /proc/stat >"$WORK/stat.before"
  sleep "$TRIAL_SECS"
  grep -E '^cpu[0-9]' /proc/stat >"$WORK/stat.after"
  wait "$gen" || { rm -f "$out"; return 0; }
  python3 - "$WORK/stat.before" "$WORK/stat.after" "$WORK/cpu-trial.json" "$rate" "$out" <<'PY' >&2
import json, sys
def read(p): return {l.split()[0]: [int(x) for x in l.split()[1:]] for l in open(p)}
a, b = read(sys.argv[1]), read(sys.argv[2])
names = ["user", "nice", "sys", "idle", "iowait", "irq", "softirq", "steal"]
cpus = {}
for c in sorted(b):
    d = [y - x for x, y in zip(a[c], b[c])][:8]
    tot = sum(d) or 1
    cpus[c] = {n: round(100 * v / tot, 1) for n, v in zip(names, d)}
r = json.load(open(sys.argv[3]))["result"]
json.dump({"rate": float(sys.argv[4]), "result": r, "cpus": cpus}, open(sys.argv[5], "w"), indent=1)
line = "  ".join(f"{c}: user {v['user']:.0f} sys {v['sys']:.0f} softirq {v['softirq']:.0f} idle {v['idle']:.0f} %"
                 for c, v in cpus.items())
print(f"[bench-compare]   at {float(sys.argv[4]):.0f}/s: completed {r['completed_per_s']:.0f}/s "
      f"loss {r['loss_pct']:.2f} %  {line}")
PY
}

# --- main ----------------------------------------------------------------------------------
install_deps
build
mkdir -p "$OUT/raw" "$WORK"
rm -f "$OUT"/raw/*
ns_up
: >"$OUT/skipped.txt"
# What the header of the report states (the reflector target changes GEN_CORES / GEN_CPU).
BASE_GEN_CORES=$GEN_CORES BASE_GEN_CPU=$GEN_CPU
for target in $TARGETS; do
  log "target $target"
  if [[ $target == reflector && $REFLECTOR_CORES -ne $GEN_CORES ]]; then
    # The reflector runs in softirq on whichever CPU sends: the whole machine is the
    # generator's. One queue per generator worker on both ends.
    GEN_CORES=$REFLECTOR_CORES GEN_CPU=$REFLECTOR_CPUS
    for spec in "$NS_S $DEV_S" "$NS_C $DEV_C"; do
      read -r ns dev <<<"$spec"
      ip netns exec "$ns" ethtool -L "$dev" rx "$GEN_CORES" tx "$GEN_CORES"
    done
    sleep 1
    log "  generator: $GEN_CORES workers on CPUs $GEN_CPU (perfdhcp on the same CPUs)"
  fi
  # Not in $(...): start_* must set SERVER_PID in this shell. Reasons go to a file.
  if "start_$target" >"$WORK/why.txt"; then
    measure_perfdhcp "$target"
    stop_server
    # A fresh server for each generator run: each starts from an empty lease table.
    if "start_$target" >"$WORK/why.txt"; then
      measure_gen "$target" find-max
      stop_server
    fi
    # A fresh server again: the per-CPU split at the rate found.
    if "start_$target" >"$WORK/why.txt"; then
      measure_cpu "$target"
      stop_server
    fi
    [[ $target == kea ]] && derive_levels
    if [[ $target != responder && $target != reflector ]] && "start_$target" >"$WORK/why.txt"; then
      [[ -n $LEVELS ]] || derive_levels
      measure_gen "$target" sweep
    fi
  else
    log "  skipped: $(cat "$WORK/why.txt")"
    echo "$target: $(tr '\n' ' ' <"$WORK/why.txt")" >>"$OUT/skipped.txt"
  fi
  stop_server
done

python3 "$ROOT/scripts/bench-render.py" --raw "$OUT/raw" --skipped "$OUT/skipped.txt" \
  --doc "$ROOT/docs/benchmarks.md" --svg "$ROOT/docs/bench-compare.svg" \
  --trial-secs "$TRIAL_SECS" --clients "$CLIENTS" --max-loss "$MAX_LOSS" \
  --server-cpu "$SERVER_CPU" --gen-cpu "$BASE_GEN_CPU" --gen-cores "$BASE_GEN_CORES" \
  --gen-transport "$GEN_TRANSPORT" --queues "$QUEUES" \
  --reflector-cores "$REFLECTOR_CORES" --reflector-cpus "$REFLECTOR_CPUS" \
  --gen-busy-wait "$GEN_BUSY_WAIT" --xdp-idle-spin "$XDP_IDLE_SPIN" \
  --xdhcp6-prealloc "$XDHCP6_PREALLOC" \
  --kea "memfile without persistence, multi-threading ${KEA_MT:-true}, ${KEA_THREADS:-2} threads, packet queue ${KEA_QUEUE:-2048}, pinned to CPU $SERVER_CPU"
log "wrote docs/benchmarks.md (## Comparison with Kea) and docs/bench-compare.svg"
