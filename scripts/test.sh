#!/usr/bin/env bash
# Run the whole test suite: install the Debian packages the integration tests use, then
# formatting and lint checks, then every test target. Needs root: the integration tests create
# network namespaces and veth pairs and bind UDP port 547.
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
  echo "test.sh: the integration tests need root (network namespaces, veth, port 547)." >&2
  echo "         run: sudo $0" >&2
  exit 1
fi

# cargo is often not on root's PATH (rustup installs per user).
for d in "${HOME:-/root}/.cargo/bin" /root/.cargo/bin; do
  [[ -x $d/cargo ]] && PATH="$d:$PATH"
done
if [[ -n ${SUDO_USER:-} ]]; then
  user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
  [[ -x $user_home/.cargo/bin/cargo ]] && PATH="$PATH:$user_home/.cargo/bin"
fi
export PATH
command -v cargo >/dev/null || { echo "test.sh: cargo not found (install Rust with rustup)" >&2; exit 1; }

scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings
echo "== cargo test"
cargo test --all-targets --no-fail-fast
