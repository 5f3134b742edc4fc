"""Trains the models users bring and exports them the way their tools do by
default, then records onnxruntime's answers for the same rows.

    python3 exporters.py OUT_DIR

Run by sluice-ml's test `standard_exports_run_as_onnxruntime_runs_them`
(with scikit-learn, skl2onnx, onnxmltools, xgboost, lightgbm and onnxruntime
from PyPI). Writes OUT_DIR/<name>.onnx for each model and
OUT_DIR/reference.json:

    {"models": {name: {"file", "rows": [[...]], "outputs": {output: values}}}}

where a ZipMap output (a list of {class: probability} maps) is recorded as
the [N, C] matrix of its values in the model's class order.
"""

import json
import os
import sys
import warnings

import numpy as np
import onnxruntime as ort
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    MinMaxScaler,
    Normalizer,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)

warnings.filterwarnings("ignore")
out = sys.argv[1]
os.makedirs(out, exist_ok=True)

cancer_x, cancer_y = load_breast_cancer(return_X_y=True)
iris_x, iris_y = load_iris(return_X_y=True)
diab_x, diab_y = load_diabetes(return_X_y=True)
cancer_x, iris_x, diab_x = (a.astype(np.float32) for a in (cancer_x, iris_x, diab_x))
# Two integer-coded categorical columns beside a numeric one, one-hot
# encoded inside the pipeline.
rng = np.random.default_rng(0)
mixed_x = np.c_[rng.integers(0, 4, 400), rng.normal(size=400), rng.integers(0, 3, 400)].astype(np.float32)
mixed_y = ((mixed_x[:, 0] == 2) ^ (mixed_x[:, 1] > 0)).astype(int)
# The same rows and two with categories the encoders never saw (4 and 9):
# one-hot gives zeros, the ordinal encoder its unknown value.
mixed_unseen = np.r_[mixed_x, [[4, 0.5, 1], [2, -0.3, 9]]].astype(np.float32)
# Rows with a missing value exercise the imputer and the trees' NaN branches.
iris_nan = iris_x.copy()
iris_nan[::7, 2] = np.nan

sk = {
    "logreg_default": (LogisticRegression(max_iter=5000).fit(cancer_x, cancer_y), cancer_x),
    "scaler_logreg_pipeline": (
        make_pipeline(StandardScaler(), LogisticRegression()).fit(cancer_x, cancer_y),
        cancer_x,
    ),
    "imputer_minmax_normalizer_logreg": (
        make_pipeline(SimpleImputer(), MinMaxScaler(), Normalizer(), LogisticRegression()).fit(
            iris_x, iris_y
        ),
        iris_nan,
    ),
    "onehot_scaler_logreg_pipeline": (
        make_pipeline(
            ColumnTransformer(
                [("cat", OneHotEncoder(handle_unknown="ignore"), [0, 2]), ("num", StandardScaler(), [1])]
            ),
            LogisticRegression(),
        ).fit(mixed_x, mixed_y),
        mixed_unseen,
    ),
    # OrdinalEncoder exports as one LabelEncoder (float keys to int64
    # codes) per column.
    "ordinal_scaler_logreg_pipeline": (
        make_pipeline(
            ColumnTransformer(
                [
                    (
                        "cat",
                        OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                        [0, 2],
                    ),
                    ("num", StandardScaler(), [1]),
                ]
            ),
            LogisticRegression(),
        ).fit(mixed_x, mixed_y),
        mixed_unseen,
    ),
    "gradient_boosting_binary": (
        GradientBoostingClassifier(n_estimators=30, random_state=0).fit(cancer_x, cancer_y),
        cancer_x,
    ),
    "gradient_boosting_multiclass": (
        GradientBoostingClassifier(n_estimators=20, random_state=0).fit(iris_x, iris_y),
        iris_x,
    ),
    "random_forest_binary": (
        RandomForestClassifier(n_estimators=25, max_depth=8, random_state=0).fit(cancer_x, cancer_y),
        cancer_x,
    ),
    "random_forest_multiclass": (
        RandomForestClassifier(n_estimators=25, random_state=0).fit(iris_x, iris_y),
        iris_x,
    ),
    "random_forest_regressor": (
        RandomForestRegressor(n_estimators=25, max_depth=8, random_state=0).fit(diab_x, diab_y),
        diab_x,
    ),
    "gradient_boosting_regressor": (
        GradientBoostingRegressor(n_estimators=40, random_state=0).fit(diab_x, diab_y),
        diab_x,
    ),
    "linear_regression": (LinearRegression().fit(diab_x, diab_y), diab_x),
}

models = {}
from skl2onnx import to_onnx  # noqa: E402

for name, (model, x) in sk.items():
    models[name] = (to_onnx(model, x[:1]), x)

import lightgbm  # noqa: E402
import onnxmltools  # noqa: E402
import xgboost  # noqa: E402
from onnxmltools.convert.common.data_types import FloatTensorType  # noqa: E402


def tensor(x):
    return [("input", FloatTensorType([None, x.shape[1]]))]


boosters = {
    "xgboost_binary": (xgboost.XGBClassifier(n_estimators=30, max_depth=4, random_state=0), cancer_x, cancer_y),
    "xgboost_multiclass": (xgboost.XGBClassifier(n_estimators=15, max_depth=3, random_state=0), iris_x, iris_y),
    "xgboost_regressor": (xgboost.XGBRegressor(n_estimators=30, max_depth=4, random_state=0), diab_x, diab_y),
}
for name, (model, x, y) in boosters.items():
    model.fit(x, y)
    models[name] = (onnxmltools.convert_xgboost(model, initial_types=tensor(x)), x)

lgbm = {
    "lightgbm_binary": (lightgbm.LGBMClassifier(n_estimators=30, verbose=-1, random_state=0), cancer_x, cancer_y, cancer_x),
    "lightgbm_multiclass": (lightgbm.LGBMClassifier(n_estimators=15, verbose=-1, random_state=0), iris_x, iris_y, iris_nan),
    "lightgbm_regressor": (lightgbm.LGBMRegressor(n_estimators=30, verbose=-1, random_state=0), diab_x, diab_y, diab_x),
}
for name, (model, x, y, rows) in lgbm.items():
    model.fit(x, y)
    models[name] = (onnxmltools.convert_lightgbm(model, initial_types=tensor(x)), rows)

reference = {}
for name, (onx, x) in models.items():
    path = os.path.join(out, f"{name}.onnx")
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    results = session.run(None, feed)
    outputs = {}
    for meta, value in zip(session.get_outputs(), results):
        if isinstance(value, list):  # ZipMap: a list of {class: probability}
            keys = list(value[0].keys())
            value = [[row[k] for k in keys] for row in value]
        else:
            value = np.asarray(value)
            value = value.tolist() if value.dtype.kind != "f" else value.astype(float).tolist()
        outputs[meta.name] = value
    reference[name] = {
        "file": f"{name}.onnx",
        "ops": sorted({n.op_type for n in onx.graph.node}),
        "rows": [[None if np.isnan(v) else float(v) for v in row] for row in x],
        "outputs": outputs,
    }

with open(os.path.join(out, "reference.json"), "w") as f:
    json.dump({"models": reference}, f)
print(f"exported {len(reference)} models to {out}")
