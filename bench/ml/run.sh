#!/bin/sh
# sluice-ml against scikit-learn and onnxruntime on the breast-cancer data:
# training time (logistic regression, MLP) and inference throughput (tract
# vs onnxruntime on the same exported ONNX files). Prints a Markdown table.
#
#   bench/ml/run.sh [OUT_DIR]        (default target/ml-bench)
#
# Installs scikit-learn and onnxruntime from PyPI into a virtual
# environment (target/ml-bench-venv, or $ML_BENCH_VENV) on first use.
set -eu
cd "$(dirname "$0")/../.."
out="${1:-target/ml-bench}"
venv="${ML_BENCH_VENV:-target/ml-bench-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet scikit-learn onnxruntime threadpoolctl
fi
cargo build --release -p sluice-bench --bin ml-bench
# glibc returns freed memory above 128 KiB to the kernel at once, so an
# inference that allocates a few hundred KiB of activations takes fresh page
# faults on every call, and its time doubles and scatters (onnxruntime's
# arena allocator keeps its memory). Both sides run with the thresholds
# raised, as a server would set them (or use a caching allocator); unset
# ML_BENCH_TUNE_MALLOC to measure glibc's defaults.
if [ "${ML_BENCH_TUNE_MALLOC-1}" = 1 ]; then
    export MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=67108864
fi
target/release/ml-bench "$out" >/dev/null
# Some machines set these for old OpenBLAS builds; they slow a current
# numpy, so they are unset for the comparison (threadpoolctl reports the
# kernel in use in the table's first line).
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$venv/bin/python" bench/ml/compare.py "$out"
