"""Runs scikit-learn and onnxruntime on what ml-bench measured, side by side.

Reads OUT/rust.json, OUT/*.onnx, OUT/input.f32 and the tract
probabilities written by `ml-bench OUT`; prints a Markdown table with the
ratios, and checks that onnxruntime loads the exported models and agrees
with tract. Called by bench/ml/run.sh.

    python3 bench/ml/compare.py OUT
"""

import json
import os
import sys
import time
import warnings

import numpy as np
import onnxruntime as ort
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def median_time(reps, fn):
    times, out = [], None
    for _ in range(reps):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2], out


def throughput(sess, name, x, rows):
    """The fastest of five 200 ms windows, as ml-bench measures tract."""
    feed = {name: np.ascontiguousarray(x[:rows])}
    for _ in range(20):
        sess.run(None, feed)
    best = float("inf")
    for _ in range(5):
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < 0.2 or calls < 10:
            sess.run(None, feed)
            calls += 1
        best = min(best, (time.perf_counter() - start) / calls)
    return {"batch": rows, "us_per_call": best * 1e6, "rows_per_s": rows / best}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "ml-bench")
    with open(os.path.join(out, "rust.json")) as f:
        rust = json.load(f)

    path = os.path.join(ROOT, "examples", "breast-cancer", "data", "breast_cancer.csv")
    raw = np.genfromtxt(path, delimiter=",", skip_header=1, dtype=str)
    x = StandardScaler().fit_transform(raw[:, :-1].astype(np.float64))
    y = raw[:, -1]

    warnings.simplefilter("ignore", ConvergenceWarning)
    logistic = lambda: LogisticRegression(C=1.0, solver="lbfgs", tol=1e-4, max_iter=100).fit(x, y)
    mlp = lambda: MLPClassifier(hidden_layer_sizes=(100,), learning_rate_init=1e-3, max_iter=200,
                                batch_size=200, alpha=1e-4, tol=1e-4, n_iter_no_change=10,
                                random_state=0).fit(x, y)
    t_log, m_log = median_time(50, logistic)
    t_mlp, m_mlp = median_time(5, mlp)

    rows, cols = rust["rows"], rust["features"]
    xf = np.fromfile(os.path.join(out, "input.f32"), dtype="<f4").reshape(rows, cols)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    ort_rows, agreement = {}, {}
    for name in ["logistic", "mlp"]:
        sess = ort.InferenceSession(os.path.join(out, name + ".onnx"), opts,
                                    providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0].name
        label, probs = sess.run(["label", "probabilities"], {inp: xf})
        tract = np.fromfile(os.path.join(out, name + ".probabilities.f32"), dtype="<f4")
        agreement[name] = float(np.abs(probs.reshape(-1) - tract).max())
        assert agreement[name] < 1e-5, (name, agreement[name])
        assert (label == probs.argmax(axis=1)).all()
        ort_rows[name] = [throughput(sess, inp, xf, b) for b in (1, rows)]

    try:
        from threadpoolctl import threadpool_info
        blas = ", ".join(f"{i.get('internal_api')} {i.get('version')} "
                         f"({i.get('architecture')}, {i.get('num_threads')} threads)"
                         for i in threadpool_info())
    except Exception as e:  # informational only
        blas = f"unknown ({e})"

    rt = rust["train"]
    lines = [
        f"scikit-learn {sklearn.__version__}, onnxruntime {ort.__version__} "
        f"(1 intra-op thread), numpy {np.__version__}; BLAS: {blas}.",
        f"Data: breast cancer, {rows} × {cols}, standardised.",
        "",
        "| training | sluice-ml | scikit-learn | sklearn / sluice-ml |",
        "|---|---|---|---|",
        f"| logistic regression, C = 1, tol 1e-4 | {rt['logistic']['median_s'] * 1e3:.3f} ms "
        f"({rt['logistic']['iterations']} Newton iterations) | {t_log * 1e3:.3f} ms "
        f"({int(m_log.n_iter_[0])} lbfgs iterations) | {t_log / rt['logistic']['median_s']:.1f}× |",
        f"| logistic regression, tol 1e-8 (sluice-ml default) | "
        f"{rt['logistic_tol_1e-8']['median_s'] * 1e3:.3f} ms "
        f"({rt['logistic_tol_1e-8']['iterations']} iterations) | | |",
        f"| MLP (100,), Adam, batch 200, ≤ 200 epochs | {rt['mlp']['median_s'] * 1e3:.1f} ms "
        f"({rt['mlp']['epochs']} epochs) | {t_mlp * 1e3:.1f} ms ({m_mlp.n_iter_} epochs) | "
        f"{t_mlp / rt['mlp']['median_s']:.2f}× |",
        f"| MLP, per epoch | {rt['mlp']['median_s'] / rt['mlp']['epochs'] * 1e3:.2f} ms | "
        f"{t_mlp / m_mlp.n_iter_ * 1e3:.2f} ms | "
        f"{(t_mlp / m_mlp.n_iter_) / (rt['mlp']['median_s'] / rt['mlp']['epochs']):.2f}× |",
        "",
        "| inference (same ONNX file) | batch | tract | onnxruntime | tract / onnxruntime (time) |",
        "|---|---|---|---|---|",
    ]
    for name in ["logistic", "mlp"]:
        for tr, on in zip(rust["inference"][name], ort_rows[name]):
            lines.append(
                f"| {name} | {tr['batch']} | {tr['us_per_call']:.1f} µs "
                f"({tr['rows_per_s']:,.0f} rows/s) | {on['us_per_call']:.1f} µs "
                f"({on['rows_per_s']:,.0f} rows/s) | {tr['us_per_call'] / on['us_per_call']:.2f} |")
    lines.append("")
    lines.append("onnxruntime loads both exported models; largest probability difference "
                 "from tract: " + ", ".join(f"{k} {v:.1e}" for k, v in agreement.items()) + ".")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
