"""C1: what converting an Argo workflow costs — a generated DAG of `--nodes` tasks, read
from YAML, converted and validated as the loader does at `actorflow apply` (target: 1 s
for 500 nodes). No cluster: converting is pure.

    python -m benchmarks.convert [--nodes 500] [--repeat 5]

The DAG is layered like a real fan-out/fan-in pipeline: tasks in rows of 10, each task
depending on two tasks of the row before (`depends: "a && b"`), every tenth with a
`when` over a task's result, every seventh looped with `withItems`, all calling one
container template with a parameter.
"""

from __future__ import annotations

import argparse
import statistics
import time

import yaml

from actorflow.definitions.loader import load_text
from actorflow.definitions.models import Workflow

ROW = 10


def argo_dag(count: int) -> str:
    """An Argo Workflow of `count` DAG tasks, as YAML text."""
    tasks = []
    for i in range(count):
        task: dict[str, object] = {
            "name": f"t{i}",
            "template": "echo",
            "arguments": {"parameters": [{"name": "message", "value": f"task {i}"}]},
        }
        if i >= ROW:
            row_start = (i // ROW - 1) * ROW
            a, b = row_start + i % ROW, row_start + (i + 1) % ROW
            task["depends"] = f"t{a} && t{b}"
            if i % 10 == 3:
                task["when"] = f"{{{{tasks.t{a}.outputs.result}}}} != skip"
        if i % 7 == 5:
            task["withItems"] = ["x", "y"]
            task["arguments"] = {"parameters": [{"name": "message", "value": "{{item}}"}]}
        tasks.append(task)
    doc = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "bench-dag-"},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {"name": "main", "dag": {"tasks": tasks}},
                {
                    "name": "echo",
                    "inputs": {"parameters": [{"name": "message"}]},
                    "container": {
                        "image": "busybox",
                        "command": ["echo"],
                        "args": ["{{inputs.parameters.message}}"],
                    },
                },
            ],
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


def convert_and_validate(text: str) -> int:
    """The loader's work at apply: YAML → Argo → native → validated models; node count."""
    (workflow,) = load_text(text, file="bench-dag.yaml")
    assert isinstance(workflow, Workflow)
    return len(workflow.spec.nodes)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.convert")
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    text = argo_dag(args.nodes)
    t0 = time.perf_counter()
    convert_and_validate(text)  # cold: imports, and CEL compiles each source once a process
    cold = time.perf_counter() - t0
    walls = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        nodes = convert_and_validate(text)
        walls.append(time.perf_counter() - t0)
    if nodes != args.nodes:
        raise SystemExit(f"converted {nodes} nodes, not {args.nodes}")
    label = f"C1 Argo DAG of {args.nodes} tasks, convert + validate, s"
    print(f"{label:48} {statistics.median(walls):10.3f}")
    print(f"{'   fastest of ' + str(args.repeat) + ', s':48} {min(walls):10.3f}")
    print(f"{'   first, in a fresh process (cold), s':48} {cold:10.3f}")


if __name__ == "__main__":
    main()
