"""Trains models on the breast-cancer CSV the way a scikit-learn, XGBoost or
LightGBM user does, and exports them with their tools' defaults.

    python3 sklearn_exports.py CSV OUT_DIR

Writes OUT_DIR/<name>.onnx and OUT_DIR/reference.json: for each model,
onnxruntime's probability of `benign` for every row of the CSV. The classes
are [malignant, benign] (0 and 1), the features the CSV's other columns, in
order. The scikit-learn pipeline holds its StandardScaler, so the graph
takes raw columns.
"""

import csv
import json
import os
import sys
import warnings

import numpy as np
import onnxruntime as ort
from skl2onnx import to_onnx
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

warnings.filterwarnings("ignore")
path, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
with open(path) as f:
    rows = list(csv.reader(f))
header, rows = rows[0], rows[1:]
label = header.index("diagnosis")
x = np.array([[float(v) for i, v in enumerate(r) if i != label] for r in rows], dtype=np.float32)
y = np.array([1 if r[label] == "benign" else 0 for r in rows])

models = {
    "bc-sklearn-pipeline": make_pipeline(StandardScaler(), LogisticRegression()),
    "bc-gradient-boosting": GradientBoostingClassifier(n_estimators=40, random_state=0),
    "bc-random-forest": RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0),
}
reference = {}
for name, model in models.items():
    model.fit(x, y)
    onx = to_onnx(model, x[:1])  # the defaults: ZipMap included
    file = os.path.join(out, f"{name}.onnx")
    with open(file, "wb") as f:
        f.write(onx.SerializeToString())
    session = ort.InferenceSession(file, providers=["CPUExecutionProvider"])
    labels, maps = session.run(None, {session.get_inputs()[0].name: x})
    reference[name] = {
        "ops": sorted({n.op_type for n in onx.graph.node}),
        "p_benign": [float(m[1]) for m in maps],
        "labels": [int(v) for v in labels],
    }
with open(os.path.join(out, "reference.json"), "w") as f:
    json.dump(reference, f)
