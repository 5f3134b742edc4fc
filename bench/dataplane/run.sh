#!/bin/sh
# The data-plane benchmark: sluice against pandas + scikit-learn on
# synthetic breast-cancer CSVs of 1M, 5M (and optionally 20M) rows.
# See bench/dataplane/README.md.
#
#   bench/dataplane/run.sh [--sizes 1M,5M,20M] [--out DIR] [--sluice PATH]
#                          [--data-dir DIR] [--seed N] [--timeout S] [--keep]
#
# Makes a virtual environment (target/dataplane-venv, or $DATAPLANE_VENV)
# from requirements.txt on first use, builds the release `sluice` unless
# --sluice is given or DATAPLANE_NO_BUILD=1 (a failed build falls back to an
# existing target/release/sluice, or runs the pandas side alone), then runs
# bench.py. Results: OUT/results.md and OUT/results.json (default
# OUT = target/dataplane).
set -eu
cd "$(dirname "$0")/../.."
venv="${DATAPLANE_VENV:-target/dataplane-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import numpy, pandas, sklearn, pyarrow' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet -r bench/dataplane/requirements.txt
fi

extra=""
case " $* " in
*" --sluice "* | *" --sluice="*) ;;
*)
    if [ "${DATAPLANE_NO_BUILD-0}" != 1 ]; then
        echo "[dataplane] cargo build --release -p sluice-cli" >&2
        if ! cargo build --release -p sluice-cli >&2; then
            if [ -x target/release/sluice ]; then
                echo "[dataplane] WARNING: the build failed; measuring the existing target/release/sluice" >&2
            else
                echo "[dataplane] WARNING: the build failed and there is no target/release/sluice; pandas side only" >&2
                extra="--sluice-error=cargo_build_failed_and_no_binary"
            fi
        fi
    fi
    ;;
esac
exec "$venv/bin/python" bench/dataplane/bench.py $extra "$@"
