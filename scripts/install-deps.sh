#!/usr/bin/env bash
# Install the Debian packages the tests and the demo need. Idempotent: when everything is
# already installed it only checks and returns.
set -euo pipefail

PACKAGES=(
  iproute2          # ip: namespaces, veth
  ethtool           # turn off veth TX checksum offload
  util-linux        # unshare (dhcpcd runs in a private mount namespace)
  procps            # kill, ps
  isc-dhcp-client   # dhclient -6
  dhcpcd-base       # dhcpcd
  wide-dhcpv6-client # dhcp6c
  kea-admin         # perfdhcp
  clang             # the XDP program (ebpf/)
  libbpf-dev        # bpf/bpf_helpers.h for the XDP program
  linux-libc-dev    # linux/bpf.h and the other kernel UAPI headers
  tcpdump           # debugging the namespaces by hand
)

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps.sh: needs root (apt-get); run it with sudo" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps.sh: all packages present"
  exit 0
fi

echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# The clients are only ever run by the tests, inside their namespaces: no package may start a
# daemon on the host's interfaces. wide-dhcpv6-client would otherwise be configured to run on
# eth0, and invoke-rc.d honours policy-rc.d's "101: action forbidden".
echo "wide-dhcpv6-client wide-dhcpv6-client/interfaces string" | debconf-set-selections
policy=/usr/sbin/policy-rc.d
made_policy=""
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  made_policy=1
fi
trap '[[ -n $made_policy ]] && rm -f "$policy"' EXIT
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
