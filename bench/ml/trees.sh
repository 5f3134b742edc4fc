#!/bin/sh
# Tree ensembles side by side: gradient-boosting training against
# scikit-learn and LightGBM, and inference against onnxruntime on the same
# ONNX files (a random forest and LightGBM exported with their tools'
# defaults). Prints a Markdown table; see bench/ml/trees.py.
#
#   bench/ml/trees.sh [OUT_DIR]        (default target/tree-bench)
#
# Installs the exporters and onnxruntime from PyPI into a virtual
# environment (target/tree-bench-venv, or $TREE_BENCH_VENV) on first use.
set -eu
cd "$(dirname "$0")/../.."
out="${1:-target/tree-bench}"
venv="${TREE_BENCH_VENV:-target/tree-bench-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet 'scikit-learn==1.9.1' 'skl2onnx==1.20.0' 'onnxruntime==1.32.0' \
        'onnxmltools==1.16.0' 'lightgbm==4.7.0'
fi
cargo build --release -p sluice-ml --example tree_bench --example train_bench
"$venv/bin/python" bench/ml/trees.py target/release/examples/tree_bench "$out" \
    target/release/examples/train_bench
