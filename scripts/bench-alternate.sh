#!/usr/bin/env bash
# Compare two builds of a benchmark binary on a noisy machine: run A and B alternately, one run
# each per round, the order swapped every round, and print each one's median and the median of
# the per-round ratios B/A (neighbouring runs share the machine's mood; separate invocations an
# hour apart do not). Each run's figure is the first "<number> ops/s" its output prints.
#
# Usage: scripts/bench-alternate.sh ROUNDS BIN_A BIN_B [ARGS...]
#   BIN_A, BIN_B: bench binaries (e.g. a copy of target/release/deps/lease-* from each commit);
#   ARGS: passed to both, e.g.
#   scripts/bench-alternate.sh 10 /tmp/lease-old /tmp/lease-new --sizes 1000000 \
#       --dir /var/tmp/xdhcp6-bench --no-group --only "allocate_many(256)+preallocated"
# The loop is bounded by ROUNDS; each run is as long as the benchmark line it selects.
set -euo pipefail

if [ $# -lt 3 ]; then
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
rounds=$1
a=$2
b=$3
shift 3
case $rounds in
'' | *[!0-9]*)
    echo "ROUNDS must be a number, got '$rounds'" >&2
    exit 2
    ;;
esac
for bin in "$a" "$b"; do
    [ -x "$bin" ] || {
        echo "not an executable: $bin" >&2
        exit 2
    }
done

# The first "<number> ops/s" of one run, or nothing.
rate() {
    "$@" 2>&1 | awk '{ for (i = 2; i <= NF; i++) if ($i == "ops/s") { print $(i - 1); exit } }'
}

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for ((r = 1; r <= rounds; r++)); do
    if ((r % 2)); then order="A B"; else order="B A"; fi
    for which in $order; do
        if [ "$which" = A ]; then bin=$a; else bin=$b; fi
        x=$(rate "$bin" "$@")
        if [ -z "$x" ]; then
            echo "round $r: $which printed no ops/s figure (check ARGS)" >&2
            exit 1
        fi
        echo "$r $which $x" | tee -a "$results"
    done
done
python3 - "$results" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    r, which, x = line.split()
    runs.setdefault(r, {})[which] = float(x)
a = [v["A"] for v in runs.values()]
b = [v["B"] for v in runs.values()]
ratios = [v["B"] / v["A"] for v in runs.values()]
print(f"A median {statistics.median(a):,.0f} ops/s  (min {min(a):,.0f}, max {max(a):,.0f})")
print(f"B median {statistics.median(b):,.0f} ops/s  (min {min(b):,.0f}, max {max(b):,.0f})")
print(f"B/A per round: median {statistics.median(ratios):.3f}  ["
      + " ".join(f"{x:.2f}" for x in ratios) + "]")
EOF
