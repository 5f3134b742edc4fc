#!/usr/bin/env bash
# The edge runtime (issue 20): builds `sluice` in release mode and
# `sluice-edge` as it ships (alone, `--profile edge`: wasmtime without its
# compiler, no ONNX engine, fat LTO, opt-level "s", panic=abort, stripped),
# natively and for aarch64-unknown-linux-gnu (Debian's
# gcc-aarch64-linux-gnu; run under qemu-user), trains the flagship model,
# bundles it for both, and measures:
#   - stripped size of sluice-edge, x86_64 and aarch64 (aim < 15 MB);
#   - cold start to first prediction: `sluice-edge predict` of one row, and
#     `sluice-edge serve` from exec to its first answered request (aim < 50 ms);
#   - resident memory idle and after 2,000 requests (aim < 30 MB);
#   - predictions/s at batch 1, one client, keep-alive: sluice-edge native,
#     `sluice serve` native (same model, same machine), sluice-edge under qemu;
#   - `sluice-edge run` of the flagship's ingest, statistics and validate
#     bundled with the model (checking the 569-row CSV against the training
#     schema), exec to exit, native and under qemu.
# Usage: bench/edge/run.sh [--skip-build]
# EDGE_PROFILE (default `edge`; `release` for the unstripped symbols) and
# EDGE_FEATURES (e.g. `onnx-engine`: tract, any ONNX model) choose the
# sluice-edge build measured.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
profile=${EDGE_PROFILE:-edge}
features=(${EDGE_FEATURES:+--features "$EDGE_FEATURES"})
if [ "${1:-}" != "--skip-build" ]; then
    cargo build --release -p sluice-cli
    cargo build --profile "$profile" -p sluice-edge "${features[@]}"
    cargo build --profile "$profile" -p sluice-edge "${features[@]}" --target aarch64-unknown-linux-gnu
fi
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
target=${CARGO_TARGET_DIR:-$root/target}
sluice=$target/release/sluice
edge=$target/$profile/sluice-edge
arm=$target/aarch64-unknown-linux-gnu/$profile/sluice-edge
data=$root/examples/breast-cancer/data/breast_cancer.csv

strip -o "$work/edge-x86_64" "$edge"
aarch64-linux-gnu-strip -o "$work/edge-aarch64" "$arm"
echo "== size (stripped)"
for f in "$work/edge-x86_64" "$work/edge-aarch64"; do
    printf '%-14s %6.1f MB\n' "${f##*/}" "$(echo "$(stat -c %s "$f") / 1000000" | bc -l)"
done
strip -o "$work/sluice" "$sluice"
printf '%-14s %6.1f MB (for comparison)\n' "sluice" "$(echo "$(stat -c %s "$work/sluice") / 1000000" | bc -l)"

echo "== bundles"
sed "s#\"data/breast_cancer.csv\"#\"$data\"#" examples/breast-cancer/pipeline.toml > "$work/p.toml"
"$sluice" run "$work/p.toml" --store "$work/st" --quiet >/dev/null
"$sluice" models promote breast-cancer 1 --alias production --reason bench --store "$work/st" >/dev/null
"$sluice" bundle --model breast-cancer@production --store "$work/st" -o "$work/x86.bundle" --sample "$data"
"$sluice" bundle --model breast-cancer@production --store "$work/st" -o "$work/arm.bundle" --sample "$data" \
    --target aarch64-unknown-linux-gnu
for t in x86_64 aarch64; do
    "$sluice" bundle --model breast-cancer@production --store "$work/st" -o "$work/$t-steps.bundle" \
        --target "$t-unknown-linux-gnu" --pipeline "$work/p.toml" --steps ingest,statistics,validate
done
head -2 "$data" > "$work/one.csv"
cp "$data" "$work/data.csv"

qemu=(qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-a72)
python3 - "$work" "$sluice" "$work/edge-x86_64" "$work/edge-aarch64" "${qemu[@]}" <<'PY'
import http.client, json, os, re, socket, subprocess, sys, time
work, sluice, edge, arm, *qemu = sys.argv[1:]
data = os.path.join(work, "one.csv")

def cold_predict(cmd, bundle, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd + ["predict", bundle], stdin=open(data), stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2] * 1e3

def request_body():
    header, row = open(data).read().splitlines()[:2]
    inputs = [{"name": h, "shape": [1], "datatype": "FP64", "data": [float(v)]}
              for h, v in zip(header.split(","), row.split(",")) if h != "diagnosis"]
    return json.dumps({"inputs": inputs})

def start(cmd):
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in p.stdout:
        m = re.search(r"listening on http://(\S+)", line)
        if m:
            return p, m.group(1), t
    raise SystemExit("server did not start: " + " ".join(cmd))

def rss(p):
    for line in open(f"/proc/{p.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0

def serve(name, cmd, path, seconds=5):
    p, addr, t0 = start(cmd)
    host, port = addr.rsplit(":", 1)
    body = request_body()
    c = http.client.HTTPConnection(host, int(port))
    c.request("POST", path, body, {"Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
    first = (time.perf_counter() - t0) * 1e3
    idle = rss(p)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        c.request("POST", path, body, {"Content-Type": "application/json"})
        r = c.getresponse(); r.read()
        assert r.status == 200
        n += 1
    rate = n / (time.perf_counter() - t)
    loaded = rss(p)
    p.terminate(); p.wait()
    print(f"{name:28s} first answer {first:7.1f} ms  RSS idle {idle:5.1f} MB, after {n} requests {loaded:5.1f} MB  {rate:8.0f} predictions/s")

print("== cold start: `sluice-edge predict` of one row (median of 15)")
print(f"x86_64 native            {cold_predict([edge], os.path.join(work, 'x86.bundle'), 15):7.1f} ms")
print(f"aarch64 under qemu       {cold_predict(qemu + [arm], os.path.join(work, 'arm.bundle'), 5):7.1f} ms")
print("== `sluice-edge run`: ingest, statistics, validate of the 569-row CSV, exec to exit (median)")
def cold_run(cmd, bundle, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd + ["run", bundle, "--input", "raw=" + os.path.join(work, "data.csv")],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2] * 1e3
print(f"x86_64 native            {cold_run([edge], os.path.join(work, 'x86_64-steps.bundle'), 15):7.1f} ms")
print(f"aarch64 under qemu       {cold_run(qemu + [arm], os.path.join(work, 'aarch64-steps.bundle'), 5):7.1f} ms")
print("== serving, batch 1, one client, keep-alive")
infer = "/v2/models/breast-cancer/infer"
serve("sluice-edge x86_64", [edge, "serve", "--bundle", os.path.join(work, "x86.bundle"), "--addr", "127.0.0.1:0"], infer)
serve("sluice serve x86_64", [sluice, "serve", "--model", "breast-cancer@production", "--store", os.path.join(work, "st"),
                              "--addr", "127.0.0.1:0"], infer)
serve("sluice-edge aarch64 (qemu)", qemu + [arm, "serve", "--bundle", os.path.join(work, "arm.bundle"), "--addr", "127.0.0.1:0"], infer)
PY
