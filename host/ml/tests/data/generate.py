"""Regenerates the reference data of sluice-ml's tests and the example CSVs.

Run once, by hand, with scikit-learn, skl2onnx and onnxruntime installed
(`pip install scikit-learn skl2onnx onnxruntime`); the outputs are
committed, so the tests need no Python:

    python3 host/ml/tests/data/generate.py

Writes:
  examples/breast-cancer/data/breast_cancer.csv   load_breast_cancer, label `diagnosis`
  examples/diabetes/data/diabetes.csv             load_diabetes(scaled=False), label `progression`
  host/ml/tests/data/logistic_reference.json      sklearn LogisticRegression coefficients
  host/ml/tests/data/ridge_reference.json         sklearn Ridge / LinearRegression coefficients
  host/ml/tests/data/iris_mlp.onnx (+ _logreg)    skl2onnx exports (zipmap=False), "user-brought"
  host/ml/tests/data/user_models_reference.json   their inputs and onnxruntime/sklearn outputs
"""

import json
import os

import numpy as np
import onnxruntime as ort
import sklearn
from skl2onnx import to_onnx
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, make_classification
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
DATA = os.path.join(ROOT, "host", "ml", "tests", "data")


def fmt(v):
    return repr(float(v))


def write_csv(path, names, X, labels):
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for row, label in zip(X, labels):
            f.write(",".join(fmt(v) for v in row) + "," + str(label) + "\n")


def snake(name):
    return name.strip().replace(" ", "_")


def main():
    # Breast cancer: 569 × 30, diagnosis malignant/benign (sklearn's target 0 = malignant).
    bc = load_breast_cancer()
    names = [snake(n) for n in bc.feature_names] + ["diagnosis"]
    diagnosis = [bc.target_names[t] for t in bc.target]
    write_csv(os.path.join(ROOT, "examples/breast-cancer/data/breast_cancer.csv"), names, bc.data, diagnosis)

    # Diabetes, unscaled: 442 × 10, progression one year after baseline.
    db = load_diabetes(scaled=False)
    # s1..s6 are, per the dataset's description: tc, ldl, hdl, tch, ltg, glu.
    dnames = ["age", "sex", "bmi", "bp", "tc", "ldl", "hdl", "tch", "ltg", "glu", "progression"]
    write_csv(os.path.join(ROOT, "examples/diabetes/data/diabetes.csv"), dnames, db.data,
              [fmt(v) for v in db.target])

    # Logistic regression on standardised breast-cancer features, C = 1.
    scaler = StandardScaler().fit(bc.data)
    xs = scaler.transform(bc.data)
    y = np.array(diagnosis)
    lr = LogisticRegression(C=1.0, solver="lbfgs", tol=1e-12, max_iter=100000).fit(xs, y)
    # lbfgs stops near 1e-8 in gradient (about 1e-6 in coefficients); a
    # Newton solver gives the exact optimum to compare tightly against.
    exact = LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-14, max_iter=1000).fit(xs, y)
    # A multinomial problem, data included.
    xm, ym = make_classification(n_samples=200, n_features=5, n_informative=3, n_redundant=0,
                                 n_classes=3, n_clusters_per_class=1, random_state=0)
    lm = LogisticRegression(C=0.5, solver="lbfgs", tol=1e-12, max_iter=100000).fit(xm, ym)
    lm_exact = LogisticRegression(C=0.5, solver="newton-cholesky", tol=1e-14, max_iter=1000).fit(xm, ym)
    ref = {
        "sklearn_version": sklearn.__version__,
        "breast_cancer": {
            "C": 1.0,
            "scaler_mean": scaler.mean_.tolist(),
            "scaler_scale": scaler.scale_.tolist(),
            "classes": lr.classes_.tolist(),
            "coef": lr.coef_.tolist(),
            "intercept": lr.intercept_.tolist(),
            "coef_exact": exact.coef_.tolist(),
            "intercept_exact": exact.intercept_.tolist(),
            "train_accuracy": float(lr.score(xs, y)),
            "proba_first_5": lr.predict_proba(xs[:5]).tolist(),
        },
        "multinomial": {
            "C": 0.5,
            "x": xm.tolist(),
            "y": ym.tolist(),
            "coef": lm.coef_.tolist(),
            "intercept": lm.intercept_.tolist(),
            "coef_exact": lm_exact.coef_.tolist(),
            "intercept_exact": lm_exact.intercept_.tolist(),
        },
    }
    with open(os.path.join(DATA, "logistic_reference.json"), "w") as f:
        json.dump(ref, f, indent=1)

    ridge = Ridge(alpha=1.0).fit(db.data, db.target)
    ols = LinearRegression().fit(db.data, db.target)
    with open(os.path.join(DATA, "ridge_reference.json"), "w") as f:
        json.dump({
            "sklearn_version": sklearn.__version__,
            "ridge_alpha_1": {"coef": ridge.coef_.tolist(), "intercept": float(ridge.intercept_)},
            "ols": {"coef": ols.coef_.tolist(), "intercept": float(ols.intercept_)},
        }, f, indent=1)

    # "User-brought" models: sklearn → skl2onnx, zipmap off.
    iris = load_iris()
    xi = iris.data.astype(np.float32)
    mlp = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2000, random_state=0).fit(xi, iris.target)
    logreg = LogisticRegression(max_iter=1000).fit(xi, iris.target)
    users = {"sklearn_version": sklearn.__version__, "onnxruntime_version": ort.__version__,
             "input": xi.tolist(), "models": {}}
    for name, model in [("iris_mlp", mlp), ("iris_logreg", logreg)]:
        onx = to_onnx(model, xi[:1], options={"zipmap": False}, target_opset=13)
        path = os.path.join(DATA, name + ".onnx")
        with open(path, "wb") as f:
            f.write(onx.SerializeToString())
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        outs = sess.run(None, {sess.get_inputs()[0].name: xi})
        users["models"][name] = {
            "file": name + ".onnx",
            "input_name": sess.get_inputs()[0].name,
            "outputs": {o.name: v.tolist() for o, v in zip(sess.get_outputs(), outs)},
            "sklearn_predict": model.predict(xi).tolist(),
            "sklearn_proba": model.predict_proba(xi).tolist(),
        }
    with open(os.path.join(DATA, "user_models_reference.json"), "w") as f:
        json.dump(users, f)


if __name__ == "__main__":
    main()
