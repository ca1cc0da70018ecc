"""The policy applied to a request: look up what a resource's ownership is, refuse (404
for what the caller may not see, 403 for what they may see but not do), record ownership
of what the API creates, and write the audit log."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from actorflow._client import AsyncClient
from actorflow.definitions import events as ev
from actorflow.definitions.errors import NotFoundError
from actorflow.server.access import (
    DEFAULT_NAMESPACE,
    RANK,
    UNOWNED,
    AuditEntry,
    Ownership,
    Verb,
    allowed,
    may_create,
)
from actorflow.server.deps import Authenticated, Caller, EngineClient, Store
from actorflow.server.errors import ApiError
from actorflow.server.store import AccessStore, now


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


@dataclass
class Guard:
    caller: Caller
    store: AccessStore
    client: AsyncClient

    @property
    def user(self) -> str:
        return self.caller.user.name

    async def workflow(self, name: str, verb: Verb) -> Ownership:
        """The workflow's ownership, if the caller may `verb` it."""
        own = await self.store.ownership("workflow", name) or UNOWNED
        return self._check(own, verb, NotFoundError("workflow", name), f"workflow {name!r}")

    async def run(self, run_id: str, verb: Verb) -> Ownership:
        """The run's ownership (that of its workflow for a run the API did not start)."""
        own = await self.store.ownership("run", run_id)
        if own is None:
            record = await self.client.record(run_id)
            own = await self.store.ownership("workflow", record.workflow) or UNOWNED
        return self._check(own, verb, NotFoundError("run", run_id), f"run {run_id!r}")

    def _check(self, own: Ownership, verb: Verb, hidden: Exception, what: str) -> Ownership:
        if not allowed(self.caller.user, "see", own):
            raise hidden
        if not allowed(self.caller.user, verb, own):
            raise forbidden(f"{self.user} may not {verb} {what} (namespace {own.namespace})")
        return own

    def may_create(self, namespace: str) -> None:
        if not may_create(self.caller.user, namespace):
            raise forbidden(f"{self.user} is no editor of namespace {namespace!r}")

    def has_role(self, role: str) -> None:
        """Somewhere: for what belongs to no namespace (functions, signals, events)."""
        if (
            max((self.caller.user.role_in(ns) for ns in self.caller.user.roles), default=0)
            < (RANK[role])
        ):
            raise forbidden(f"{self.user} is no {role} of any namespace")

    async def visible_runs(self, records: Iterable[ev.RunRecord]) -> list[ev.RunRecord]:
        runs = await self.store.owned("run")
        workflows = await self.store.owned("workflow")
        return [
            r
            for r in records
            if allowed(
                self.caller.user,
                "see",
                runs.get(r.run_id) or workflows.get(r.workflow) or UNOWNED,
            )
        ]

    async def audit(
        self, action: str, target: str, namespace: str = DEFAULT_NAMESPACE, status: int = 200
    ) -> None:
        await self.store.audit(
            AuditEntry(
                at=now(),
                user=self.user,
                action=action,
                target=target,
                namespace=namespace,
                status=status,
            )
        )


def guard(caller: Authenticated, store: Store, client: EngineClient) -> Guard:
    return Guard(caller=caller, store=store, client=client)


Guarded = Annotated[Guard, Depends(guard)]
