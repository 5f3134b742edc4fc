#!/usr/bin/env python3
"""The data-plane benchmark: sluice against pandas + scikit-learn on the
same synthetic breast-cancer CSV, size by size. See README.md.

    bench.py [--sizes 1M,5M] [--out DIR] [--data-dir DIR] [--sluice PATH]
             [--seed 42] [--timeout 3600] [--keep]

For each size: generate the CSV (cached), run the sluice pipeline
(pipeline.toml) with a fresh store and measure it, check its evaluation
against scikit-learn fitted on sluice's own transformed tables, run
pandas_pipeline.py and measure it. Writes OUT/results.json and
OUT/results.md and prints the Markdown. A failure on one side of one size
is recorded and the run goes on.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import generate  # noqa: E402

STEPS = ["ingest", "statistics", "schema", "validate", "split", "transform", "train", "evaluate"]
PHASES = ["read_csv", "statistics", "validate", "split", "transform", "train", "evaluate"]
METRICS = ["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"]


def log(msg):
    print(f"[dataplane] {msg}", file=sys.stderr, flush=True)


def tail(path, n=2000):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - n))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


GNU_TIME = "/usr/bin/time"


def _vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def run_measured(cmd, stdout_path, stderr_path, timeout, cwd=None):
    """Runs `cmd`, returns its exit code, wall time and peak RSS.

    The peak RSS comes from GNU time (`/usr/bin/time -f %M`, the
    `Maximum resident set size` of `time -v`: the child's ru_maxrss from
    wait4). It is not taken from this process's own wait4: on Linux a child
    forked from this (large, numpy-importing) Python process starts with its
    parent's high-water mark, and exec keeps it. Without GNU time, the
    child's VmHWM in /proc is sampled every 20 ms instead. Both sluice and
    the pandas script are one process (threads share it), so this is the
    peak RSS of the whole tree."""
    stats_path = stdout_path + ".time"
    use_time = os.access(GNU_TIME, os.X_OK)
    full = [GNU_TIME, "-o", stats_path, "-f", "%M %U %S"] + cmd if use_time else cmd
    t0 = time.perf_counter()
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        p = subprocess.Popen(full, stdout=out, stderr=err, cwd=cwd, start_new_session=True)
        timed_out = threading.Event()

        def kill():
            timed_out.set()
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        hwm = 0
        try:
            while p.poll() is None:
                if not use_time:
                    hwm = max(hwm, _vm_hwm_kib(p.pid))
                try:
                    p.wait(timeout=0.02)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            timer.cancel()
    r = {"rc": p.returncode, "wall_s": time.perf_counter() - t0, "timed_out": timed_out.is_set()}
    if use_time:
        r["rss_method"] = "GNU time %M"
        try:
            with open(stats_path) as f:
                lines = [l for l in f.read().splitlines() if l.strip()]
            kib, user, sys_ = lines[-1].split()
            r.update(peak_rss_mib=int(kib) / 1024.0, user_s=float(user), sys_s=float(sys_))
            # GNU time exits 128+n after a signal n and writes a line saying so.
            if any("terminated by signal" in l for l in lines):
                r["signal"] = lines[0]
        except (OSError, ValueError, IndexError):
            r["peak_rss_mib"] = None
    else:
        r["rss_method"] = "VmHWM sampled every 20 ms"
        r["peak_rss_mib"] = hwm / 1024.0
    return r


def step_error(step):
    parts = [step.get("message"), step.get("failure")]
    text = "; ".join(json.dumps(p) if not isinstance(p, str) else p for p in parts if p)
    return f"{step['name']}: {text or step.get('state')}"


def run_sluice(args, csv, work, label):
    spec = os.path.join(work, "pipeline.toml")
    with open(args.spec) as f:
        template = f.read()
    with open(spec, "w") as f:
        f.write(template.replace("@DATA@", os.path.abspath(csv)))
    store = os.path.join(work, "store")
    shutil.rmtree(store, ignore_errors=True)
    cmd = [args.sluice, "run", spec, "--store", store, "--cache-dir", args.compile_cache, "--json"]
    log(f"{label}: sluice run ({' '.join(cmd)})")
    out, err = os.path.join(work, "sluice.json"), os.path.join(work, "sluice.stderr")
    r = run_measured(cmd, out, err, args.timeout)
    r["steps"] = {}
    try:
        with open(out) as f:
            report = json.load(f)
    except (OSError, ValueError):
        report = None
    if report is not None:
        r["run_id"] = report.get("run_id")
        r["state"] = report.get("state")
        r["reported_duration_s"] = (report.get("duration") or 0) / 1000.0
        errors = []
        for s in report.get("steps", []):
            r["steps"][s["name"]] = {
                "state": s.get("state"),
                "duration_s": (s.get("duration") or 0) / 1000.0,
                "peak_memory_mib": (s.get("peak_memory") or 0) / 2**20,
                "metrics": s.get("metrics"),
            }
            if s.get("state") not in ("succeeded", "cached", "skipped"):
                errors.append(step_error(s))
        r["ok"] = r["rc"] == 0 and report.get("state") == "succeeded"
        if not r["ok"]:
            r["error"] = " | ".join(errors) or tail(err)
    else:
        r["ok"] = False
        r["state"] = "no report"
        r["error"] = ("timed out; " if r["timed_out"] else "") + f"exit {r['rc']}: " + tail(err)
    if not r["ok"]:
        if r["timed_out"] and "timed out" not in r["error"]:
            r["error"] = f"timed out after {args.timeout:.0f} s; " + r["error"]
        r["error"] = (r.get("error") or "")[:2000]
        log(f"{label}: sluice FAILED: {r['error'][:300]}")
    else:
        log(f"{label}: sluice {r['wall_s']:.2f} s, peak RSS {fmt(r.get('peak_rss_mib'), '.0f')} MiB")
    return r, store


def export(args, store, ref, path):
    cmd = [args.sluice, "artifacts", "export", ref, "-o", path, "--store", store, "--cache-dir", args.compile_cache]
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"`sluice artifacts export {ref}` failed (exit {p.returncode}): {p.stderr.strip()[-1000:]}")


def check_correctness(args, store, run_id, work):
    """Fits scikit-learn on sluice's transformed train table with the train
    step's parameters, scores sluice's transformed test table, and compares
    the metrics with sluice's evaluation document."""
    import numpy as np
    import pandas as pd
    from sklearn import metrics
    from sklearn.linear_model import LogisticRegression

    train_p, test_p, eval_p = (os.path.join(work, n) for n in ("train.parquet", "test.parquet", "evaluation.json"))
    t0 = time.perf_counter()
    export(args, store, f"{run_id}/transform/train", train_p)
    export(args, store, f"{run_id}/transform/test", test_p)
    export(args, store, f"{run_id}/evaluate/evaluation", eval_p)
    with open(eval_p) as f:
        evaluation = json.load(f)
    card = evaluation["model"]
    p = card["params"]["params"]
    label, classes = card["label"], card["classes"]
    train = pd.read_parquet(train_p)
    test = pd.read_parquet(test_p)
    features = card.get("features") or [c for c in train.columns if c != label]
    model = LogisticRegression(
        C=p.get("c", 1.0),
        tol=p.get("tol", 1e-8),
        max_iter=p.get("max_iter", 100),
        fit_intercept=p.get("fit_intercept", True),
        solver="newton-cholesky",
    )
    y_train = (train[label] == classes[1]).to_numpy()
    model.fit(train[features].to_numpy(np.float64), y_train)
    y = (test[label] == classes[1]).to_numpy()
    proba = model.predict_proba(test[features].to_numpy(np.float64))
    pred = proba.argmax(axis=1) == 1
    eps = np.finfo(np.float64).eps
    p_true = np.clip(np.where(y, proba[:, 1], proba[:, 0]), eps, 1 - eps)
    ours = {
        "accuracy": metrics.accuracy_score(y, pred),
        "precision": metrics.precision_score(y, pred, zero_division=0),
        "recall": metrics.recall_score(y, pred, zero_division=0),
        "f1": metrics.f1_score(y, pred, zero_division=0),
        "roc_auc": metrics.roc_auc_score(y, proba[:, 1]),
        "log_loss": float(-np.mean(np.log(p_true))),
    }
    theirs = evaluation["overall"]
    diffs = {k: abs(float(theirs[k]) - ours[k]) for k in ours if theirs.get(k) is not None}
    cm = metrics.confusion_matrix(y, pred).tolist()
    sluice_cm = (theirs.get("confusion_matrix") or {}).get("counts")
    for path in (train_p, test_p):
        if not args.keep:
            os.remove(path)
    return {
        "max_abs_diff": max(diffs.values()) if diffs else None,
        "diffs": diffs,
        "sluice": {k: theirs.get(k) for k in METRICS},
        "sklearn": ours,
        "confusion_matrix_equal": sluice_cm == cm if sluice_cm is not None else None,
        "rows": {"train": len(train), "test": len(test), "sluice_test_rows": evaluation.get("rows")},
        "sklearn_params": {k: v for k, v in model.get_params().items() if k in ("C", "tol", "max_iter", "fit_intercept", "solver")},
        "sklearn_n_iter": int(model.n_iter_[0]),
        "seconds": time.perf_counter() - t0,
    }


