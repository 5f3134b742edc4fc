#!/usr/bin/env bash
# Builds a sluice step component from plain JavaScript source.
#
#   sdk/js/build.sh SRC_DIR OUT.wasm
#
# SRC_DIR holds `app.js` (set STEP_MODULE to use another file) whose default
# export is a `Step` subclass from "sluice-sdk", plus any modules it imports.
# Needs node >= 20 and this folder's npm packages (`npm ci` in sdk/js; the
# script runs it on first use).
#
# What it runs: a staging copy of SRC_DIR gets a generated entry module
# that exports the step's `describe` and `run`; then
#   jco componentize sluice_step_entry.js --bundle --bundle-config sdk/js/bundle.config.js \
#       -w wit -n step -d http fetch-event -o OUT.wasm
# `--bundle` inlines the SDK (bundle.config.js maps "sluice-sdk" to
# sdk/js/sluice.js); `-d http fetch-event` leaves out wasi:http, which the
# sluice sandbox does not grant.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 SRC_DIR OUT.wasm" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
out=$2
module=${STEP_MODULE:-app.js}
sdk=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
wit=$(cd "${SLUICE_WIT:-$sdk/../../wit}" && pwd)

if ! command -v node >/dev/null 2>&1; then
  echo "error: node not found; install Node.js >= 20" >&2
  exit 127
fi
if [ ! -x "$sdk/node_modules/.bin/jco" ]; then
  echo "installing the JS toolchain (npm ci in $sdk) ..." >&2
  (cd "$sdk" && npm ci --no-audit --no-fund >&2)
fi
if [ ! -f "$src/$module" ]; then
  echo "error: no $module in $src" >&2
  exit 2
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
(cd "$src" && tar --exclude=./node_modules -cf - .) | (cd "$stage" && tar -xf -)
cat > "$stage/sluice_step_entry.js" <<JS
import step from "./$module";
import { exportStep } from "sluice-sdk";
const world = exportStep(step);
export function describe() { return world.describe(); }
export function run() { return world.run(); }
JS

mkdir -p "$(dirname "$out")"
out_abs=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
(cd "$stage" && "$sdk/node_modules/.bin/jco" componentize sluice_step_entry.js \
  --bundle --bundle-config "$sdk/bundle.config.js" -w "$wit" -n step -d http fetch-event -o "$out_abs" >/dev/null)
echo "built $out ($(wc -c < "$out_abs") bytes)"
