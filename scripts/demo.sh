#!/usr/bin/env bash
# Self-contained demo: build xdhcp6, put it in a network namespace joined by a veth pair to a
# second namespace, and have a real DHCPv6 client (ISC dhclient) obtain an address (IA_NA) and
# a delegated prefix (IA_PD) from it. Prints the lease, the server's log and its counters, and
# removes everything it created on exit. Needs root. Touches nothing outside its namespaces.
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
  echo "demo.sh: needs root (network namespaces, veth); run: sudo $0" >&2
  exit 1
fi
for d in "${HOME:-/root}/.cargo/bin" /root/.cargo/bin; do
  [[ -x $d/cargo ]] && PATH="$d:$PATH"
done
if [[ -n ${SUDO_USER:-} ]]; then
  user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
  [[ -x $user_home/.cargo/bin/cargo ]] && PATH="$PATH:$user_home/.cargo/bin"
fi
export PATH

scripts/install-deps.sh

echo "== building xdhcp6"
cargo build --quiet --bin xdhcp6
BIN="${CARGO_TARGET_DIR:-target}/debug/xdhcp6"

ID=$$
SNS="xdhcp6-demo-$ID-server"
CNS="xdhcp6-demo-$ID-client"
SIF="x6d${ID}s"
CIF="x6d${ID}c"
WORK=$(mktemp -d /tmp/xdhcp6-demo.XXXXXX)
SERVER_PID=""
CLIENT_PID=""

cleanup() {
  set +e
  [[ -n $CLIENT_PID ]] && kill "$CLIENT_PID" 2>/dev/null
  [[ -n $SERVER_PID ]] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  for ns in "$SNS" "$CNS"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  if [[ -n ${KEEP:-} ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== network: namespace $SNS ($SIF, 2001:db8:1::1) <-> namespace $CNS ($CIF)"
ip netns add "$SNS"
ip netns add "$CNS"
ip link add "$SIF" netns "$SNS" type veth peer name "$CIF" netns "$CNS"
for pair in "$SNS $SIF 2001:db8:1::1/64" "$CNS $CIF 2001:db8:1::2/64"; do
  read -r ns ifc addr <<<"$pair"
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$ifc.accept_dad=0"
  ip netns exec "$ns" ethtool -K "$ifc" tx off >/dev/null   # veth checksum offload (BRIEF §7)
  ip -n "$ns" link set "$ifc" up
  ip -n "$ns" addr add "$addr" dev "$ifc" nodad
done
for i in $(seq 50); do
  ip -n "$CNS" -6 addr show dev "$CIF" scope link | grep -q 'fe80.*' &&
    ! ip -n "$CNS" -6 addr show dev "$CIF" | grep -q tentative && break
  sleep 0.1
done

cat >"$WORK/xdhcp6.toml" <<TOML
[server]
interfaces = ["$SIF"]
backend = "socket"
workers = 2
duid_file = "$WORK/server-duid"
lease_file = "$WORK/leases"
control_socket = "$WORK/control.sock"

[[link]]
name = "demo-lan"
subnet = "2001:db8:1::/64"
interface = "$SIF"
address_pools = [{ first = "2001:db8:1::1000", last = "2001:db8:1::1fff" }]
prefix_pools = [{ prefix = "2001:db8:100::/40", delegated_length = 56 }]
preferred_lifetime = 1800
valid_lifetime = 3600
options = { dns_servers = ["2001:db8:1::53"] }
TOML
echo "== configuration ($WORK/xdhcp6.toml)"
sed 's/^/   /' "$WORK/xdhcp6.toml"

echo "== starting xdhcp6 in $SNS"
RUST_LOG=info ip netns exec "$SNS" "$BIN" serve --config "$WORK/xdhcp6.toml" \
  --stats-file "$WORK/stats.json" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for i in $(seq 100); do
  [[ -e $WORK/stats.json ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "xdhcp6 exited:"; cat "$WORK/server.log"; exit 1; }
  sleep 0.1
done
[[ -e $WORK/stats.json ]] || { echo "xdhcp6 did not come up:"; cat "$WORK/server.log"; exit 1; }

# dhclient's own script would rewrite /etc/resolv.conf; this one only records the lease.
cat >"$WORK/hook.sh" <<HOOK
#!/bin/sh
{ echo "reason=\$reason"; env | grep -E '^new_' | sort; echo --; } >> "$WORK/events.log"
HOOK
chmod +x "$WORK/hook.sh"
touch "$WORK/events.log"

echo "== dhclient -6 -N -P (an address and a prefix) in $CNS"
ip netns exec "$CNS" dhclient -6 -d -N -P -lf "$WORK/dhclient6.leases" -pf "$WORK/dhclient6.pid" \
  -sf "$WORK/hook.sh" "$CIF" >"$WORK/dhclient.log" 2>&1 &
CLIENT_PID=$!
ok=""
for i in $(seq 300); do
  if grep -q '^new_ip6_address=' "$WORK/events.log" && grep -q '^new_ip6_prefix=' "$WORK/events.log"; then
    ok=1
    break
  fi
  sleep 0.1
done
sleep 0.5

echo "== what the client got"
if [[ -n $ok ]]; then
  echo "   address: $(grep -m1 '^new_ip6_address=' "$WORK/events.log" | cut -d= -f2)"
  echo "   prefix:  $(grep -m1 '^new_ip6_prefix=' "$WORK/events.log" | cut -d= -f2)"
  grep -hE '^new_(preferred_life|max_life|renew|rebind|dhcp6_server_id)=' "$WORK/events.log" | sort -u | sed 's/^/   /'
else
  echo "   no address and prefix within 30 s; dhclient said:"
  sed 's/^/   /' "$WORK/dhclient.log"
fi
echo "== client's lease file"
sed 's/^/   /' "$WORK/dhclient6.leases" 2>/dev/null || true

kill "$CLIENT_PID" 2>/dev/null; wait "$CLIENT_PID" 2>/dev/null || true; CLIENT_PID=""
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""
echo "== server log"
sed 's/^/   /' "$WORK/server.log"
echo "== server counters per worker (non-zero ones; stats file written at exit)"
grep -E '"worker"|"(rx|tx)":|"[a-z_]+": [1-9]' "$WORK/stats.json" | tr -d ' ,' | sed 's/^/   /'

[[ -n $ok ]] && echo "== demo succeeded" || { echo "== demo FAILED"; exit 1; }
