"""Argo's `retryStrategy` as a native retry policy.

``limit`` retries are ``limit + 1`` attempts; ``backoff`` gives the first delay, the factor
and the cap (without one, Argo retries at once: no delay); ``maxDuration`` (how long
retrying may go on) bounds the node's attempts together, as a native node `timeout`. A
native policy retries any failure, so
``retryPolicy: OnError`` / ``OnTransientError`` (Argo retries only its own errors, not a
command's non-zero exit) list every exit code as non-retryable, and an ``expression`` is
evaluated here, for every exit code 1-255, to list the codes it refuses to retry.
"""

from __future__ import annotations

from typing import Any

import cel

from actorflow.definitions.convert.argo_expr import ArgoExprError, expr_to_cel
from actorflow.definitions.convert.argo_names import seconds
from actorflow.definitions.convert.argo_scope import Issues
from actorflow.definitions.yaml_source import FieldPath

#: What `retryStrategy` without a limit means in Argo: retry until it succeeds.
UNLIMITED_ATTEMPTS = 1000
_EXIT_CODES = range(1, 256)
_POLICIES = ("Always", "OnFailure", "OnError", "OnTransientError")


def retry_policy(
    issues: Issues, strategy: Any, path: FieldPath
) -> tuple[dict[str, Any] | None, Any]:
    """The native retry policy, and the node timeout `maxDuration` implies (or None)."""
    if not isinstance(strategy, dict):
        issues.add(path, "retryStrategy must be a mapping")
        return None, None
    policy: dict[str, Any] = {}
    limit = strategy.get("limit")
    if limit is None:
        policy["maxAttempts"] = UNLIMITED_ATTEMPTS
    else:
        try:
            policy["maxAttempts"] = min(int(str(limit)) + 1, UNLIMITED_ATTEMPTS)
        except ValueError:
            issues.add(
                (*path, "limit"),
                f"limit {limit!r} is not a whole number (a tag there is not converted)",
            )
            return None, None
    backoff = strategy.get("backoff") or {}
    max_duration = None
    if not backoff:  # Argo retries at once without a backoff
        policy["initialDelay"] = 0
    if isinstance(backoff, dict):
        if "duration" in backoff:
            policy["initialDelay"] = seconds(backoff["duration"])
        if "factor" in backoff:
            try:
                policy["backoff"] = max(float(str(backoff["factor"])), 1.0)
            except ValueError:
                issues.add((*path, "backoff", "factor"), "factor must be a number")
        if "cap" in backoff:
            policy["maxDelay"] = seconds(backoff["cap"])
        if "maxDuration" in backoff:
            max_duration = seconds(backoff["maxDuration"])
    else:
        issues.add((*path, "backoff"), "backoff must be a mapping")
    when = strategy.get("retryPolicy", "OnFailure" if "expression" not in strategy else "Always")
    if when not in _POLICIES:
        issues.add(
            (*path, "retryPolicy"), f"retryPolicy {when!r} is not one of {', '.join(_POLICIES)}"
        )
    refused: list[int] = []
    if when in ("OnError", "OnTransientError"):
        refused = list(_EXIT_CODES)
    if "expression" in strategy:
        codes = _refused_by(issues, strategy["expression"], (*path, "expression"))
        refused = sorted(set(refused) | set(codes))
    if "affinity" in strategy:
        pass  # which node a retry lands on: no meaning on this machine
    if refused:
        policy["nonRetryable"] = [f"EXIT_{c}" for c in refused]
    return policy, max_duration


def _resolve(path: list[str]) -> str:
    if path[0] == "lastRetry" and len(path) == 2 and path[1] in ("exitCode", "status"):
        return f"lastRetry.{path[1]}"
    raise ArgoExprError(
        f"{'.'.join(path)!r}: only lastRetry.exitCode and lastRetry.status are translated"
    )


def _refused_by(issues: Issues, text: Any, path: FieldPath) -> list[int]:
    """The exit codes for which a retry expression is false."""
    if not isinstance(text, str):
        issues.add(path, "must be a string")
        return []
    try:
        program = expr_to_cel(text, _resolve)
        refused = []
        for code in _EXIT_CODES:
            context = {"lastRetry": {"exitCode": str(code), "status": "Failed"}}
            verdict = cel.evaluate(program, context)
            if not isinstance(verdict, bool):
                raise ArgoExprError(f"gives {verdict!r}, not a boolean")
            if not verdict:
                refused.append(code)
        return refused
    except ArgoExprError as exc:
        issues.add(path, f"{text!r}: {exc}")
    except Exception as exc:  # cel raises plain ValueError / RuntimeError subclasses
        issues.add(path, f"{text!r}: {' '.join(str(exc).split())}")
    return []
