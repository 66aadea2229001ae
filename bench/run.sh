#!/usr/bin/env bash
# The whole benchmark suite, one command:
#
#   bench/run.sh            # about 30-60 minutes on a 2-core machine
#
# Every benchmark updates its own section of bench/RESULTS.md (machine,
# command, numbers and ratios to a baseline measured in the same run); this
# script adds a "suite" section with what ran, how long it took and whether
# it succeeded, writes raw outputs to bench/out/ (not committed), and draws
# the PNG plots beside RESULTS.md (bench/plot). Benchmarks that need an
# absent tool (Java for real Kafka, PostgreSQL for scan, Hyperscan for the
# detector peer) are recorded as failed with their first error line, and
# the suite carries on.
set -uo pipefail
cd "$(dirname "$0")/.."
out=bench/out
results=bench/RESULTS.md
mkdir -p "$out"
rows=()

run() {
  local name=$1; shift
  echo "== $name: $*"
  local t0=$SECONDS status
  if "$@" >"$out/$name.log" 2>&1; then
    status=ok
  else
    status="**failed** (exit $?): $(grep -m1 -iE 'error|fail|panic' "$out/$name.log" | cut -c1-160)"
  fi
  rows+=("| $name | \`$*\` | $((SECONDS - t0)) s | $status |")
  echo "   $status ($((SECONDS - t0)) s)"
}

go run ./internal/devstack/kafkabroker/fetch >/dev/null  # the real broker's classpath, once

run detector go test -tags hyperscan -run '^$' -bench . -benchtime 20x -count 3 ./bench/detector/
run scan go run ./bench/scan -runs 3 -write "$results"
run auditor go run ./bench/auditor -write "$results"
run tokenizer-kfake go run ./bench/tokenizer -write "$results"
run tokenizer-kafka go run ./bench/tokenizer -real-kafka -write "$results"
run peers go run ./bench/peers -write "$results" -json "$out/peers.json"
run tokenizer-state go test -run '^$' -bench IdemStateCost -benchtime 1x ./processors/tokenizer/
awk 'BEGIN { printf "{\"Title\": \"Tokenizer idempotency state, heap bytes per key (processors/tokenizer BenchmarkIdemStateCost)\", \"Points\": [" }
     /^BenchmarkIdemStateCost\/keys=/ { split($1, a, "[=-]"); n = a[2]; for (i = 1; i <= NF; i++) if ($(i+1) == "heap-bytes/key") b = $i;
       printf "%s{\"Keys\": %s, \"Bytes\": %s}", sep, n, n * b; sep = ", " }
     END { print "]}" }' "$out/tokenizer-state.log" >"$out/state.json"
for b in masker state gateway; do   # benchmarks other work adds; each takes -write
  if [[ -f bench/$b/main.go ]]; then
    run "$b" go run "./bench/$b" -write "$results"
  else
    rows+=("| $b | (no bench/$b yet) | - | not run |")
  fi
done
plot=(go run ./bench/plot -out bench)
[[ -f $out/peers.json ]] && plot+=(-peers "$out/peers.json")
[[ -f $out/state.json ]] && plot+=(-state "$out/state.json")
run plot "${plot[@]}"

# The suite section: machine, commands, status; the detector's raw numbers.
{
  echo "## Suite run (\`bench/run.sh\`)"
  echo
  echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB,"
  echo "shared with other jobs (load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)); $(go version | cut -d' ' -f3-4);"
  echo "$(java -version 2>&1 | head -1). Date: $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo
  read -r load1 _ </proc/loadavg
  if awk -v l="$load1" -v n="$(nproc)" 'BEGIN { exit !(l > 2 * n) }'; then
    echo "**This run shared an overloaded machine** (load average $load1 on $(nproc) cores at the end): every"
    echo "process got a small slice of a core, so absolute rates are far below a quiet machine's and latencies"
    echo "are dominated by CPU starvation. Ratios measured in the same run (same process, same broker) remain"
    echo "comparable; absolute numbers and latency targets should be re-measured on a quiet machine."
    echo
  fi
  echo "| benchmark | command | took | result |"
  echo "|---|---|---:|---|"
  printf '%s\n' "${rows[@]}"
  echo
  if [[ -f bench/peers-latency.png ]]; then
    echo "Plots: [latency against offered load](peers-latency.png), [delivered against offered load](peers-throughput.png),"
    echo "[tokenizer state cost against keys](tokenizer-state.png)."
    echo
  fi
  if [[ -f $out/tokenizer-state.log ]]; then
    echo "Tokenizer idempotency state (Pebble store, committed keys over 3 partitions): Go heap bytes per key,"
    echo "from \`go test -run '^\$' -bench IdemStateCost -benchtime 1x ./processors/tokenizer/\`:"
    echo
    echo '| keys | heap bytes per key |'
    echo '|---:|---:|'
    awk '/^BenchmarkIdemStateCost\/keys=/ { split($1, a, "[=-]"); for (i = 1; i <= NF; i++) if ($(i+1) == "heap-bytes/key") print "| " a[2] " | " $i " |" }' "$out/tokenizer-state.log"
    echo
  fi
  echo "Detector, raw \`go test -bench\` output of this run (the detector section above interprets an earlier run):"
  echo
  echo '```'
  grep -E '^(Benchmark|goos|cpu)' "$out/detector.log" | head -40
  echo '```'
  echo
} >"$out/suite.md"
python3 - "$results" "$out/suite.md" <<'PY'
import sys
path, sec = sys.argv[1], open(sys.argv[2]).read()
b, e = "<!-- suite:begin -->", "<!-- suite:end -->"
s = open(path).read()
block = b + "\n" + sec + e
if b in s and e in s:
    s = s[:s.index(b)] + block + s[s.index(e) + len(e):]
else:
    s = s.replace("# Benchmark results\n", "# Benchmark results\n\n" + block + "\n", 1)
open(path, "w").write(s)
PY
echo "updated $results"
