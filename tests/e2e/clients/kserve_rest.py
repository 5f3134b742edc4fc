"""Talks to `sluice serve` with KServe's Python REST client (protocol v2;
its request carries `model_name` in the body). Prints what it got as JSON.

    python3 kserve_rest.py http://HOST:PORT MODEL '["feature", ...]' < rows.json
"""

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

base, model, features = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
rows = np.array(json.load(sys.stdin), dtype=np.float64)


async def main():
    client = InferenceRESTClient(RESTConfig(protocol="v2"))
    out = {
        "live": await client.is_server_live(base),
        "ready": await client.is_server_ready(base),
        "model_ready": await client.is_model_ready(base, model),
    }
    results = {}
    for binary in (False, True):
        tensors = []
        for j, name in enumerate(features):
            t = InferInput(name=name, shape=[len(rows)], datatype="FP64")
            t.set_data_from_numpy(rows[:, j], binary_data=binary)
            tensors.append(t)
        request = InferRequest(model_name=model, infer_inputs=tensors, request_id="kserve-1")
        headers = {}
        response = await client.infer(
            base, request, model_name=model, response_headers=headers
        )
        outputs = {o.name: o.as_numpy().tolist() for o in response.outputs}
        results["binary" if binary else "json"] = {
            "id": response.id,
            "version_header": headers.get("sluice-model-version"),
            "prediction": [p.decode() if isinstance(p, bytes) else p for p in outputs["prediction"]],
            "probability_malignant": outputs["probability_malignant"],
        }
    out.update(results)
    try:
        await client.infer(base, request, model_name="no-such-model")
        out["unknown"] = None
    except Exception as e:  # httpx.HTTPStatusError
        out["unknown"] = f"{type(e).__name__}: {e}"
    await client.close()
    print(json.dumps(out))


asyncio.run(main())
