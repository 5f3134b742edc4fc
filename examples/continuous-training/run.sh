#!/usr/bin/env bash
# The continuous-training loop, end to end, in a scratch folder (.demo/):
#
#   1. train the breast-cancer model and promote version 1 to production;
#   2. serve it (`sluice serve`) and start the daemon (`sluice watch`);
#   3. ordinary traffic: the watcher measures no drift;
#   4. the world shifts: new labelled data arrives, and the traffic follows;
#   5. the watcher sees the drift, retrains on the new data, validates the
#      new version against production, and promotes it to staging;
#   6. a monitoring report (report.html) shows what moved.
#
# Needs cargo (or SLUICE=/path/to/sluice) and python3. Takes about a minute
# after the build.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
demo="${DEMO_DIR:-$here/.demo}"

if [ -z "${SLUICE:-}" ]; then
  echo "== building sluice (release)"
  cargo build --release --quiet -p sluice-cli --manifest-path "$repo/Cargo.toml"
  SLUICE="$repo/target/release/sluice"
fi

rm -rf "$demo"
mkdir -p "$demo/data"
cp "$here/pipeline.toml" "$demo/"
cp "$repo/examples/breast-cancer/data/breast_cancer.csv" "$demo/data/current.csv"
store="$demo/.sluice"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
wait_for() { # FILE TEXT SECONDS
  for _ in $(seq 1 $(( $3 * 10 ))); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1:" >&2
  cat "$1" >&2
  return 1
}

step "1. train version 1 and promote it to production"
"$SLUICE" run "$demo/pipeline.toml" --quiet
"$SLUICE" models promote breast-cancer 1 --alias production --reason "first release" --store "$store"

step "2. serve it, and watch the pipeline's triggers"
"$SLUICE" serve --model breast-cancer@production --store "$store" --addr 127.0.0.1:0 \
  --log-every 1s >"$demo/serve.out" 2>"$demo/serve.log" &
pids+=($!)
wait_for "$demo/serve.out" "listening on" 60
url="$(sed -n 's/^listening on //p' "$demo/serve.out")"
echo "serving at $url"
"$SLUICE" watch "$demo/pipeline.toml" 2>"$demo/watch.log" &
pids+=($!)
wait_for "$demo/watch.log" "watching pipeline" 60
cat "$demo/watch.log"

step "3. ordinary traffic"
python3 "$here/traffic.py" "$url"
wait_for "$demo/watch.log" "no drift over" 60
tail -n 1 "$demo/watch.log"

step "4. the world shifts: new measurements (and their labels) arrive"
python3 "$here/traffic.py" "$url" --shift 1.6 --write-data "$demo/data/current.csv"

step "5. the watcher retrains and promotes to staging"
wait_for "$demo/watch.log" "→ staging" 120
grep -E "drift:|run .* (succeeded|failed)|→|waits for" "$demo/watch.log"
"$SLUICE" models show breast-cancer --store "$store"

step "6. the monitoring report of what production saw"
"$SLUICE" monitor --model breast-cancer@production --store "$store" --html "$demo/report.html" | tail -n 8
echo
echo "Open $demo/report.html in a browser. Production is still version 1:"
echo "  $SLUICE models promote breast-cancer 2 --alias production --store $store"
echo "puts the retrained version in front of traffic (the server follows the alias)."
