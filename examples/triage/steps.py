"""Handlers of the triage example: plain Python, nothing to import from actorflow but the
error type a step raises to fail with a code of its own."""

from __future__ import annotations

import importlib

from actorflow import StepError


def measure(module: str) -> dict[str, object]:
    """How much documentation a standard-library module carries."""
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise StepError("NO_SUCH_MODULE", f"{module}: {exc}", retryable=False) from exc
    doc = mod.__doc__ or ""
    return {"module": module, "words": len(doc.split()), "long": len(doc.split()) > 200}


def summarize(module: str, words: int) -> str:
    return f"{module}: a long read ({words} words of module docstring)"


def explain(error: dict[str, object]) -> str:
    return f"could not measure: [{error['code']}] {error['message']}"
