"""Runs a Kubeflow Pipelines v2 definition the way KFP's launcher does,
with processes for pods.

Usage: kfp_launcher.py PIPELINE.yaml --image-binary PATH --secrets JSON
           --work DIR [--job-id ID] [--kill TASK] [--backoff-scale X]

- every task is a fresh process in its own empty working folder, with its
  own HOME (so its own compiled-component cache): nothing but the
  container's environment, the secrets the platform spec maps, and the
  servers they name are shared;
- the container's `command[0]` is the image's binary (`--image-binary`);
  `{{$.inputs.parameters['NAME']}}` placeholders are filled from the
  task's parameter bindings, and `{{$.pipeline_job_uuid}}` with the job's
  id;
- tasks start in dependency order, independent ones concurrently; a task
  runs when every task it depends on succeeded, or (trigger policy
  ALL_UPSTREAM_TASKS_COMPLETED) when they are all done whatever happened;
  otherwise it is skipped, as KFP does;
- a task that exits non-zero is started again, in a fresh folder, up to
  its retry policy's `maxRetryCount`, after its backoff (scaled by
  `--backoff-scale` to keep tests short);
- `--kill TASK` kills TASK's first attempt with SIGKILL once it reports
  that its step is running (a pod lost mid-step).

Prints JSON: the job id and, per task, its state, attempts and exit codes.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import yaml


def duration(text):
    return float(text.rstrip("s")) if text else 0.0


class Launcher:
    def __init__(self, docs, args):
        self.spec = docs[0]
        self.platform = (
            docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"] if len(docs) > 1 else {}
        )
        self.args = args
        self.job_id = args.job_id or str(uuid.uuid4())
        self.secrets = json.loads(args.secrets)
        self.tasks = self.spec["root"]["dag"]["tasks"]
        self.results = {}
        self.lock = threading.Lock()

    def command(self, name):
        task = self.tasks[name]
        component = self.spec["components"][task["componentRef"]["name"]]
        label = component["executorLabel"]
        container = self.spec["deploymentSpec"]["executors"][label]["container"]
        params = {}
        for pname, binding in task.get("inputs", {}).get("parameters", {}).items():
            value = binding["runtimeValue"]["constant"]
            params[pname] = value.replace("{{$.pipeline_job_uuid}}", self.job_id)

        def fill(word):
            return re.sub(
                r"\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}", lambda m: params[m.group(1)], word
            ).replace("{{$.pipeline_job_uuid}}", self.job_id)

        words = [fill(w) for w in container["command"] + container.get("args", [])]
        words[0] = self.args.image_binary
        env = {"PATH": os.environ["PATH"]}
        for e in container.get("env", []):
            env[e["name"]] = e["value"]
        for secret in self.platform.get(label, {}).get("secretAsEnv", []):
            for kv in secret["keyToEnv"]:
                env[kv["envVar"]] = self.secrets[secret["secretName"]][kv["secretKey"]]
        return words, env

    def attempt(self, name, number):
        words, env = self.command(name)
        pod = tempfile.mkdtemp(prefix=f"pod-{name}-{number}-", dir=self.args.work)
        env["HOME"] = os.path.join(pod, "home")
        os.makedirs(env["HOME"])
        work = os.path.join(pod, "work")
        os.makedirs(work)
        log = open(os.path.join(pod, "log"), "w")
        child = subprocess.Popen(words, cwd=work, env=env, stdout=log, stderr=subprocess.PIPE, text=True)
        kill = self.args.kill == name and number == 1
        step = words[-1]
        for line in child.stderr:
            log.write(line)
            log.flush()
            if kill and line.startswith(f"running   {step}"):
                time.sleep(0.5)
                child.send_signal(signal.SIGKILL)
                kill = False
        code = child.wait()
        log.close()
        return code

    def run_task(self, name):
        task = self.tasks[name]
        policy = task.get("retryPolicy", {})
        retries = int(policy.get("maxRetryCount", 0))
        backoff = duration(policy.get("backoffDuration", "0s")) * self.args.backoff_scale
        codes = []
        for number in range(1, retries + 2):
            codes.append(self.attempt(name, number))
            if codes[-1] == 0:
                break
            if number <= retries:
                time.sleep(backoff)
                backoff = min(
                    backoff * float(policy.get("backoffFactor", 2.0)),
                    duration(policy.get("backoffMaxDuration", "3600s")) * self.args.backoff_scale,
                )
        state = "succeeded" if codes[-1] == 0 else "failed"
        return {"state": state, "attempts": len(codes), "exit_codes": codes}

    def run(self):
        pending = set(self.tasks)
        running = {}
        with ThreadPoolExecutor(max_workers=4) as pool:
            while pending or running:
                for name in sorted(pending):
                    deps = self.tasks[name].get("dependentTasks", [])
                    if any(d not in self.results for d in deps):
                        continue
                    pending.discard(name)
                    strategy = self.tasks[name].get("triggerPolicy", {}).get("strategy")
                    all_ok = all(self.results[d]["state"] == "succeeded" for d in deps)
                    if not all_ok and strategy != "ALL_UPSTREAM_TASKS_COMPLETED":
                        self.results[name] = {"state": "skipped", "attempts": 0, "exit_codes": []}
                        continue
                    running[name] = pool.submit(self.run_task, name)
                for name, future in list(running.items()):
                    if future.done():
                        self.results[name] = future.result()
                        del running[name]
                time.sleep(0.05)
        return {"job_id": self.job_id, "tasks": self.results}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("pipeline")
    p.add_argument("--image-binary", required=True)
    p.add_argument("--secrets", default="{}")
    p.add_argument("--work", required=True)
    p.add_argument("--job-id")
    p.add_argument("--kill")
    p.add_argument("--backoff-scale", type=float, default=0.05)
    args = p.parse_args()
    with open(args.pipeline) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    print(json.dumps(Launcher(docs, args).run(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
