"""scikit-learn's tree models and onnxruntime beside sluice-ml's trees.

    python3 compare_trees.py DIR

Reads DIR/cases.json, written by sluice-ml's test
`tree_models_match_scikit_learn_and_onnxruntime_runs_their_exports`:

    {name: {"task", "train_x", "train_y", "test_x", "test_y", "onnx"}}

For each case trains the scikit-learn model of the same kind with its
defaults (HistGradientBoosting*, RandomForest* with random_state=0) on the
same rows and scores it on the test rows (accuracy or R²), and runs
sluice's exported ONNX file through onnxruntime on the test rows. Writes
DIR/answers.json: {name: {"sklearn_score", "onnxruntime": {output: values}}}.
"""

import json
import os
import sys

import numpy as np
import onnxruntime as ort
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

out = sys.argv[1]
with open(os.path.join(out, "cases.json")) as f:
    cases = json.load(f)
models = {
    "gradient_boosting_classifier": lambda: HistGradientBoostingClassifier(random_state=0),
    "gradient_boosting_regressor": lambda: HistGradientBoostingRegressor(random_state=0),
    "random_forest_classifier": lambda: RandomForestClassifier(random_state=0),
    "random_forest_regressor": lambda: RandomForestRegressor(random_state=0),
}
answers = {}
for name, case in cases.items():
    train_x, test_x = np.array(case["train_x"]), np.array(case["test_x"])
    train_y, test_y = np.array(case["train_y"]), np.array(case["test_y"])
    model = models[case["algorithm"]]().fit(train_x, train_y)
    score = float(model.score(test_x, test_y))
    session = ort.InferenceSession(os.path.join(out, case["onnx"]), providers=["CPUExecutionProvider"])
    results = session.run(None, {"input": test_x.astype(np.float32)})
    outputs = {
        meta.name: np.asarray(value).astype(float).tolist()
        for meta, value in zip(session.get_outputs(), results)
    }
    answers[name] = {"sklearn_score": score, "onnxruntime": outputs}
with open(os.path.join(out, "answers.json"), "w") as f:
    json.dump(answers, f)
