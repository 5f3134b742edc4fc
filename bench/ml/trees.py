"""Tree ensembles, side by side in one run. Prints two Markdown tables:

1. Training: sluice-ml's gradient boosting against scikit-learn's
   HistGradientBoostingClassifier and LightGBM, 100 rounds each with their
   defaults, on 1,000,000 × 8 and 50,000 × 200 synthetic rows (80 % to
   train, the rest to score accuracy); each side TREE_BENCH_ROUNDS times
   (default 5), taking turns, the medians compared.
2. Inference: sluice against onnxruntime on the same ONNX files and rows.

    python3 bench/ml/trees.py TREE_BENCH OUT_DIR [TRAIN_BENCH]

TREE_BENCH and TRAIN_BENCH are the built `tree_bench` and `train_bench`
examples of sluice-ml (bench/ml/trees.sh builds them; without TRAIN_BENCH
the training table is skipped). The models: a scikit-learn random forest (100 trees, depth 8),
gradient boosting (100 trees, depth 8 leaves ≤ 255) and LightGBM (100
trees), trained on 100,000 synthetic rows × 8 features and exported with
skl2onnx / onnxmltools defaults (ZipMap included: sluice drops it,
onnxruntime builds its maps, so onnxruntime also runs a `zipmap=False`
twin, the fairer comparison, which is the one in the ratio).

onnxruntime runs with its defaults (a thread per core) and with one
thread; sluice evaluates on one thread.
"""

import json
import os
import platform
import subprocess
import sys
import time
import warnings

import numpy as np
import onnxruntime as ort
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

warnings.filterwarnings("ignore")
ort.set_default_logger_severity(3)
tree_bench, out = sys.argv[1], sys.argv[2]
train_bench = sys.argv[3] if len(sys.argv) > 3 else None
os.makedirs(out, exist_ok=True)


def training_table():
    """Each side trains ROUNDS times, the sides taking turns (their order
    rotating from round to round), so a minute in which the host runs the
    machine slower falls on every side alike; the table gives each side's
    median and the range of the per-round ratios."""
    import lightgbm

    rounds = int(os.environ.get("TREE_BENCH_ROUNDS", "5"))
    print(f"Training: the median of {rounds} rounds, the sides taking turns.")
    print()
    print(
        "| data | sluice-ml s | accuracy | scikit-learn HGB s | accuracy | LightGBM s | accuracy "
        "| sluice ÷ fastest (medians) | per round |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for rows, cols, informative in [(1_000_000, 8, 6), (50_000, 200, 20)]:
        xt, yt = make_classification(n_samples=rows, n_features=cols, n_informative=informative, random_state=0)
        xt, yt = xt.astype(np.float32), yt.astype(np.float32)
        xt.tofile(os.path.join(out, "train_x.f32"))
        yt.tofile(os.path.join(out, "train_y.f32"))
        test = rows // 5
        cut = rows - test
        y_int = yt.astype(int)

        def ours():
            res = subprocess.run(
                [train_bench, os.path.join(out, "train_x.f32"), os.path.join(out, "train_y.f32"),
                 str(rows), str(cols), str(test), "gradient_boosting_classifier", "{}"],
                check=True, capture_output=True, text=True,
            )
            o = json.loads(res.stdout)
            return o["seconds"], o["score"]

        def fitted(make):
            start = time.perf_counter()
            m = make().fit(xt[:cut], y_int[:cut])
            return time.perf_counter() - start, m.score(xt[cut:], y_int[cut:])

        sides = {
            "sluice": ours,
            "hgb": lambda: fitted(lambda: HistGradientBoostingClassifier(
                max_iter=100, early_stopping=False, random_state=0)),
            "lgbm": lambda: fitted(lambda: lightgbm.LGBMClassifier(n_estimators=100, verbose=-1, random_state=0)),
        }
        names = list(sides)
        times = {n: [] for n in names}
        score = {}
        for r in range(rounds):
            for n in names[r % 3:] + names[: r % 3]:
                seconds, score[n] = sides[n]()
                times[n].append(seconds)
        med = {n: float(np.median(t)) for n, t in times.items()}
        per_round = [s / min(h, l) for s, h, l in zip(times["sluice"], times["hgb"], times["lgbm"])]
        print(
            f"| {rows:,} × {cols} | {med['sluice']:.2f} | {score['sluice']:.4f} | {med['hgb']:.2f} | "
            f"{score['hgb']:.4f} | {med['lgbm']:.2f} | {score['lgbm']:.4f} | "
            f"{med['sluice'] / min(med['hgb'], med['lgbm']):.2f}× | {min(per_round):.2f}–{max(per_round):.2f}× |"
        )
    print()


ROWS, COLS = 100_000, 8
x, y = make_classification(n_samples=ROWS, n_features=COLS, n_informative=6, random_state=0)
x = x.astype(np.float32)
x.tofile(os.path.join(out, "input.f32"))


def export(name, model, convert):
    path = os.path.join(out, f"{name}.onnx")
    with open(path, "wb") as f:
        f.write(convert(model).SerializeToString())
    return path


def skl(options):
    from skl2onnx import to_onnx

    return lambda m: to_onnx(m, x[:1], options=options)


models = {}
rf = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0, n_jobs=-1).fit(x, y)
models["random forest (100 × depth 8)"] = (
    export("rf", rf, skl(None)),
    export("rf_nozipmap", rf, skl({id(rf): {"zipmap": False}})),
)
hgb = HistGradientBoostingClassifier(max_iter=100, max_depth=8, early_stopping=False, random_state=0).fit(x, y)
try:
    models["HistGradientBoosting (100 × depth 8)"] = (
        export("hgb", hgb, skl(None)),
        export("hgb_nozipmap", hgb, skl({id(hgb): {"zipmap": False}})),
    )
