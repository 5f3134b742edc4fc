#!/usr/bin/env python3
"""Synthetic versions of the Wisconsin breast-cancer data for the data-plane
benchmark: N rows resampled (with replacement) from the 569 real ones, with
Gaussian noise added to each feature, deterministic for a seed.

    generate.py ROWS OUT.csv [--seed 42] [--noise 0.05] [--source CSV]

Columns: the 8 `mean_*` features radius … concave_points of
examples/breast-cancer/data/breast_cancer.csv and its text label
`diagnosis` (benign / malignant), as the breast-cancer example uses it.
Each feature value is the sampled row's value plus N(0, (noise·σ)²), σ the
feature's standard deviation over the 569 rows, clipped at 0 (every
measurement is non-negative), and rounded to a tenth of the noise's scale
(at least one decimal) so the file stays about 60 bytes a row.

Rows are made and written a chunk (1M rows) at a time with numpy and
pyarrow's CSV writer, so memory stays small and 20M rows (about 1.2 GB) take
well under a minute. The file is written to OUT.csv.tmp and renamed, so an
interrupted run leaves no half file behind.
"""

import argparse
import math
import os
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

FEATURES = [
    "mean_radius",
    "mean_texture",
    "mean_perimeter",
    "mean_area",
    "mean_smoothness",
    "mean_compactness",
    "mean_concavity",
    "mean_concave_points",
]
LABEL = "diagnosis"
CHUNK = 1_000_000
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "..", "examples", "breast-cancer", "data", "breast_cancer.csv")


def parse_rows(text):
    """'100K', '1M', '2.5M', '20000000' -> int."""
    t = text.strip().upper()
    mult = 1
    if t.endswith("K"):
        mult, t = 1_000, t[:-1]
    elif t.endswith("M"):
        mult, t = 1_000_000, t[:-1]
    n = int(round(float(t) * mult))
    if n <= 0:
        raise ValueError(f"not a positive row count: {text}")
    return n


def load_source(path):
    import csv

    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    x = np.array([[float(r[c]) for c in FEATURES] for r in rows], dtype=np.float64)
    y = np.array([r[LABEL] for r in rows], dtype=object)
    return x, y


def generate(n, out, seed=42, noise=0.05, source=SOURCE):
    x, y = load_source(source)
    std = x.std(axis=0, ddof=1)
    scale = noise * std
    # Round to a tenth of the noise scale: the rounding error is ~3 % of the noise.
    decimals = [max(1, math.ceil(-math.log10(s)) + 1) for s in scale]
    labels = pa.array(y.tolist(), pa.string())
    rng = np.random.default_rng(seed)
    tmp = out + ".tmp"
    schema = pa.schema([(c, pa.float64()) for c in FEATURES] + [(LABEL, pa.string())])
    # Arrow quotes the header's names whatever the quoting style: write it here.
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with open(tmp, "wb") as sink, pacsv.CSVWriter(sink, schema, write_options=options) as writer:
        sink.write((",".join(FEATURES + [LABEL]) + "\n").encode())
        done = 0
        while done < n:
            m = min(CHUNK, n - done)
            idx = rng.integers(0, len(x), size=m)
            values = x[idx] + rng.standard_normal((m, len(FEATURES))) * scale
            np.maximum(values, 0.0, out=values)
            cols = [pa.array(np.round(values[:, j], decimals[j])) for j in range(len(FEATURES))]
            cols.append(labels.take(pa.array(idx)))
            writer.write_table(pa.Table.from_arrays(cols, schema=schema))
            done += m
    os.replace(tmp, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rows", help="row count: 100K, 1M, 20M or a plain number")
    ap.add_argument("out", help="the CSV file to write")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--noise", type=float, default=0.05, help="noise std as a fraction of each feature's std")
    ap.add_argument("--source", default=SOURCE)
    a = ap.parse_args()
    n = parse_rows(a.rows)
    t0 = time.perf_counter()
    generate(n, a.out, a.seed, a.noise, a.source)
    dt = time.perf_counter() - t0
    size = os.path.getsize(a.out)
    print(f"wrote {n} rows ({size / 1e6:.1f} MB) to {a.out} in {dt:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
