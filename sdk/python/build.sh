#!/usr/bin/env bash
# Builds a sluice step component from plain Python source.
#
#   sdk/python/build.sh SRC_DIR OUT.wasm
#
# SRC_DIR holds `app.py` (set STEP_MODULE to use another module name) with
# exactly one `sluice_sdk.Step` subclass, plus any pure-Python modules it
# imports. Needs `componentize-py` (pip install componentize-py==0.25.1).
#
# What it runs (the same command works by hand):
#   componentize-py -d wit -w step componentize sluice_step_entry \
#       -p ENTRY_DIR -p SRC_DIR -p sdk/python -o OUT.wasm
# where ENTRY_DIR/sluice_step_entry.py is the three generated lines below
# (the script passes staged copies of SRC_DIR and sdk/python instead).
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 SRC_DIR OUT.wasm" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
out=$2
module=${STEP_MODULE:-app}
sdk=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
wit=${SLUICE_WIT:-$sdk/../../wit}

if ! command -v componentize-py >/dev/null 2>&1; then
  echo "error: componentize-py not found; install it with: pip install componentize-py==0.25.1" >&2
  exit 127
fi
if [ ! -f "$src/$module.py" ] && [ ! -f "$src/$module/__init__.py" ]; then
  echo "error: no module \`$module\` in $src (expected $src/$module.py)" >&2
  exit 2
fi

# Stage copies of the step's folder and the SDK, so that the build (which
# imports the modules and writes __pycache__) leaves the sources untouched.
entry=$(mktemp -d)
trap 'rm -rf "$entry"' EXIT
mkdir -p "$entry/src" "$entry/sdk"
(cd "$src" && tar --exclude=__pycache__ --exclude='*.wasm' -cf - .) | (cd "$entry/src" && tar -xf -)
(cd "$sdk" && tar --exclude=__pycache__ -cf - sluice_sdk) | (cd "$entry/sdk" && tar -xf -)
cat > "$entry/sluice_step_entry.py" <<PY
import $module as _app
from sluice_sdk._export import world_for
WitWorld = world_for(_app)
PY

mkdir -p "$(dirname "$out")"
# Run from the entry dir so that componentize-py's default search path (.)
# picks up nothing else; -p lists exactly what goes into the component.
out_abs=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
(cd "$entry" && componentize-py -q -d "$wit" -w step componentize sluice_step_entry \
  -p "$entry" -p "$entry/src" -p "$entry/sdk" -o "$out_abs")
echo "built $out ($(wc -c < "$out_abs") bytes)"
