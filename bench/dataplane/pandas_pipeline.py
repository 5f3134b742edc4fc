#!/usr/bin/env python3
"""The pandas + scikit-learn side of the data-plane benchmark: the same
stages as bench/dataplane/pipeline.toml, written the way a notebook would.

    pandas_pipeline.py DATA.csv [--label diagnosis] [--seed 7]

read_csv → describe (statistics) → checks (no missing values, two label
values: the schema and validate steps) → stratified 70/15/15 split
(train_test_split twice, on the numpy arrays, the label as 0/1) →
StandardScaler fitted on train, applied to train/eval/test → logistic
regression (C = 1, scikit-learn's default lbfgs solver and tolerance,
max_iter 1000) → metrics on test.

Prints one JSON object on stdout: the time of each stage (seconds), the
row counts, the solver's iterations and the test metrics. bench.py runs it
as a child process and measures its wall time and peak RSS from outside.
"""

import argparse
import json
import sys
import time

import numpy as np
import pandas as pd
from sklearn import metrics
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--label", default="diagnosis")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()

    phases = {}
    t = time.perf_counter()

    def lap(name):
        nonlocal t
        now = time.perf_counter()
        phases[name] = now - t
        t = now

    df = pd.read_csv(a.data)
    lap("read_csv")
    stats = df.describe(include="all")
    lap("statistics")
    features = [c for c in df.columns if c != a.label]
    missing = int(df.isna().sum().sum())
    classes = sorted(df[a.label].unique())
    if missing or len(classes) != 2:
        raise SystemExit(f"validation failed: {missing} missing values, classes {classes}")
    lap("validate")
    y = (df[a.label] == classes[1]).to_numpy()
    x = df[features].to_numpy()
    del df
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, train_size=0.7, stratify=y, random_state=a.seed
    )
    x_eval, x_test, y_eval, y_test = train_test_split(
        x_rest, y_rest, train_size=0.5, stratify=y_rest, random_state=a.seed
    )
    del x, x_rest
    lap("split")
    scaler = StandardScaler().fit(x_train)
    x_train = scaler.transform(x_train)
    x_eval = scaler.transform(x_eval)
    x_test = scaler.transform(x_test)
    lap("transform")
    model = LogisticRegression(C=1.0, max_iter=1000).fit(x_train, y_train)
    lap("train")
    proba = model.predict_proba(x_test)[:, 1]
    pred = proba > 0.5
    result = {
        "accuracy": metrics.accuracy_score(y_test, pred),
        "precision": metrics.precision_score(y_test, pred, zero_division=0),
        "recall": metrics.recall_score(y_test, pred, zero_division=0),
        "f1": metrics.f1_score(y_test, pred, zero_division=0),
        "roc_auc": metrics.roc_auc_score(y_test, proba),
        "log_loss": metrics.log_loss(y_test, np.clip(proba, 1e-15, 1 - 1e-15)),
    }
    lap("evaluate")
    json.dump(
        {
            "phases_s": phases,
            "rows": {"train": len(y_train), "eval": len(y_eval), "test": len(y_test)},
            "features": features,
            "statistics_columns": len(stats.columns),
            "n_iter": int(model.n_iter_[0]),
            "metrics": result,
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
