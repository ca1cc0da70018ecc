"""Word count over real text that ships with every Python: the standard library's docs.

`count` runs once per module (fan-out), `merge` adds the counts up (fan-in).
"""

from __future__ import annotations

import collections
import importlib
import importlib.util
import inspect
import re

from actorflow import StepContext, StepError

_WORD = re.compile(r"[a-z][a-z']{2,}")
_STOP = frozenset(
    {
        "the",
        "and",
        "for",
        "are",
        "this",
        "that",
        "with",
        "not",
        "you",
        "can",
        "but",
        "from",
        "has",
        "have",
        "its",
        "was",
        "will",
        "use",
        "used",
        "any",
        "all",
        "one",
        "may",
        "which",
        "when",
        "than",
        "then",
        "these",
        "those",
        "into",
        "also",
        "only",
        "such",
        "each",
        "more",
    }
)


def plan(modules: list[str]) -> list[str]:
    """Check the module names up front, so a typo fails before any work is fanned out."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise StepError(
            "UNKNOWN_MODULE", f"no such module(s): {', '.join(missing)}", retryable=False
        )
    return sorted(set(modules))


def count(module: str, ctx: StepContext) -> dict[str, int]:
    """Count the words of every docstring in one module."""
    mod = importlib.import_module(module)
    texts = [inspect.getdoc(mod) or ""]
    for _, member in inspect.getmembers(mod):
        if getattr(member, "__module__", None) == module:
            texts.append(inspect.getdoc(member) or "")
    words = (w for text in texts for w in _WORD.findall(text.lower()) if w not in _STOP)
    counts = collections.Counter(words)
    ctx.logger.info("%s: %d distinct words", module, len(counts))
    return dict(counts)


def merge(counts: list[dict[str, int]], top: int) -> dict[str, object]:
    total: collections.Counter[str] = collections.Counter()
    for c in counts:
        total.update(c)
    return {
        "distinct_words": len(total),
        "total_words": sum(total.values()),
        "top": [[word, n] for word, n in total.most_common(top)],
    }
