#!/usr/bin/env bash
# The XDP data-path benchmark (docs/benchmarks.md): one sender, three responders, same run.
#   bare AF_XDP echo (ceiling) | XDP backend (worker + stand-in core) | UDP socket + same core
# Needs root, ethtool; builds the release binaries. Traffic stays inside two namespaces made
# here (xdb-s, xdb-c) and removed at exit. Usage: bench/xdp_bench.sh [seconds] [frame bytes]
set -euo pipefail
DUR=${1:-5}
SIZE=${2:-162}
WARM=1
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin xdp-responder --bin xdp-loadgen
BIN=${CARGO_TARGET_DIR:-target}/release
S=xdb-s C=xdb-c
cleanup() { ip netns del $S 2>/dev/null || true; ip netns del $C 2>/dev/null || true; }
trap cleanup EXIT
cleanup
ip netns add $S && ip netns add $C
ip link add xdbs netns $S type veth peer name xdbc netns $C
for x in "$S xdbs fe80::1" "$C xdbc fe80::2"; do
  set -- $x
  ip -n "$1" link set lo up
  ip -n "$1" link set "$2" addrgenmode none
  ip -n "$1" addr add "$3/64" dev "$2" nodad
  ip -n "$1" link set "$2" up
  ip netns exec "$1" ethtool -K "$2" tx off >/dev/null
done
for _ in $(seq 100); do ip -n $C -6 route show table local dev xdbc | grep -q ff00:: && break; sleep 0.05; done
MAC=$(ip -n $S link show xdbs | awk '/link\/ether/ {print $2}')

run_case() {
  local label=$1; shift
  ip netns exec $S "$BIN/xdp-responder" --iface xdbs --cpus 0 --duration-secs $((DUR + WARM + 3)) "$@" \
    >/tmp/xdb-$label.out 2>/tmp/xdb-$label.err &
  local pid=$!
  for _ in $(seq 100); do grep -q '^ready' /tmp/xdb-$label.out 2>/dev/null && break; sleep 0.05; done
  ip netns exec $C "$BIN/xdp-loadgen" --iface xdbc --dst-mac "$MAC" --cpu 1 --server-pid $pid \
    --size "$SIZE" --warmup-secs $WARM --duration-secs "$DUR" --label "$label"
  wait $pid 2>/dev/null || true
  grep -h '^stats' /tmp/xdb-$label.out | cut -c1-2000 >&2 || true
}
run_case af_xdp_echo --mode echo --no-verify-checksum
run_case xdp_backend --mode fake
run_case socket_backend --mode socket-fake
