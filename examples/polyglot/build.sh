#!/usr/bin/env bash
# Builds the Python and JavaScript steps of this example from source into
# build/ (next to this script):
#   build/features.wasm  from steps/features/app.py  (componentize-py)
#   build/report.wasm    from steps/report/app.js    (componentize-js)
# Needs: pip install componentize-py==0.25.1; node >= 20 (sdk/js's npm
# packages are installed on first use).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sdk=$here/../../sdk
mkdir -p "$here/build"
"$sdk/python/build.sh" "$here/steps/features" "$here/build/features.wasm"
"$sdk/js/build.sh" "$here/steps/report" "$here/build/report.wasm"
