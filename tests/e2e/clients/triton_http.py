"""Talks to `sluice serve` with Triton's Python HTTP client, left at its
defaults (binary tensors in and out). Prints what it got as JSON.

    python3 triton_http.py HOST:PORT MODEL '["feature", ...]' < rows.json
"""

import json
import sys

import numpy as np
import tritonclient.http as http
from tritonclient.utils import InferenceServerException

url, model, features = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
rows = np.array(json.load(sys.stdin), dtype=np.float64)
client = http.InferenceServerClient(url=url)
out = {
    "live": client.is_server_live(),
    "ready": client.is_server_ready(),
    "model_ready": client.is_model_ready(model),
    "extensions": client.get_server_metadata()["extensions"],
    "metadata_inputs": [i["name"] for i in client.get_model_metadata(model)["inputs"]],
}


def inputs(dtype, datatype):
    tensors = []
    for j, name in enumerate(features):
        t = http.InferInput(name, [len(rows)], datatype)
        t.set_data_from_numpy(rows[:, j].astype(dtype))  # binary_data=True
        tensors.append(t)
    return tensors


# Defaults everywhere: binary inputs, every output in binary.
result = client.infer(model, inputs(np.float64, "FP64"))
out["fp64"] = {
    "prediction": [p.decode() for p in result.as_numpy("prediction").tolist()],
    "probability_malignant": result.as_numpy("probability_malignant").tolist(),
}
# float32 features (what most numpy pipelines hold), one output asked for
# as JSON.
result = client.infer(
    model,
    inputs(np.float32, "FP32"),
    outputs=[http.InferRequestedOutput("probability_malignant", binary_data=False)],
)
out["fp32"] = {"probability_malignant": result.as_numpy("probability_malignant").tolist()}
# gzip request bodies, as the client compresses them.
result = client.infer(
    model, inputs(np.float64, "FP64"), request_compression_algorithm="gzip"
)
out["gzip"] = {"probability_malignant": result.as_numpy("probability_malignant").tolist()}
try:
    client.infer("no-such-model", inputs(np.float64, "FP64"))
    out["unknown"] = None
except InferenceServerException as e:
    out["unknown"] = str(e)
print(json.dumps(out))
