"""Checks sluice-ml's exported ONNX models in onnxruntime.

    SLUICE_ML_EXPORT_DIR=/tmp/exported cargo test -p sluice-ml --test all \
        export_samples_for_other_runtimes -- --ignored
    python3 host/ml/tests/data/check_onnxruntime.py /tmp/exported

Loads every `<name>.onnx` there with onnxruntime (`onnx.checker` too, when
the onnx package is installed), runs it on the input tract ran, and compares
the outputs: labels equal (but for near-ties), values within 1e-5.
"""

import glob
import json
import os
import sys

import numpy as np
import onnxruntime as ort

try:
    import onnx
except ImportError:  # the checker is optional
    onnx = None


def main():
    folder = sys.argv[1]
    paths = sorted(glob.glob(os.path.join(folder, "*.onnx")))
    assert paths, f"no .onnx files in {folder}"
    for path in paths:
        if onnx is not None:
            onnx.checker.check_model(onnx.load(path), full_check=True)
        with open(path[:-5] + ".json") as f:
            sample = json.load(f)
        x = np.array(sample["input"], dtype=np.float32).reshape(sample["rows"], sample["cols"])
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        got = dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: x})))
        assert set(names) == set(sample["tract"]), (path, names)
        for name, want in sample["tract"].items():
            g = got[name].reshape(-1)
            w = np.array(want).reshape(-1)
            if name == "label":
                probs = got["probabilities"]
                for i in np.nonzero(g != w)[0]:
                    row = probs[i]
                    assert abs(row[g[i]] - row[w[i]]) < 1e-5, (path, i)
            else:
                diff = float(np.abs(g - w).max() / max(1.0, float(np.abs(w).max())))
                assert diff < 1e-5, (path, name, diff)
        print(f"ok {os.path.basename(path)}: outputs {names}")


if __name__ == "__main__":
    main()