def run_pandas(args, csv, work, label):
    cmd = [sys.executable, os.path.join(HERE, "pandas_pipeline.py"), os.path.abspath(csv)]
    log(f"{label}: pandas + scikit-learn")
    out, err = os.path.join(work, "pandas.json"), os.path.join(work, "pandas.stderr")
    r = run_measured(cmd, out, err, args.timeout)
    try:
        with open(out) as f:
            r.update(json.load(f))
        r["ok"] = r["rc"] == 0
    except (OSError, ValueError):
        r["ok"] = False
    if not r["ok"]:
        r["error"] = (("timed out; " if r["timed_out"] else "") + f"exit {r['rc']}: " + tail(err))[:2000]
        log(f"{label}: pandas FAILED: {r['error'][:300]}")
    else:
        log(f"{label}: pandas {r['wall_s']:.2f} s, peak RSS {fmt(r.get('peak_rss_mib'), '.0f')} MiB")
    return r


def bench_size(args, label):
    rows = generate.parse_rows(label)
    res = {"size": label, "rows": rows}
    csv = os.path.join(args.data_dir, f"breast-cancer-{label}-seed{args.seed}.csv")
    try:
        if os.path.exists(csv):
            res["generated"] = "cached"
        else:
            log(f"{label}: generating {rows} rows into {csv}")
            t0 = time.perf_counter()
            generate.generate(rows, csv, seed=args.seed)
            res["generated"] = "now"
            res["generate_s"] = time.perf_counter() - t0
        res["csv_mb"] = os.path.getsize(csv) / 1e6
    except Exception as e:  # noqa: BLE001
        res["error"] = f"generation failed: {e}"
        return res
    work = os.path.join(args.out, "work", label)
    os.makedirs(work, exist_ok=True)

    if args.sluice_error:
        res["sluice"] = {"ok": False, "error": args.sluice_error}
    else:
        store = None
        try:
            res["sluice"], store = run_sluice(args, csv, work, label)
        except Exception:  # noqa: BLE001
            res["sluice"] = {"ok": False, "error": traceback.format_exc(limit=3)[-2000:]}
        if res["sluice"].get("ok"):
            try:
                res["check"] = check_correctness(args, store, res["sluice"]["run_id"], work)
                log(f"{label}: metric max |diff| = {res['check']['max_abs_diff']:.3g}")
            except Exception:  # noqa: BLE001
                res["check"] = {"error": traceback.format_exc(limit=3)[-2000:]}
                log(f"{label}: correctness check FAILED: {res['check']['error'][-300:]}")
        if store and not args.keep:
            shutil.rmtree(store, ignore_errors=True)

    if args.skip_pandas:
        res["pandas"] = {"ok": False, "error": "skipped (--skip-pandas)"}
    else:
        try:
            res["pandas"] = run_pandas(args, csv, work, label)
        except Exception:  # noqa: BLE001
            res["pandas"] = {"ok": False, "error": traceback.format_exc(limit=3)[-2000:]}
    s, p = res.get("sluice", {}), res.get("pandas", {})
    if s.get("ok") and p.get("ok"):
        res["ratio"] = p["wall_s"] / s["wall_s"]
    return res


