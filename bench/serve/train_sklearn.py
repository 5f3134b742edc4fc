"""Trains the scikit-learn twin of the breast-cancer pipeline's model and
saves it as an MLflow model, for `mlflow models serve`. Called by
bench/serve/run.sh.

    python bench/serve/train_sklearn.py OUT_DIR [--csv PATH] [--row N] [--bodies-only]

Writes OUT_DIR/mlflow-model (mlflow.sklearn.save_model, with a signature and
an input example) and the two request bodies used by the load test, both
made from row N (default 0) of the CSV's features:

    OUT_DIR/body-mlflow.json  {"dataframe_split": {"columns": [...], "data": [[...]]}}
    OUT_DIR/body-v2.json      Open Inference Protocol v2: one FP64 input of shape [1] per feature

Model: Pipeline([StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)])
fitted on every row (what is measured is serving, not accuracy). The label
column is `diagnosis`; the 30 other columns are the numeric features.
--bodies-only writes the two bodies and nothing else (stdlib only: no
MLflow needed).
"""

import argparse
import csv
import json
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LABEL = "diagnosis"


def write_bodies(csv_path, row_index, out):
    """The request bodies. The values are the CSV's text parsed as float64
    and printed back by json (shortest round-trip form): both servers get
    the same numbers."""
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    header, row = rows[0], rows[1 + row_index]
    if LABEL not in header:
        sys.exit(f"{csv_path}: no `{LABEL}` column")
    features = [name for name in header if name != LABEL]
    values = {name: float(v) for name, v in zip(header, row) if name != LABEL}
    with open(os.path.join(out, "body-mlflow.json"), "w") as f:
        json.dump(
            {"dataframe_split": {"columns": features, "data": [[values[n] for n in features]]}},
            f,
            separators=(",", ":"),
        )
    with open(os.path.join(out, "body-v2.json"), "w") as f:
        json.dump(
            {"inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [values[n]]} for n in features]},
            f,
            separators=(",", ":"),
        )


def train(csv_path, row_index, out):
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    import sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    df = pd.read_csv(csv_path)
    features = [c for c in df.columns if c != LABEL]
    x = df[features].astype("float64")
    y = df[LABEL].astype(str)

    model = Pipeline([
        ("scale", StandardScaler()),
        ("logreg", LogisticRegression(C=1.0, max_iter=1000)),
    ])
    model.fit(x, y)

    example = x.iloc[[row_index]]
    signature = infer_signature(example, model.predict(example))
    path = os.path.join(out, "mlflow-model")
    mlflow.sklearn.save_model(model, path, signature=signature, input_example=example)

    acc = float((model.predict(x) == y).mean())
    print(
        f"trained Pipeline(StandardScaler, LogisticRegression C=1.0) on {len(df)} rows x "
        f"{len(features)} features (training accuracy {acc:.4f}); scikit-learn {sklearn.__version__}, "
        f"mlflow {mlflow.__version__}; saved {path}; request row {row_index} "
        f"(label {y.iloc[row_index]}, predicted {model.predict(example)[0]})"
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--csv", default=os.path.join(ROOT, "examples", "breast-cancer", "data", "breast_cancer.csv"))
    ap.add_argument("--row", type=int, default=0)
    ap.add_argument("--bodies-only", action="store_true")
    args = ap.parse_args()
    write_bodies(args.csv, args.row, args.out)
    if not args.bodies_only:
        train(args.csv, args.row, args.out)


if __name__ == "__main__":
    main()
