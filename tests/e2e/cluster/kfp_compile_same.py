"""Builds the pipeline sluice exported with KFP's own SDK and compares.

Usage: kfp_compile_same.py PIPELINE.toml EXPORTED.yaml

The same shape is written here with the `kfp` SDK from the spec alone, by
the contract docs/cluster.md states — a `sluice-plan` task, one
`sluice step exec RUN STEP` task per step after the steps it consumes
from, a `sluice-report` task after all of them that runs whatever
happened; pod memory the step's limit plus 512 MiB, CPU and accelerators
as the step asks, retries the step's plus the pod retries, KFP's cache
off, the store by environment and credentials from secrets — compiled
with `kfp.compiler`, and compared with sluice's export: tasks,
dependencies, trigger and retry policies, caching, images, commands,
arguments, environment, resources and secrets. What only the image, the
published digest and the export options decide is read from the export.

Prints the compared structure as JSON; exits 1 listing every difference.
"""

import json
import sys
import tempfile
import tomllib

import yaml
from kfp import compiler, dsl, kubernetes

POD_OVERHEAD = 512 << 20
DEFAULT_MEMORY = 1 << 30


def size(text):
    if isinstance(text, int):
        return text
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
             "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "B": 1}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(text[: -len(unit)]) * factor
    return int(text)