def warm_compile_cache(args):
    """One run on 1000 rows so that the measured runs load compiled
    components from the cache rather than compiling them."""
    label = "warmup"
    csv = os.path.join(args.data_dir, f"breast-cancer-1K-seed{args.seed}.csv")
    if not os.path.exists(csv):
        generate.generate(1000, csv, seed=args.seed)
    work = os.path.join(args.out, "work", label)
    os.makedirs(work, exist_ok=True)
    r, store = run_sluice(args, csv, work, label)
    shutil.rmtree(store, ignore_errors=True)
    return r


def environment(args):
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cores": os.cpu_count(),
        "loadavg": os.getloadavg(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            env["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        with open("/proc/meminfo") as f:
            env["memory_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except (OSError, StopIteration):
        pass
    for mod in ("numpy", "pandas", "sklearn", "pyarrow"):
        try:
            env[mod] = __import__(mod).__version__
        except ImportError:
            env[mod] = None
    try:
        env["git"] = subprocess.run(
            ["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        pass
    if not args.sluice_error:
        try:
            env["sluice"] = subprocess.run([args.sluice, "--version"], capture_output=True, text=True).stdout.strip()
            env["sluice_path"] = args.sluice
            env["sluice_mtime"] = datetime.datetime.fromtimestamp(
                os.path.getmtime(args.sluice), datetime.timezone.utc
            ).strftime("%Y-%m-%d %H:%M UTC")
        except OSError:
            pass
    return env


def fmt(v, spec=".2f", none="—"):
    return none if v is None else format(v, spec)


def markdown(results, env):
    lines = [
        "# sluice data-plane benchmark",
        "",
        f"{env.get('date')}; {env.get('cpu', '?')}, {env.get('cores')} cores, {env.get('memory_gib', '?')} GiB; "
        f"load average at start {' / '.join(f'{x:.1f}' for x in env['loadavg'])}; "
        f"{env.get('sluice', 'sluice ?')} ({env.get('sluice_path', '-')}, built {env.get('sluice_mtime', '?')}; checkout {env.get('git', '?')}); "
        f"pandas {env.get('pandas')}, scikit-learn {env.get('sklearn')}, numpy {env.get('numpy')}.",
        "",
        "| size | CSV MB | sluice wall s | sluice peak RSS MiB | pandas+sklearn wall s | pandas peak RSS MiB | ratio (pandas/sluice) | metric max abs diff | sluice |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for r in results:
        s, p, c = r.get("sluice", {}), r.get("pandas", {}), r.get("check", {})
        status = "ok" if s.get("ok") else "FAILED"
        if not s.get("ok") and s.get("error"):
            notes.append(f"- {r['size']}, sluice: {s['error'][:600]}")
        if p and not p.get("ok") and p.get("error"):
            notes.append(f"- {r['size']}, pandas: {p['error'][:600]}")
        if c.get("error"):
            notes.append(f"- {r['size']}, correctness check: {c['error'][-600:]}")
        if r.get("error"):
            notes.append(f"- {r['size']}: {r['error']}")
            status = "not run"
        lines.append(
            f"| {r['size']} | {fmt(r.get('csv_mb'), '.1f')} | {fmt(s.get('wall_s'))} | {fmt(s.get('peak_rss_mib'), '.0f')} "
            f"| {fmt(p.get('wall_s') if p.get('ok') else None)} | {fmt(p.get('peak_rss_mib') if p.get('ok') else None, '.0f')} "
            f"| {fmt(r.get('ratio'))} | {fmt(c.get('max_abs_diff'), '.2e')} | {status} |"
        )
    lines += [
        "",
        "sluice, per step (s, from the run report; steps overlap where the DAG allows, so they need not sum to the wall time; "
        "the last column is the largest peak linear memory of a step's sandbox):",
        "",
        "| size | " + " | ".join(STEPS) + " | largest step memory MiB |",
        "|---|" + "---|" * (len(STEPS) + 1),
    ]
    for r in results:
        steps = r.get("sluice", {}).get("steps", {})
        cells = []
        for name in STEPS:
            st = steps.get(name)
            if st is None:
                cells.append("—")
            elif st["state"] == "succeeded":
                cells.append(fmt(st["duration_s"], ".3f"))
            else:
                cells.append(f"{st['state']} ({fmt(st['duration_s'], '.3f')})")
        peak = max(steps.items(), key=lambda kv: kv[1]["peak_memory_mib"], default=None)
        cells.append(f"{peak[1]['peak_memory_mib']:.0f} ({peak[0]})" if peak else "—")
        lines.append(f"| {r['size']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "pandas + scikit-learn, per stage (s, inside the process; the wall time also holds start-up and imports):",
        "",
        "| size | " + " | ".join(PHASES) + " | lbfgs iterations |",
        "|---|" + "---|" * (len(PHASES) + 1),
    ]
    for r in results:
        ph = r.get("pandas", {}).get("phases_s", {})
        lines.append(
            f"| {r['size']} | " + " | ".join(fmt(ph.get(n), ".3f") for n in PHASES) + f" | {r.get('pandas', {}).get('n_iter', '—')} |"
        )
    lines += [
        "",
        "Correctness: |sluice − scikit-learn| per metric, scikit-learn fitted on sluice's transformed train table with the train step's parameters (newton-cholesky):",
        "",
        "| size | " + " | ".join(METRICS) + " | confusion matrix equal | sluice test rows |",
        "|---|" + "---|" * (len(METRICS) + 2),
    ]
    for r in results:
        c = r.get("check", {})
        d = c.get("diffs", {})
        lines.append(
            f"| {r['size']} | "
            + " | ".join(fmt(d.get(m), ".1e") for m in METRICS)
            + f" | {c.get('confusion_matrix_equal', '—')} | {c.get('rows', {}).get('sluice_test_rows', '—')} |"
        )
    if notes:
        lines += ["", "Failures:", ""] + notes
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description="sluice vs pandas + scikit-learn on synthetic breast-cancer CSVs")
    ap.add_argument("--sizes", default="1M,5M", help="comma-separated row counts (100K, 1M, 5M, 20M, …); default 1M,5M")
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "dataplane"))
    ap.add_argument("--data-dir", default=os.path.join(ROOT, "target", "dataplane-data"), help="where generated CSVs are cached")
    ap.add_argument("--sluice", default=os.path.join(ROOT, "target", "release", "sluice"))
    ap.add_argument("--spec", default=os.path.join(HERE, "pipeline.toml"), help="the pipeline template (@DATA@ = the CSV path)")
    ap.add_argument("--sluice-error", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=42, help="generator seed")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per sluice or pandas run before it is killed")
    ap.add_argument("--keep", action="store_true", help="keep the stores and exported tables under OUT/work")
    ap.add_argument("--skip-pandas", action="store_true")
    args = ap.parse_args()
    args.out = os.path.abspath(args.out)
    args.data_dir = os.path.abspath(args.data_dir)
    args.compile_cache = os.path.join(args.out, "compile-cache")
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.data_dir, exist_ok=True)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    for s in sizes:
        generate.parse_rows(s)  # fail early on a bad size

    if not args.sluice_error and not os.access(args.sluice, os.X_OK):
        args.sluice_error = f"no sluice binary at {args.sluice}"
    env = environment(args)
    results = []
    if not args.sluice_error:
        log("warming the compiled-component cache")
        w = warm_compile_cache(args)
        env["warmup"] = {k: w.get(k) for k in ("ok", "wall_s", "error")}
        if not w.get("ok"):
            log("the warm-up run failed; measuring anyway")
    for label in sizes:
        results.append(bench_size(args, label))
        # Written after each size, so an interrupted run keeps what it measured.
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({"environment": env, "results": results}, f, indent=2)
    md = markdown(results, env)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(md)
    print(md)
    log(f"wrote {args.out}/results.md and results.json")


if __name__ == "__main__":
    main()
