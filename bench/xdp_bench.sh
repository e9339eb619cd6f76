#!/usr/bin/env bash
# The XDP data-path benchmark (docs/benchmarks.md, "XDP data path"): one sender, three
# responders, one after the other in the same run, each pinned to CPU 0, the sender to CPU 1:
#   af_xdp_echo    the bare AF_XDP echo (xdp-responder --mode echo): the ceiling of the setup
#   xdp_backend    `xdhcp6 serve`, backend = "xdp", the real protocol core
#   socket_backend `xdhcp6 serve`, backend = "socket" (src/io/socket.rs), the real core
# Needs root and ethtool; builds the release binaries. Traffic stays inside two namespaces made
# here (xdb-s, xdb-c) and removed at exit.
# Usage: bench/xdp_bench.sh [seconds per case] [frame bytes] [rounds]
# With several rounds the three cases alternate, so a busy neighbour hurts all of them alike.
set -euo pipefail
DUR=${1:-5}
SIZE=${2:-162}
ROUNDS=${3:-1}
WARM=1
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin xdhcp6 --bin xdp-responder --bin xdp-loadgen
BIN=${CARGO_TARGET_DIR:-target}/release
S=xdb-s C=xdb-c
WORK=$(mktemp -d /tmp/xdb.XXXXXX)
cleanup() {
  ip netns pids $S 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del $S 2>/dev/null || true
  ip netns del $C 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cleanup
mkdir -p "$WORK"
ip netns add $S && ip netns add $C
ip link add xdbs netns $S type veth peer name xdbc netns $C
for x in "$S xdbs fe80::1 2001:db8:1::1" "$C xdbc fe80::2 2001:db8:1::2"; do
  set -- $x
  ip -n "$1" link set lo up
  ip -n "$1" link set "$2" addrgenmode none
  ip -n "$1" addr add "$3/64" dev "$2" nodad
  ip -n "$1" addr add "$4/64" dev "$2" nodad
  ip -n "$1" link set "$2" up
  ip netns exec "$1" ethtool -K "$2" tx off >/dev/null
done
for _ in $(seq 100); do ip -n $C -6 route show table local dev xdbc | grep -q ff00:: && break; sleep 0.05; done

config() { # backend
  cat <<TOML
[server]
interfaces = ["xdbs"]
backend = "$1"
workers = 1
duid_file = "$WORK/duid"
lease_file = "$WORK/leases-$1"
control_socket = "$WORK/control-$1.sock"

[[link]]
name = "bench"
subnet = "2001:db8:1::/64"
interface = "xdbs"
address_pools = [{ first = "2001:db8:1::1000", last = "2001:db8:1::ffff" }]

[xdp]
cpus = [0]
TOML
}

# run_case LABEL READY-PATTERN COMMAND...: start the responder in the server namespace on
# CPU 0, wait until it is ready, drive it from CPU 1, stop it.
run_case() {
  local label=$1 ready=$2; shift 2
  ip netns exec $S taskset -c 0 "$@" >"$WORK/$label.out" 2>"$WORK/$label.err" &
  local pid=$!
  for _ in $(seq 200); do grep -q "$ready" "$WORK/$label.out" "$WORK/$label.err" 2>/dev/null && break; sleep 0.05; done
  # Direct clients multicast their Solicits (RFC 8415 §16 has the server drop a unicast one).
  ip netns exec $C "$BIN/xdp-loadgen" --iface xdbc --dst-mac 33:33:00:01:00:02 --dst-ip ff02::1:2 \
    --cpu 1 --server-pid $pid \
    --size "$SIZE" --warmup-secs $WARM --duration-secs "$DUR" --label "$label"
  kill -TERM $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
}

config xdp >"$WORK/xdp.toml"
config socket >"$WORK/socket.toml"
for round in $(seq "$ROUNDS"); do
  run_case af_xdp_echo '^ready' "$BIN/xdp-responder" --iface xdbs --mode echo --no-verify-checksum \
    --cpus 0 --workers 1 --duration-secs $((DUR + WARM + 5))
  run_case xdp_backend 'XDP backend serving' "$BIN/xdhcp6" serve --config "$WORK/xdp.toml"
  run_case socket_backend 'socket backend serving' "$BIN/xdhcp6" serve --config "$WORK/socket.toml"
done
