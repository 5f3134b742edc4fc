#!/usr/bin/env bash
# `sluice serve` against `mlflow models serve`, side by side, on the
# breast-cancer model: requests/s, p50/p99 latency and peak memory under a
# sequential and a 16-client load. See bench/serve/README.md.
#
#   bench/serve/run.sh            (from anywhere; it works from the repo root)
#
# Installs wrk (Debian) and a Python venv with pinned MLflow if missing,
# builds sluice in release mode, trains both models, serves each in turn on
# 127.0.0.1, load-tests it with wrk, prints a Markdown table and writes
# bench/serve/results/latest.json.
#
# Settings (environment):
#   SLUICE_BENCH_VENV=/tmp/sluice-bench-venv   the MLflow venv
#   SLUICE_BENCH_DURATION=15    seconds of each measured wrk run
#   SLUICE_BENCH_WARMUP=3       seconds of the unmeasured wrk run before it
#   SLUICE_BENCH_SHAPES="1:1 2:16"   wrk THREADS:CONNECTIONS, one row each
#   SLUICE_BENCH_MLFLOW_WORKERS=2    the extra MLflow row's uvicorn workers
#                               (added when MLflow's default is fewer; 0: none)
#   SLUICE_BENCH_ONLY=all       all | mlflow | sluice
#   SLUICE_BENCH_NO_BUILD=0     1: don't run cargo build (use the binary as is)
#   SLUICE_BENCH_SLUICE_BIN=target/release/sluice
#   SLUICE_BENCH_SLUICE_ARGS=   extra flags for `sluice serve` (e.g. "--log-sample 0");
#                               they are shown in the rows' server label
#   SLUICE_BENCH_REQUIRE_SLUICE=0    1: fail (not skip) if `sluice serve` is missing
#   SLUICE_BENCH_RSS_INTERVAL=0.25   seconds between memory samples
#   SLUICE_BENCH_KEEP=0         1: keep the temp folder (models, logs, bodies)
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
HERE=$ROOT/bench/serve

VENV=${SLUICE_BENCH_VENV:-/tmp/sluice-bench-venv}
DURATION=${SLUICE_BENCH_DURATION:-15}
WARMUP=${SLUICE_BENCH_WARMUP:-3}
SHAPES=${SLUICE_BENCH_SHAPES:-"1:1 2:16"}
MLFLOW_EXTRA_WORKERS=${SLUICE_BENCH_MLFLOW_WORKERS:-2}
ONLY=${SLUICE_BENCH_ONLY:-all}
NO_BUILD=${SLUICE_BENCH_NO_BUILD:-0}
SLUICE=${SLUICE_BENCH_SLUICE_BIN:-target/release/sluice}
SLUICE_ARGS=${SLUICE_BENCH_SLUICE_ARGS:-}
REQUIRE_SLUICE=${SLUICE_BENCH_REQUIRE_SLUICE:-0}
RSS_INTERVAL=${SLUICE_BENCH_RSS_INTERVAL:-0.25}
KEEP=${SLUICE_BENCH_KEEP:-0}
MODEL=breast-cancer
READY_TIMEOUT=180

log() { printf '[bench/serve] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

case $ONLY in all | mlflow | sluice) ;; *) die "SLUICE_BENCH_ONLY must be all, mlflow or sluice" ;; esac

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-serve.XXXXXX")
SERVER_PID=
SERVER_NAME=
SAMPLER_PID=

# Ends the process group of the server started last (it was started with
# setsid, so its pid is its group's id): SIGTERM, then SIGKILL after 10 s.
group_alive() {
    # a zombie whose parent is gone may linger, reparented: it holds nothing
    ps -eo pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}
