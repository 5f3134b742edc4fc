#!/usr/bin/env bash
# The team store beside the local one (bench/src/bin/team-bench.rs): builds
# sluice and team-bench in release mode, starts a PostgreSQL server
# (scripts/postgres) and an S3-compatible server (moto) on loopback, runs
# the benchmark, and stops both. Pass --json for machine-readable results.
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build --release -p sluice-cli
cargo build --release -p sluice-bench --bin team-bench

if ! command -v moto_server >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >"${TMPDIR:-/tmp}/sluice-bench-moto-$port.log" 2>&1 &
moto_pid=$!
stop() {
    local status=$?
    kill "$moto_pid" 2>/dev/null || true
    if declare -F sluice_postgres_stop >/dev/null; then sluice_postgres_stop "$status"; fi
}
trap stop EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/" >/dev/null && break
    sleep 0.2
done
export SLUICE_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
SLUICE_REQUIRE_POSTGRES=1 . scripts/postgres

target/release/team-bench "$@"
