"""A run's DAG in the terminal (`runs show --graph`, `runs watch`): a tree of the layout's
layers, each node with its status in colour, one mark per attempt, its duration and what it
waits for; a failed node's error under it, a `workflow:` node's child run folded under it.

Layers read top to bottom in any terminal width, where boxes and arrows drawn in
characters break as soon as a layer is wider than the screen.
"""

from __future__ import annotations

from collections import defaultdict

from rich.text import Text
from rich.tree import Tree

from actorflow._display import seconds, status_text
from actorflow._run_view import NodeView, RunView, TaskView
from actorflow.definitions.events import NodeStatus

__all__ = ["graph_tree"]

_MARK = {
    NodeStatus.SUCCEEDED: ("✓", "green"),
    NodeStatus.FAILED: ("✗", "red"),
    NodeStatus.RETRYING: ("✗", "red"),
    NodeStatus.RUNNING: ("▶", "cyan"),
    NodeStatus.SCHEDULED: ("·", "yellow"),
    NodeStatus.SKIPPED: ("-", "dim"),
}
_STYLE = {
    NodeStatus.SUCCEEDED: "green",
    NodeStatus.FAILED: "red",
    NodeStatus.RETRYING: "red",
    NodeStatus.RUNNING: "cyan",
    NodeStatus.WAITING: "yellow",
    NodeStatus.SCHEDULED: "yellow",
    NodeStatus.SKIPPED: "dim",
    NodeStatus.PENDING: "dim",
}


def graph_tree(view: RunView) -> Tree:
    """The whole run, its child runs included, as one rich tree."""
    record = view.record
    head = Text.assemble((record.run_id, "bold"), "  ", status_text(record.status))
    if record.started_at and record.finished_at:
        head.append(f"  {seconds((record.finished_at - record.started_at).total_seconds())}")
    tree = Tree(head, guide_style="dim")
    _layers(tree, view)
    return tree


def _layers(tree: Tree, view: RunView) -> None:
    needs: dict[str, list[str]] = defaultdict(list)
    for edge in view.edges:
        needs[edge.target].append(edge.source)
    by_layer: dict[int, list[NodeView]] = defaultdict(list)
    for node in view.nodes:
        by_layer[node.layer].append(node)
    for layer in sorted(by_layer):
        branch = tree.add(Text(f"layer {layer}", style="dim"))
        for node in by_layer[layer]:
            _node(branch, node, needs[node.id])


def _node(branch: Tree, node: NodeView, needs: list[str]) -> None:
    style = _STYLE.get(node.status, "")
    label = Text.assemble(("● ", style), (node.id, "bold"), "  ", (node.status.value, style))
    attempts = [a for t in node.tasks for a in t.attempts]
    if attempts:
        label.append("  ")
        for a in attempts:
            mark, mark_style = _MARK.get(a.status, ("?", ""))
            label.append(mark, style=mark_style)
        label.append(f" {len(attempts)} attempt{'s' if len(attempts) != 1 else ''}")
    if node.duration is not None:
        label.append(f"  {seconds(node.duration)}")
    if needs:
        label.append(f"  ← {', '.join(needs)}", style="dim")
    sub = branch.add(label)
    for task in node.tasks:
        _task(sub, task, len(node.tasks) > 1)


def _task(sub: Tree, task: TaskView, several: bool) -> None:
    if several:
        line = Text.assemble(
            (task.key, "bold"), "  ", (task.status.value, _STYLE.get(task.status, ""))
        )
        if task.duration is not None:
            line.append(f"  {seconds(task.duration)}")
        sub = sub.add(line)
    if task.error is not None:
        sub.add(Text(f"[{task.error.code}] {task.error.message}", style="red"))
    if task.guidance:
        sub.add(Text(task.guidance, style="bold yellow"))
    if task.note:
        sub.add(Text(task.note, style="dim"))
    if task.child is not None:
        child = sub.add(
            Text.assemble(
                "child ", (task.child.run_id, "bold"), "  ", status_text(task.child.record.status)
            )
        )
        _layers(child, task.child)
    elif task.child_run_id:
        sub.add(Text(f"child {task.child_run_id}", style="dim"))
