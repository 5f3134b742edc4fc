"""Talks to `sluice serve --grpc-addr` with Triton's Python gRPC client,
left at its defaults (raw tensor contents in and out). Prints what it got
as JSON.

    python3 triton_grpc.py HOST:PORT MODEL '["feature", ...]' < rows.json
"""

import json
import sys

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

url, model, features = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
rows = np.array(json.load(sys.stdin), dtype=np.float64)
client = grpcclient.InferenceServerClient(url=url)
metadata = client.get_model_metadata(model, as_json=True)
out = {
    "live": client.is_server_live(),
    "ready": client.is_server_ready(),
    "model_ready": client.is_model_ready(model),
    "server_name": client.get_server_metadata(as_json=True)["name"],
    "metadata_inputs": [i["name"] for i in metadata["inputs"]],
    "metadata_outputs": [[o["name"], o["datatype"]] for o in metadata["outputs"]],
}


def inputs(dtype, datatype):
    tensors = []
    for j, name in enumerate(features):
        t = grpcclient.InferInput(name, [len(rows)], datatype)
        t.set_data_from_numpy(rows[:, j].astype(dtype))
        tensors.append(t)
    return tensors


result = client.infer(model, inputs(np.float64, "FP64"), request_id="triton-1")
response = result.get_response(as_json=True)
out["fp64"] = {
    "id": response["id"],
    "model_version": response["model_version"],
    "prediction": [p.decode() for p in result.as_numpy("prediction").tolist()],
    "probability_malignant": result.as_numpy("probability_malignant").tolist(),
}
result = client.infer(
    model,
    inputs(np.float32, "FP32"),
    outputs=[grpcclient.InferRequestedOutput("probability_malignant")],
)
out["fp32"] = {
    "outputs": [o["name"] for o in result.get_response(as_json=True)["outputs"]],
    "probability_malignant": result.as_numpy("probability_malignant").tolist(),
}
try:
    client.infer("no-such-model", inputs(np.float64, "FP64"))
    out["unknown"] = None
except InferenceServerException as e:
    out["unknown"] = f"{e.status()}: {e.message()}"
try:
    client.is_model_ready("no-such-model")
    out["unknown_ready"] = None
except InferenceServerException as e:
    out["unknown_ready"] = e.status()
# A message that is not protobuf (a string field claiming 5 bytes where 2
# follow), sent as raw bytes on the client's own gRPC channel.
with grpc.insecure_channel(url) as channel:
    infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    try:
        infer(b"\x0a\x05ab", timeout=30)
        out["malformed"] = None
    except grpc.RpcError as e:
        out["malformed"] = f"{e.code()}: {e.details()}"
print(json.dumps(out))
