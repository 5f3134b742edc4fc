"""Checks a pipeline definition the way Kubeflow Pipelines would read it.

Usage: kfp_ir_check.py PIPELINE.yaml

1. Each YAML document parses *strictly* into KFP's own protobuf messages,
   from the `kfp-pipeline-spec` and `kfp-kubernetes` packages on PyPI:
   the first into `PipelineSpec`, the second (if any) into `PlatformSpec`,
   and each executor's Kubernetes config into `KubernetesExecutorConfig`.
   `json_format.ParseDict` rejects unknown fields and mistyped values.
2. Then what the schema does not check, written here independently of
   sluice's own checks: every task's component and every component's
   executor exists, every dependency is a task, the DAG has no cycle, every
   input parameter a component declares is bound by its task, and every
   `{{...}}` placeholder in a command resolves.

Prints a JSON summary on stdout; exits 1 with the problems on stderr.
"""

import json
import re
import sys

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from kfp.kubernetes import kubernetes_executor_config_pb2

ENGINE_PLACEHOLDERS = {
    "$.pipeline_job_name",
    "$.pipeline_job_uuid",
    "$.pipeline_task_name",
    "$.pipeline_task_uuid",
    "$.pipeline_root",
}


def main(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    problems = []
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(docs[0], spec)  # raises on any unknown field
    platform_executors = {}
    if len(docs) > 1:
        platform = pipeline_spec_pb2.PlatformSpec()
        json_format.ParseDict(docs[1], platform)
        k8s = platform.platforms["kubernetes"]
        for name, config in k8s.deployment_spec.executors.items():
            parsed = kubernetes_executor_config_pb2.KubernetesExecutorConfig()
            json_format.ParseDict(json_format.MessageToDict(config), parsed)
            platform_executors[name] = parsed
    if len(docs) > 2:
        problems.append(f"{len(docs)} YAML documents; KFP reads at most two")

    tasks = spec.root.dag.tasks
    if not tasks:
        problems.append("the root DAG has no tasks")
    for name, task in tasks.items():
        comp_name = task.component_ref.name
        if comp_name not in spec.components:
            problems.append(f"task {name}: component {comp_name} is not defined")
            continue
        comp = spec.components[comp_name]
        label = comp.executor_label
        executors = spec.deployment_spec.fields["executors"].struct_value.fields
        if label not in executors:
            problems.append(f"component {comp_name}: executor {label} is not defined")
            continue
        for dep in task.dependent_tasks:
            if dep not in tasks:
                problems.append(f"task {name}: depends on {dep}, which is not a task")
        declared = set(comp.input_definitions.parameters.keys())
        bound = set(task.inputs.parameters.keys())
        for p in declared - bound:
            problems.append(f"task {name}: input parameter {p} is not bound")
        for p in bound - declared:
            problems.append(f"task {name}: binds {p}, which its component does not declare")
        container = json_format.MessageToDict(executors[label].struct_value)["container"]
        if not container.get("image"):
            problems.append(f"executor {label}: no image")
        for word in container.get("command", []) + container.get("args", []):
            for placeholder in re.findall(r"\{\{(.*?)\}\}", word):
                m = re.fullmatch(r"\$\.inputs\.parameters\['([^']+)'\]", placeholder)
                if m:
                    ok = m.group(1) in declared
                else:
                    ok = placeholder in ENGINE_PLACEHOLDERS
                if not ok:
                    problems.append(f"executor {label}: placeholder {{{{{placeholder}}}}} resolves to nothing")
        for pname, binding in task.inputs.parameters.items():
            constant = binding.runtime_value.constant.string_value
            for placeholder in re.findall(r"\{\{(.*?)\}\}", constant):
                if placeholder not in ENGINE_PLACEHOLDERS:
                    problems.append(f"task {name}: parameter {pname} uses {{{{{placeholder}}}}}")
    for label in platform_executors:
        executors = spec.deployment_spec.fields["executors"].struct_value.fields
        if label not in executors:
            problems.append(f"platform spec configures executor {label}, which is not defined")

    # Cycles: Kahn's algorithm.
    indegree = {n: 0 for n in tasks}
    for name, task in tasks.items():
        for dep in task.dependent_tasks:
            if dep in tasks:
                indegree[name] += 1
    ready = [n for n, d in indegree.items() if d == 0]
    order = []
    while ready:
        n = ready.pop()
        order.append(n)
        for name, task in tasks.items():
            if n in task.dependent_tasks:
                indegree[name] -= 1
                if indegree[name] == 0:
                    ready.append(name)
    if len(order) != len(tasks):
        problems.append("the tasks' dependencies have a cycle among " + ", ".join(sorted(set(tasks) - set(order))))

    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        sys.exit(1)
    summary = {
        "pipeline": spec.pipeline_info.name,
        "schema_version": spec.schema_version,
        "tasks": {
            name: {
                "dependent_tasks": sorted(task.dependent_tasks),
                "caching": task.caching_options.enable_cache,
                "max_retry_count": task.retry_policy.max_retry_count,
                "trigger": pipeline_spec_pb2.PipelineTaskSpec.TriggerPolicy.TriggerStrategy.Name(
                    task.trigger_policy.strategy
                ),
            }
            for name, task in tasks.items()
        },
        "secrets": {
            label: sorted(
                (s.secret_name, kv.secret_key, kv.env_var)
                for s in config.secret_as_env
                for kv in s.key_to_env
            )
            for label, config in platform_executors.items()
        },
        "order": order,
    }
    print(json.dumps(summary, indent=2, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
