#!/usr/bin/env bash
# Runs build/bin/placement_bench (issue 7: download throughput against plain TCP, time from a new
# version to every device on it for 1 and 50 devices, planner time over the wire) and writes its
# results into docs/benchmarks.md (the section between the "placement-downloads" markers), with
# the machine and the date.
#   scripts/bench_placement.sh            build if needed, run, update docs/benchmarks.md
#   NO_DOCS=1 scripts/bench_placement.sh  print the section only
# Environment: MODEL (resnet18), DEVICES (1,50), REPEATS (5), POLL_MS (100).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BUILD_DIR:-build}/bin/placement_bench
[[ -x "$bin" ]] || scripts/build.sh >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" --model "${MODEL:-resnet18}" --devices "${DEVICES:-1,50}" --repeats "${REPEATS:-5}" \
  --poll-ms "${POLL_MS:-100}" >"$tmp/out.md" 2>"$tmp/err.log" || { cat "$tmp/err.log" >&2; exit 1; }
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
{
  echo "<!-- placement-downloads:begin (written by scripts/bench_placement.sh; do not edit by hand) -->"
  echo "## Placement downloads (issue 7)"
  echo
  echo "\`scripts/bench_placement.sh\` on $cpu, $(nproc) cores, $(date -u +%Y-%m-%d), $(uname -sr)."
  echo "Everything on this one machine, loopback: a real \`EdgeServer\` with a \`RepoWatcher\` and"
  echo "every device (a \`PlacementAgent\` with its own store and connection) in one process. Source:"
  echo "\`bench/placement_bench.cc\`."
  echo
  cat "$tmp/out.md"
  echo
  echo "Reading the figures. On raw loopback the plain transfer is a memory copy between two"
  echo "threads, faster than one SHA-256 pass over the same bytes; the verified download hashes"
  echo "every chunk as it arrives and every finished unit file whole, writes and fsyncs the files,"
  echo "and the edge reads each chunk from disk, all on the same 2 cores. So the raw-loopback ratio"
  echo "measures the price of verification, not the protocol, and stays far below 0.9 on this"
  echo "machine. On a link at device rates (the emulated downlink: both sides read no faster than"
  echo "the link) that work hides behind the transfer and the target holds. Time to all devices"
  echo "adds the edge's repository scan (up to one poll), its own verified load of the version, a"
  echo "device's poll, the download, the commit's and the load's re-verification and building the"
  echo "model; with 50 devices the edge serves 50 copies and the devices hash 4 passes each on"
  echo "the same 2 cores, so the last device waits for the others' CPU, not for the protocol."
  echo
  echo "<!-- placement-downloads:end -->"
} >"$tmp/section.md"
if [[ -n "${NO_DOCS:-}" ]]; then
  cat "$tmp/section.md"
  exit 0
fi
doc=docs/benchmarks.md
if grep -q '<!-- placement-downloads:begin' "$doc"; then
  awk -v sec="$tmp/section.md" '
    /<!-- placement-downloads:begin/ { while ((getline l < sec) > 0) print l; skip = 1; next }
    /<!-- placement-downloads:end -->/ { skip = 0; next }
    !skip { print }' "$doc" >"$tmp/doc.md"
  mv "$tmp/doc.md" "$doc"
else
  { echo; cat "$tmp/section.md"; } >>"$doc"
fi
cat "$tmp/section.md"
echo "bench_placement: updated $doc" >&2