# Appends "NAME exit=STATUS stop_s=SECONDS" to $TMP/stops.txt (the JSON's
# meta.server_stops): the server's exit status after SIGTERM (setsid execs
# the server, so $! is the server itself; 137: it needed SIGKILL).
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    local pid=$SERVER_PID i rc=0 t0
    SERVER_PID=
    t0=$(date +%s.%N)
    kill -TERM -- "-$pid" 2>/dev/null || true
    for i in $(seq 200); do group_alive "$pid" || break; sleep 0.05; done
    if group_alive "$pid"; then
        log "server group $pid still up after 10 s: SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    local took
    took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    log "$SERVER_NAME stopped ${took}s after SIGTERM, exit status $rc"
    printf '%s exit=%s stop_s=%s\n' "$SERVER_NAME" "$rc" "$took" >>"$TMP/stops.txt"
}
stop_sampler() {
    [ -n "$SAMPLER_PID" ] || return 0
    kill -TERM "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_sampler
    stop_server
    if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then
        log "temp folder kept: $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Seconds a fixed pure-Python loop takes (best of 3): how fast the cores are
# right now. On a shared VM this moves by half or more from one hour to the
# next, and MLflow's rows move with it; compare it between runs.
cpu_probe() {
    python3 -c '
import time
best = 1e9
for _ in range(3):
    t = time.perf_counter(); s = 0
    for i in range(3_000_000): s += i
    best = min(best, time.perf_counter() - t)
print(f"{best:.3f}")'
}
CPU_PROBE_START=$(cpu_probe)
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v l="${LOAD_AT_START%% *}" 'BEGIN { exit !(l > 0.5) }'; then
    log "WARNING: load average $LOAD_AT_START before starting: something else is using the cores"
fi

# ---- 1. tools ---------------------------------------------------------------
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
missing=
command -v wrk >/dev/null || missing="$missing wrk"
command -v curl >/dev/null || missing="$missing curl"
if [ -n "$missing" ]; then
    log "installing$missing (apt-get)"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

need_mlflow() { [ "$ONLY" != sluice ]; }
need_sluice() { [ "$ONLY" != mlflow ]; }

if need_mlflow; then
    pins_ok() {
        "$VENV/bin/python" - "$HERE/requirements.txt" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        name, want = line.split("==")
        if version(name) != want:
            sys.exit(1)
EOF
    }
    if [ ! -x "$VENV/bin/python" ] || ! pins_ok; then
        log "installing MLflow into $VENV (pip; about a minute)"
        [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check \
            -r "$HERE/requirements.txt" -c "$HERE/constraints.txt"
        pins_ok || die "$VENV does not have the versions in bench/serve/requirements.txt"
    fi
fi

# ---- 2. sluice: build, train, promote ----------------------------------------
SLUICE_OK=0
if need_sluice; then
    if [ "$NO_BUILD" != 1 ]; then
        log "cargo build --release -p sluice-cli; -p sluice-bench --bin serve-bench"
        cargo build --release -p sluice-cli >&2
        cargo build --release -p sluice-bench --bin serve-bench >&2
    fi
    HELPER=${SLUICE_BENCH_HELPER_BIN:-target/release/serve-bench}
    [ -x "$SLUICE" ] || die "$SLUICE not found (build it, or set SLUICE_BENCH_SLUICE_BIN)"
    if "$SLUICE" serve --help >/dev/null 2>&1; then
        SLUICE_OK=1
    elif [ "$REQUIRE_SLUICE" = 1 ]; then
        die "$SLUICE has no \`serve\` command"
    else
        log "WARNING: $SLUICE has no \`serve\` command: the sluice rows are skipped"
    fi
fi
if [ "$SLUICE_OK" = 1 ]; then
    log "sluice run examples/breast-cancer/pipeline.toml --store $TMP/store"
    "$SLUICE" run examples/breast-cancer/pipeline.toml --store "$TMP/store" --quiet >&2
    "$SLUICE" models promote "$MODEL" 1 --alias production --store "$TMP/store" --reason bench >&2
fi

# ---- 3. the scikit-learn twin for MLflow, and the request bodies --------------
# (the bodies come from the CSV with the stdlib only, so a sluice-only run
# needs no venv; the training needs it)
PY=python3
need_mlflow && PY=$VENV/bin/python
if need_mlflow; then
    log "training the scikit-learn model (bench/serve/train_sklearn.py)"
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" "$HERE/train_sklearn.py" "$TMP" >&2
else
    "$PY" "$HERE/train_sklearn.py" "$TMP" --bodies-only >&2
fi

# ---- 4-6. serve, check, load, measure ------------------------------------------
ROWS=$TMP/rows.jsonl
: >"$ROWS"
ROW_N=0

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ready URL: polls until URL answers 2xx or the server dies
wait_ready() {
    local url=$1 start=$SECONDS
    while ! curl -fsS -o /dev/null "$url" 2>/dev/null; do
        group_alive "$SERVER_PID" || { log "the server exited; its log:"; tail -n 30 "$SERVER_LOG" >&2; return 1; }
        [ $((SECONDS - start)) -lt "$READY_TIMEOUT" ] || { log "not ready after ${READY_TIMEOUT}s: $url"; tail -n 30 "$SERVER_LOG" >&2; return 1; }
        sleep 0.05
    done
}

# start_server NAME READY_URL CMD...: runs CMD in a session of its own
start_server() {
    local name=$1 ready=$2
    shift 2
    SERVER_LOG=$TMP/$name.log
    SERVER_NAME=$name
    log "starting $name: $*"
    local t0
    t0=$(date +%s.%N)
    setsid "$@" >"$SERVER_LOG" 2>&1 </dev/null &
    SERVER_PID=$!
    wait_ready "$ready"
    STARTUP_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    log "$name ready after ${STARTUP_S}s (pid $SERVER_PID)"
    IDLE_RSS_KIB=$(python3 "$HERE/rss_sampler.py" "$SERVER_PID" --once | python3 -c 'import json, sys; print(json.load(sys.stdin)["peak_rss_kib"])')
}

# check NAME URL BODY: one request with curl; must be HTTP 200
check() {
    local name=$1 url=$2 body=$3 code
    code=$(curl -sS -o "$TMP/response" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary "@$body" "$url") || code=000
    printf '%s POST %s -> HTTP %s: %s\n' "$name" "${url#http://*/}" "$code" "$(head -c 600 "$TMP/response")" >&2
    [ "$code" = 200 ] || die "$name answered HTTP $code to $url"
}

# load SERVER_LABEL ENDPOINT URL BODY: one row per load shape
load() {
    local label=$1 endpoint=$2 url=$3 body=$4 shape threads conns out
    for shape in $SHAPES; do
        threads=${shape%%:*} conns=${shape##*:}
        ROW_N=$((ROW_N + 1))
        out=$TMP/wrk-$ROW_N.txt
        log "$label $endpoint: $conns client(s), ${WARMUP}s warm-up + ${DURATION}s"
        if [ "$WARMUP" != 0 ]; then
            BENCH_BODY=$body wrk -t"$threads" -c"$conns" -d"${WARMUP}s" -s "$HERE/post.lua" "$url" >/dev/null
        fi
        python3 "$HERE/rss_sampler.py" "$SERVER_PID" "$RSS_INTERVAL" >"$out.rss" &
        SAMPLER_PID=$!
        BENCH_BODY=$body wrk -t"$threads" -c"$conns" -d"${DURATION}s" -s "$HERE/post.lua" "$url" >"$out"
        stop_sampler
        sed -n '/^WRK_JSON/!p' "$out" | sed 's/^/    /' >&2
        python3 "$HERE/report.py" row "$ROWS" server="$label" endpoint="$endpoint" clients="$conns" \
            threads="$threads" startup_s="$STARTUP_S" idle_rss_kib="$IDLE_RSS_KIB" \
            --wrk "$out" --rss "$out.rss"
    done
}

# load_grpc SERVER_LABEL ADDR BODY: one row per load shape, with
# serve-bench's gRPC load generator (ModelInfer, raw contents) in wrk's place
load_grpc() {
    local label=$1 addr=$2 body=$3 shape conns out
    for shape in $SHAPES; do
        conns=${shape##*:}
        ROW_N=$((ROW_N + 1))
        out=$TMP/grpc-$ROW_N.txt
        log "$label gRPC ModelInfer: $conns client(s), ${WARMUP}s warm-up + ${DURATION}s"
        python3 "$HERE/rss_sampler.py" "$SERVER_PID" "$RSS_INTERVAL" >"$out.rss" &
        SAMPLER_PID=$!
        # The warm-up is part of the same run (not counted); the sampler
        # sees it too.
        "$HELPER" grpc-load "$addr" "$MODEL" "$body" "$conns" "$DURATION" "$WARMUP" >"$out"
        stop_sampler
        python3 "$HERE/report.py" row "$ROWS" server="$label" endpoint="gRPC ModelInfer" clients="$conns" \
            threads=0 startup_s="$STARTUP_S" idle_rss_kib="$IDLE_RSS_KIB" \
            --wrk "$out" --rss "$out.rss"
    done
}

MLFLOW_VERSION=
MLFLOW_DEFAULT_WORKERS=
if need_mlflow; then
    MLFLOW_VERSION=$("$VENV/bin/python" -c 'import mlflow; print(mlflow.__version__)')
    # MLflow runs `exec uvicorn ... [--workers N] mlflow.pyfunc.scoring_server.app:app`
    # from the venv's PATH; numpy is left to its defaults except the
    # OpenBLAS overrides some machines set (they slow a current numpy).
    mlflow_serve() { # mlflow_serve NAME [--workers N]
        local name=$1 port
        shift
        port=$(free_port)
        MLFLOW_URL=http://127.0.0.1:$port
        start_server "$name" "$MLFLOW_URL/ping" \
            env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE -u MLFLOW_MODELS_WORKERS -u WEB_CONCURRENCY \
            PATH="$VENV/bin:$PATH" MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true \
            "$VENV/bin/mlflow" models serve -m "$TMP/mlflow-model" --env-manager local \
            -p "$port" -h 127.0.0.1 "$@"
        MLFLOW_CMD=$(sed -n "s/.*Running command '\(.*\)'.*/\1/p" "$SERVER_LOG" | head -n 1)
        log "MLflow runs: $MLFLOW_CMD"
    }
    workers_of() { # the --workers of uvicorn's command line; uvicorn's default is 1
        local w
        w=$(printf '%s\n' "$1" | sed -n 's/.*--workers \([0-9][0-9]*\).*/\1/p')
        echo "${w:-1}"
    }
    plural() { [ "$1" = 1 ] && echo "1 worker" || echo "$1 workers"; }

    mlflow_serve mlflow
    MLFLOW_DEFAULT_WORKERS=$(workers_of "$MLFLOW_CMD")
    MLFLOW_DEFAULT_CMD=$MLFLOW_CMD
    label="mlflow $MLFLOW_VERSION (uvicorn, $(plural "$MLFLOW_DEFAULT_WORKERS"), default)"
    check mlflow "$MLFLOW_URL/invocations" "$TMP/body-mlflow.json"
    load "$label" "POST /invocations" "$MLFLOW_URL/invocations" "$TMP/body-mlflow.json"
    stop_server

    if [ "$MLFLOW_EXTRA_WORKERS" != 0 ] && [ "$MLFLOW_DEFAULT_WORKERS" -lt "$MLFLOW_EXTRA_WORKERS" ]; then
        mlflow_serve "mlflow-w$MLFLOW_EXTRA_WORKERS" --workers "$MLFLOW_EXTRA_WORKERS"
        label="mlflow $MLFLOW_VERSION (uvicorn, $(plural "$(workers_of "$MLFLOW_CMD")"))"
        check mlflow "$MLFLOW_URL/invocations" "$TMP/body-mlflow.json"
        load "$label" "POST /invocations" "$MLFLOW_URL/invocations" "$TMP/body-mlflow.json"
        stop_server
    fi
fi

SLUICE_VERSION=
if [ "$SLUICE_OK" = 1 ]; then
    SLUICE_VERSION=$("$SLUICE" --version)
    label="sluice serve ${SLUICE_VERSION#sluice }${SLUICE_ARGS:+ ($SLUICE_ARGS)}"
    # A fresh server per endpoint, as MLflow gets one per configuration, so
    # that one endpoint's peak memory is not carried into the next's rows.
    # sluice_serve NAME: the one place that knows `sluice serve`'s flags.
    sluice_serve() {
        local port
        port=$(free_port)
        url=http://127.0.0.1:$port
        grpc_port=$(free_port)
        # shellcheck disable=SC2086
        start_server "$1" "$url/v2/health/ready" \
            "$SLUICE" serve --model "$MODEL@production" --store "$TMP/store" --addr "127.0.0.1:$port" \
            --grpc-addr "127.0.0.1:$grpc_port" $SLUICE_ARGS
        grep -q "^listening on http://127.0.0.1:$port\$" "$SERVER_LOG" ||
            log "WARNING: $1 printed no \`listening on http://127.0.0.1:$port\` line"
    }
    # the metrics a row can't see from the client: request-log writes and drops
    sluice_metrics() {
        curl -fsS "$url/metrics" 2>/dev/null | grep -E '^sluice_(requests_total|request_errors_total|logged|log_)' | sed 's/^/    /' >&2 || true
    }
    sluice_serve sluice-invocations
    check sluice "$url/invocations" "$TMP/body-mlflow.json"
    check sluice "$url/v2/models/$MODEL/infer" "$TMP/body-v2.json"
    load "$label" "POST /invocations" "$url/invocations" "$TMP/body-mlflow.json"
    sluice_metrics
    stop_server
    sluice_serve sluice-v2
    check sluice "$url/v2/models/$MODEL/infer" "$TMP/body-v2.json"
    load "$label" "POST /v2/models/$MODEL/infer" "$url/v2/models/$MODEL/infer" "$TMP/body-v2.json"
    sluice_metrics
    stop_server
    sluice_serve sluice-grpc
    load_grpc "$label" "127.0.0.1:$grpc_port" "$TMP/body-v2.json"
    sluice_metrics
    stop_server

    # The ceiling: a bare hyper server that reads the same request and
    # answers a fixed one-row response, under the same wrk load.
    port=$(free_port)
    start_server hyper-hello "http://127.0.0.1:$port/" "$HELPER" hello "127.0.0.1:$port"
    load "bare hyper (ceiling)" "POST /v2/models/$MODEL/infer" \
        "http://127.0.0.1:$port/v2/models/$MODEL/infer" "$TMP/body-v2.json"
    stop_server
fi

[ -s "$ROWS" ] || die "nothing was measured"

# ---- 6. report ---------------------------------------------------------------------
mkdir -p "$HERE/results"
META=$TMP/meta.json
B_LOAD_START=$LOAD_AT_START B_ROOT=$ROOT B_DURATION=$DURATION B_WARMUP=$WARMUP B_SHAPES=$SHAPES B_RSS_INTERVAL=$RSS_INTERVAL \
B_VENV=$VENV B_MLFLOW_VERSION=$MLFLOW_VERSION B_MLFLOW_WORKERS=$MLFLOW_DEFAULT_WORKERS \
B_MLFLOW_CMD=${MLFLOW_DEFAULT_CMD:-} B_SLUICE_VERSION=$SLUICE_VERSION B_SLUICE=$SLUICE \
B_SLUICE_ARGS=$SLUICE_ARGS B_CPU_PROBE="$CPU_PROBE_START $(cpu_probe)" B_STOPS=$(cat "$TMP/stops.txt" 2>/dev/null) \
    python3 - "$META" <<'EOF'
import json, os, platform, subprocess, sys, time
e = os.environ
def sh(*cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=e["B_ROOT"])
        return (p.stdout.strip() or p.stderr.strip())
    except OSError:
        return ""
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
py = os.path.join(e["B_VENV"], "bin", "python")
mlflow = e["B_MLFLOW_VERSION"]
json.dump({
    "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    "git_commit": sh("git", "rev-parse", "HEAD"),
    "git_dirty": bool(sh("git", "status", "--porcelain", "--untracked-files=no")),
    "cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
    "loadavg_at_start": e["B_LOAD_START"].split(),
    "loadavg_at_end": open("/proc/loadavg").read().split()[:3],
    "cpu_probe_s": dict(zip(["start", "end"], map(float, e["B_CPU_PROBE"].split()))),
    "wrk": sh("wrk", "--version").splitlines()[0],
    "duration_s": float(e["B_DURATION"]), "warmup_s": float(e["B_WARMUP"]),
    "shapes": e["B_SHAPES"].split(), "rss_interval_s": float(e["B_RSS_INTERVAL"]),
    "mlflow": {
        "version": mlflow,
        "default_workers": int(e["B_MLFLOW_WORKERS"]) if e["B_MLFLOW_WORKERS"] else None,
        "command": e["B_MLFLOW_CMD"],
        "python": sh(py, "--version") if mlflow else "",
        "scikit_learn": sh(py, "-c", "import sklearn; print(sklearn.__version__)") if mlflow else "",
    },
    "sluice": {"version": e["B_SLUICE_VERSION"], "binary": e["B_SLUICE"],
               "extra_args": e["B_SLUICE_ARGS"]},
    "server_stops": e["B_STOPS"].splitlines(),
    "notes": "cpu_probe_s: best of 3 timings of a 3M-step pure-Python loop, before and after (lower: faster cores); "
             "p50/p99 from wrk (ms); peak RSS = max over samples of the summed VmRSS of the "
             "server process and its descendants (memory.peak_pss_kib: the same with PSS); "
             "errors = non-2xx responses + socket errors + timeouts",
}, open(sys.argv[1], "w"), indent=2)
EOF
echo
echo "Served model: breast-cancer (StandardScaler + LogisticRegression C=1.0), one row per request;"
echo "wrk ${WARMUP}s warm-up + ${DURATION}s per row, $(nproc) cores shared by server and wrk;"
PROBE=$(python3 -c 'import json, sys; p = json.load(open(sys.argv[1]))["cpu_probe_s"]; print("%.3f s at the start, %.3f s at the end" % (p["start"], p["end"]))' "$META")
echo "CPU probe (3M-step Python loop, best of 3): $PROBE."
echo
python3 "$HERE/report.py" render "$ROWS" "$META" "$HERE/results/latest.json"
echo
log "wrote bench/serve/results/latest.json"
