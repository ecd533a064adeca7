#!/usr/bin/env bash
# Ratios to the peers from alternating runs of the `overhead` bench, one variant per process.
#
#   benches/alternate.sh ROUNDS GROUP OURS PEER...
#   benches/alternate.sh 5 http_server ours_sampled sdk_direct_sampled otel_instrumentation_tower_sampled
#
# Each round runs `GROUP/none`, `GROUP/OURS` and every `GROUP/PEER` in its own process (criterion's
# median of a 4 s measurement), in an order rotated from round to round, and prints the round's
# medians and OURS over no layer divided by the cheapest PEER over no layer. A round of four
# variants takes about half a minute, so the machine's drift (BENCHMARKS.md, "The machine")
# moves the variants of one round together; the last line is the median of the rounds' ratios,
# and their range. Needs bash 4 or later.
set -euo pipefail
export LC_ALL=C

if [ $# -lt 4 ] || ! [[ $1 =~ ^[1-9][0-9]*$ ]]; then
    sed -n '4,5p' "$0" | sed 's/^# *//' >&2
    exit 2
fi
rounds=$1 group=$2
shift 2
variants=(none "$@")
n=${#variants[@]}
cd "$(dirname "$0")/.."
cargo bench -q -p benches --bench overhead --no-run

# The median of one variant's run, in nanoseconds.
median_ns() {
    cargo bench -q -p benches --bench overhead -- "$group/$1" \
        --color never --measurement-time 4 --warm-up-time 2 2>&1 |
        awk '/time:/ && !done {
            gsub(/\[|\]/, "")
            for (i = 1; i <= NF; i++) if ($i == "time:") { v = $(i + 3); u = $(i + 4) }
            if (u == "µs") v *= 1e3; else if (u == "ms") v *= 1e6; else if (u == "s") v *= 1e9
            else if (u == "ps") v /= 1e3
            printf "%.0f\n", v; done = 1 }'
}

ratios=()
for ((r = 0; r < rounds; r++)); do
    declare -A ns=()
    for ((k = 0; k < n; k++)); do
        v=${variants[$(((k + r) % n))]}
        ns[$v]=$(median_ns "$v")
        if [ -z "${ns[$v]}" ]; then
            echo "no criterion median for $group/$v (is it a variant of the overhead bench?)" >&2
            exit 1
        fi
    done
    line="round $((r + 1)):"
    for v in "${variants[@]}"; do
        line+=" $v ${ns[$v]} ns"
    done
    best=
    for peer in "${variants[@]:2}"; do
        over=$((ns[$peer] - ns[none]))
        if [ -z "$best" ] || [ "$over" -lt "$best" ]; then best=$over; fi
    done
    if [ "$best" -le 0 ]; then
        echo "round $((r + 1)): no peer took longer than no layer; no ratio" >&2
        exit 1
    fi
    ratio=$(awk -v o=$((ns[${variants[1]}] - ns[none])) -v p="$best" 'BEGIN { printf "%.3f", o / p }')
    ratios+=("$ratio")
    echo "$line; ${variants[1]} over no layer / the cheapest peer's: $ratio"
    unset ns
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{ r[NR] = $1 }
    END {
        m = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
        printf "median of %d rounds: %.3f (%s to %s)\n", NR, m, r[1], r[NR]
    }'
