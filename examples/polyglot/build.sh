#!/usr/bin/env bash
# Builds the Python and JavaScript steps of this example from source into
# build/ (next to this script), with the installed `sluice` (or SLUICE=…):
#   build/features.wasm  from steps/features/app.py  (componentize-py)
#   build/report.wasm    from steps/report/app.js    (componentize-js)
# Needs: pip install componentize-py==0.25.1; node >= 20 with npm (the
# pinned componentize-js and jco are installed in sluice's cache on first
# use). Unchanged sources keep their components.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sluice=${SLUICE:-sluice}
"$sluice" component build "$here/steps/features" -o "$here/build/features.wasm"
"$sluice" component build "$here/steps/report" -o "$here/build/report.wasm"
