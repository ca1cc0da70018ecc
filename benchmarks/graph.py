"""G1-G3: what graph edits, the graph diff and the layout cost on a large workflow.

    python -m benchmarks.graph [--nodes 500] [--repeat 9]

No cluster: everything here is the pure `definitions` modules on text made up front. A
workflow of `--nodes` nodes, each needing one or two earlier ones (flow and block `needs`)
and reading another's output, with comments and blank lines between them.

G1 — one graph edit (text in, validated text out), median of `--repeat`, per op: add a
leaf node, remove it again, add a dependency, remove one, update a node's inputs.
Budget: 100 ms each.

G2 — `diff_graph` between the workflow and it with one node added and one need removed.

G3 — `layout` of the workflow (layers, ordering with dummy points, coordinates), from the
loaded model. Budget: 1 s. For scale, the native loader's `load_text` of the same text.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from actorflow.definitions.edit import (
    add_dependency,
    add_node,
    remove_dependency,
    remove_node,
    update_node,
)
from actorflow.definitions.graph_diff import diff_graph
from actorflow.definitions.layout import layout
from actorflow.definitions.loader import load_text
from actorflow.definitions.models import Workflow


def workflow_text(count: int) -> str:
    lines = [
        "apiVersion: actorflow/v1",
        "kind: Workflow",
        "metadata: {name: bench-graph, version: '1'}",
        "spec:",
        "  inputs:",
        "    n: {type: integer, default: 1}",
        "  nodes:",
    ]
    for i in range(count):
        if i % 10 == 0:
            lines += ["", f"    # stage {i // 10}"]
        lines += [f"    - id: n{i}", "      function: step@1"]
        deps = sorted({(i - 1) // 2, max(i - 7, 0)}) if i else []
        if deps and i % 2:
            lines.append(f"      needs: [{', '.join(f'n{d}' for d in deps)}]")
        elif deps:
            lines += ["      needs:", *(f"        - n{d}" for d in deps)]
        source = f"nodes.n{i - 3}.output" if i > 3 else "inputs.n"
        lines += ["      inputs:", f'        x: "${{{{ {source} }}}}"', f"        i: {i}"]
    return "\n".join(lines) + "\n"


def _median_ms(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm: imports, caches
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def run(count: int, repeat: int) -> dict[str, float]:
    text = workflow_text(count)
    last = f"n{count - 1}"
    with_leaf = add_node(text, {"id": "leaf", "function": "step@1", "needs": [last]})
    (wf,) = load_text(text)
    assert isinstance(wf, Workflow)
    changed = remove_dependency(with_leaf, f"n{count // 2 + 1}", f"n{count // 4}")
    return {
        f"G1 add a leaf node ({count} nodes), ms": _median_ms(
            lambda: add_node(text, {"id": "leaf", "function": "step@1", "needs": [last]}),
            repeat,
        ),
        "   remove that node, ms": _median_ms(lambda: remove_node(with_leaf, "leaf"), repeat),
        "   add a dependency, ms": _median_ms(
            lambda: add_dependency(text, f"n{count - 2}", "n5"), repeat
        ),
        "   remove a dependency, ms": _median_ms(
            lambda: remove_dependency(text, f"n{count // 2 + 1}", f"n{count // 4}"), repeat
        ),
        "   update a node's inputs, ms": _median_ms(
            lambda: update_node(text, f"n{count // 2}", {"inputs": {"x": 1}}), repeat
        ),
        "G2 diff_graph (one node added, one need removed), ms": _median_ms(
            lambda: diff_graph(text, changed), repeat
        ),
        f"G3 layout of {count} nodes, ms": _median_ms(lambda: layout(wf), repeat),
        "   load_text of the same text (for scale), ms": _median_ms(
            lambda: load_text(text), repeat
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.graph")
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    for name, value in run(args.nodes, args.repeat).items():
        print(f"{name:52} {value:10.3f}")


if __name__ == "__main__":
    main()
