#!/usr/bin/env python3
"""Plays clients of the served model, and the world changing under it.

    traffic.py URL [--shift FACTOR] [--columns a,b] [--write-data PATH]

Sends every row of the breast-cancer data, in a shuffled order, to URL's Open Inference Protocol
endpoint in requests of ten rows. With --shift, the named columns (default
mean_radius and mean_texture: tumours measured by a newly calibrated
instrument) are multiplied by FACTOR first; with --write-data, the same
shifted rows, with their labels, are written as the new training data.
Standard library only.
"""

import argparse
import csv
import json
import pathlib
import random
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parent / "breast-cancer" / "data" / "breast_cancer.csv"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--shift", type=float, default=1.0)
    p.add_argument("--columns", default="mean_radius,mean_texture")
    p.add_argument("--write-data")
    a = p.parse_args()
    shifted = set(a.columns.split(","))
    with open(DATA, newline="") as f:
        rows = list(csv.DictReader(f))
    features = [c for c in rows[0] if c != "diagnosis"]
    # Patients arrive in no particular order (the file's order is not random).
    random.Random(7).shuffle(rows)
    for r in rows:
        for c in shifted:
            r[c] = str(float(r[c]) * a.shift)
    if a.write_data:
        with open(a.write_data, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    answers = {}
    for k in range(0, len(rows), 10):
        chunk = rows[k : k + 10]
        body = {
            "inputs": [
                {"name": c, "shape": [len(chunk)], "datatype": "FP64", "data": [float(r[c]) for r in chunk]}
                for c in features
            ]
        }
        req = urllib.request.Request(
            a.url.rstrip("/") + "/v2/models/breast-cancer/infer",
            json.dumps(body).encode(),
            {"content-type": "application/json"},
        )
        with urllib.request.urlopen(req) as resp:
            out = json.loads(resp.read())
        labels = next(o["data"] for o in out["outputs"] if o["name"] == "prediction")
        for label in labels:
            answers[label] = answers.get(label, 0) + 1
    print(f"sent {len(rows)} rows; answers: {answers}")


if __name__ == "__main__":
    main()