except (TypeError, ValueError) as e:  # skl2onnx 1.20 with protobuf 7: bools in int lists
    print(f"(HistGradientBoosting row skipped: skl2onnx cannot export it here: {str(e)[:80]})", file=sys.stderr)
try:
    import lightgbm
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    lgb = lightgbm.LGBMClassifier(n_estimators=100, verbose=-1, random_state=0).fit(x, y)
    conv = lambda zipmap: lambda m: onnxmltools.convert_lightgbm(  # noqa: E731
        m, initial_types=[("input", FloatTensorType([None, COLS]))], zipmap=zipmap
    )
    models["LightGBM (100 trees, 31 leaves)"] = (
        export("lgbm", lgb, conv(True)),
        export("lgbm_nozipmap", lgb, conv(False)),
    )
except ImportError:
    print("(lightgbm/onnxmltools not installed: LightGBM row skipped)", file=sys.stderr)


def ort_throughput(path, batch, threads):
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: np.ascontiguousarray(x[:batch])}
    for _ in range(3):
        sess.run(None, feed)
    best = float("inf")
    for _ in range(5):
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < 0.3 or calls < 3:
            sess.run(None, feed)
            calls += 1
        best = min(best, (time.perf_counter() - start) / calls)
    return batch / best, sess


def sluice(path, batches):
    res = subprocess.run(
        [tree_bench, path, os.path.join(out, "input.f32"), str(ROWS), str(COLS)] + [str(b) for b in batches],
        check=True,
        capture_output=True,
        text=True,
    )
    return [json.loads(line) for line in res.stdout.splitlines()]


print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, onnxruntime {ort.__version__}")
print()
if train_bench:
    training_table()
print("| model | batch | sluice rows/s | onnxruntime rows/s (no ZipMap, all cores) | (1 thread) | (with ZipMap) | sluice ÷ onnxruntime |")
print("|---|---|---|---|---|---|---|")
for name, (path, path_nozip) in models.items():
    # Agreement first: sluice's probabilities equal onnxruntime's.
    check = sluice(path_nozip, [0])[0]
    sess = ort.InferenceSession(path_nozip, providers=["CPUExecutionProvider"])
    want = np.asarray(sess.run(None, {sess.get_inputs()[0].name: x})[1]).ravel()
    diff = float(np.max(np.abs(np.asarray(check["values"]) - want)))
    assert diff < 1e-5, f"{name}: sluice and onnxruntime differ by {diff}"
    for batch, timing in zip([ROWS, 1], sluice(path, [ROWS, 1])):
        all_cores, _ = ort_throughput(path_nozip, batch, 0)
        one, _ = ort_throughput(path_nozip, batch, 1)
        zipped, _ = ort_throughput(path, batch, 0)
        s = timing["rows_per_s"]
        print(
            f"| {name} | {batch:,} | {s:,.0f} | {all_cores:,.0f} | {one:,.0f} | {zipped:,.0f} | {s / all_cores:.2f}× |"
        )
print()
print("max |sluice − onnxruntime| over all probabilities: < 1e-5 for every model (checked)")
