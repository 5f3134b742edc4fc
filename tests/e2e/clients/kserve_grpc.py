"""Talks to `sluice serve --grpc-addr` with KServe's Python gRPC client
(InferenceGRPCClient, typed tensor contents). Prints what it got as JSON.

    python3 kserve_grpc.py HOST:PORT MODEL '["feature", ...]' < rows.json
"""

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest

url, model, features = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
rows = np.array(json.load(sys.stdin), dtype=np.float64)


async def main():
    client = InferenceGRPCClient(url, retries=0)
    out = {
        "live": await client.is_server_live(),
        "ready": await client.is_server_ready(),
        "model_ready": await client.is_model_ready(model),
    }
    tensors = []
    for j, name in enumerate(features):
        t = InferInput(name=name, shape=[len(rows)], datatype="FP64")
        t.set_data_from_numpy(rows[:, j])
        tensors.append(t)
    request = InferRequest(model_name=model, infer_inputs=tensors, request_id="kserve-grpc-1")
    response = await client.infer(request)
    outputs = {o.name: o.as_numpy().tolist() for o in response.outputs}
    out["infer"] = {
        "id": response.id,
        "prediction": [p.decode() if isinstance(p, bytes) else p for p in outputs["prediction"]],
        "probability_malignant": outputs["probability_malignant"],
    }
    try:
        await client.infer(InferRequest(model_name="no-such-model", infer_inputs=tensors))
        out["unknown"] = None
    except Exception as e:  # grpc.aio.AioRpcError
        out["unknown"] = f"{e.code().name}: {e.details()}" if hasattr(e, "code") else str(e)
    await client.close()
    print(json.dumps(out))


asyncio.run(main())