def quantity(n):
    for unit, factor in (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


def cpu(value):
    millis = int(value[:-1]) if isinstance(value, str) and value.endswith("m") else round(float(value) * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def task_name(step):
    return "".join(c if c.isalnum() else "-" for c in step.lower())


def build(spec, exported):
    """The pipeline, written with the kfp SDK from the spec."""
    tasks = exported[0]["root"]["dag"]["tasks"]
    executors = exported[0]["deploymentSpec"]["executors"]
    plan_container = executors[exported[0]["components"][tasks["sluice-plan"]["componentRef"]["name"]]["executorLabel"]]["container"]
    image = plan_container["image"]
    package = plan_container["args"][plan_container["args"].index("--package") + 1]
    env = {e["name"]: e["value"] for e in plan_container["env"]}
    pod_retries = tasks["sluice-plan"]["retryPolicy"]["maxRetryCount"]
    secrets = {}
    if len(exported) > 1:
        config = next(iter(exported[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values()))
        for s in config["secretAsEnv"]:
            secrets[s["secretName"]] = {k["secretKey"]: k["envVar"] for k in s["keyToEnv"]}

    pipeline_limits = spec["pipeline"].get("limits", {})
    steps = spec["steps"]

    def container(args):
        @dsl.container_component
        def op(run_id: str):
            return dsl.ContainerSpec(image=image, command=["sluice"], args=args(run_id))
        return op

    def configure(task, retries):
        task.set_caching_options(False)
        task.set_retry(num_retries=retries, backoff_duration="10s", backoff_factor=2.0, backoff_max_duration="300s")
        for name, value in env.items():
            task.set_env_variable(name, value)
        for secret, keys in secrets.items():
            kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env=keys)
        return task

    @dsl.pipeline(name=task_name(spec["pipeline"]["name"]), description=spec["pipeline"].get("description"))
    def pipeline():
        plan = configure(
            container(lambda run_id: ["run", "--plan-only", "--package", package, "--run-id", run_id])(
                run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER
            ),
            pod_retries,
        )
        plan.set_display_name("sluice-plan")
        made = {}

        def make(name):
            if name in made:
                return made[name]
            step = steps[name]
            upstream = sorted({src.split(".")[0] for src in step.get("inputs", {}).values() if not src.startswith("data.")})
            deps = [make(u) for u in upstream] or [plan]
            t = container(lambda run_id, name=name: ["step", "exec", run_id, name])(run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
            t.after(*deps)
            limits = {**pipeline_limits, **step.get("limits", {})}
            memory = quantity(size(limits.get("memory", DEFAULT_MEMORY)) + POD_OVERHEAD)
            t.set_memory_request(memory).set_memory_limit(memory)
            if "cpu" in limits:
                t.set_cpu_request(cpu(limits["cpu"])).set_cpu_limit(cpu(limits["cpu"]))
            accel = step.get("accelerator")
            if accel:
                kind, count = (accel, 1) if isinstance(accel, str) else (accel["type"], accel.get("count", 1))
                t.set_accelerator_type(kind).set_accelerator_limit(count)
            configure(t, step.get("retries", 0) + pod_retries)
            t.set_display_name(name)
            made[name] = t
            return t

        for name in steps:
            make(name)
        report = container(lambda run_id: ["runs", "finish", run_id])(run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
        report.after(*made.values()).ignore_upstream_failure()
        configure(report, pod_retries)
        report.set_display_name("sluice-report")

    return pipeline


def structure(docs, names):
    """What both must agree on, keyed by task name. `names` maps each
    task key to the name to compare under (KFP's compiler names tasks
    after their component function)."""
    spec = docs[0]
    out = {}
    platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"] if len(docs) > 1 else {}
    for key, task in spec["root"]["dag"]["tasks"].items():
        comp = spec["components"][task["componentRef"]["name"]]
        label = comp["executorLabel"]
        c = spec["deploymentSpec"]["executors"][label]["container"]
        resources = c.get("resources", {})
        out[names[key]] = {
            "dependent_tasks": sorted(names[d] for d in task.get("dependentTasks", [])),
            "cache": task.get("cachingOptions", {}).get("enableCache", False),
            "retries": task.get("retryPolicy", {}).get("maxRetryCount", 0),
            "backoff": {k: v for k, v in task.get("retryPolicy", {}).items() if k != "maxRetryCount"},
            "trigger": task.get("triggerPolicy", {}).get("strategy", "ALL_UPSTREAM_TASKS_SUCCEEDED"),
            "inputs": task.get("inputs"),
            "parameters": comp.get("inputDefinitions"),
            "image": c["image"],
            "command": c["command"],
            "args": c["args"],
            "env": sorted((e["name"], e["value"]) for e in c.get("env", [])),
            "memory": (resources.get("resourceMemoryRequest"), resources.get("resourceMemoryLimit")),
            "cpu": (resources.get("resourceCpuRequest"), resources.get("resourceCpuLimit")),
            "accelerator": {k: v for k, v in resources.get("accelerator", {}).items() if k in ("resourceType", "resourceCount")},
            "secrets": sorted(
                (s["secretName"], k["secretKey"], k["envVar"])
                for s in platform.get(label, {}).get("secretAsEnv", [])
                for k in s["keyToEnv"]
            ),
        }
    return out


def main(spec_path, exported_path):
    with open(spec_path, "rb") as f:
        spec = tomllib.load(f)
    with open(exported_path) as f:
        exported = [d for d in yaml.safe_load_all(f) if d is not None]
    with tempfile.NamedTemporaryFile(suffix=".yaml") as out:
        compiler.Compiler().compile(build(spec, exported), out.name)
        with open(out.name) as f:
            compiled = [d for d in yaml.safe_load_all(f) if d is not None]

    ours = structure(exported, {k: k for k in exported[0]["root"]["dag"]["tasks"]})
    theirs_tasks = compiled[0]["root"]["dag"]["tasks"]
    theirs = structure(compiled, {k: t["taskInfo"]["name"] for k, t in theirs_tasks.items()})
    problems = []
    if compiled[0]["pipelineInfo"]["name"] != exported[0]["pipelineInfo"]["name"]:
        problems.append(f"pipeline name: kfp {compiled[0]['pipelineInfo']['name']}, sluice {exported[0]['pipelineInfo']['name']}")
    for name in sorted(set(ours) | set(theirs)):
        if name not in ours or name not in theirs:
            problems.append(f"task {name}: only in {'kfp' if name in theirs else 'sluice'}")
            continue
        for field, value in theirs[name].items():
            if ours[name][field] != value:
                problems.append(f"task {name}, {field}: kfp {value!r}, sluice {ours[name][field]!r}")
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"tasks": ours, "kfp_sdk": compiled[0].get("sdkVersion")}, indent=2, sort_keys=True, default=list))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
