"""Registering and deleting definitions: checked as a batch, stored in the registry, and
the function pools brought in line with what was stored."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.engine import make_url

from actorflow.actors.controller.plugins import Document, PluginHost
from actorflow.actors.controller.pool_state import PoolManager
from actorflow.actors.controller.results import Applied, Deleted
from actorflow.actors.functions.pools import FunctionPool, check_fits
from actorflow.actors.functions.secrets import SecretMissingError, read_secret
from actorflow.actors.store.registry import Registry
from actorflow.definitions.errors import (
    ActorflowError,
    DefinitionError,
    DefinitionIssue,
    InUseError,
    NotFoundError,
)
from actorflow.definitions.graph import (
    check_template,
    check_workflow,
    unconditional_cycles,
    validate_workflow,
)
from actorflow.definitions.models import (
    Connection,
    Definition,
    Function,
    RuntimeEnv,
    StepTemplate,
    Workflow,
    split_ref,
)
from actorflow.definitions.plan import (
    builtin_functions,
    connection_refs,
    function_refs,
    workflow_refs,
)
from actorflow.definitions.templates import (
    as_workflow,
    catalog,
    check_uses,
    expand,
    template_refs,
)

log = logging.getLogger(__name__)

_KINDS: dict[
    str,
    type[Function] | type[Workflow] | type[StepTemplate] | type[RuntimeEnv] | type[Connection],
] = {
    "Function": Function,
    "Workflow": Workflow,
    "Template": StepTemplate,
    "RuntimeEnv": RuntimeEnv,
    "Connection": Connection,
}


class DefinitionService:
    def __init__(self, registry: Registry, pools: PoolManager, plugin: PluginHost) -> None:
        self._registry = registry
        self._pools = pools
        self._plugin = plugin
        # One change at a time: a delete must not interleave with an apply's checks.
        self._lock = asyncio.Lock()

    async def restore_pools(self) -> None:
        """A pool for every registered function (controller start); one that cannot start
        is logged and left to the next apply."""
        for function in await self._registry.functions():
            try:
                await self._pools.start(function, await self.env_of(function))
            except Exception as exc:
                log.error("pool %s not restored: %s", function.ref, exc)

    async def apply(self, documents: list[Document]) -> list[Applied]:
        """Register definitions: environments, connections, then functions, templates,
        workflows.

        Every document is validated — references resolved, requests checked against the
        cluster's nodes — before any is stored: a bad batch changes nothing. A function's
        pool is (re)started only when its definition changed, or when it could not serve.
        """
        async with self._lock:
            plugin_docs, documents = self._plugin.split(documents)
            parsed = [_parse(doc) for doc in documents]
            envs = [d for d in parsed if isinstance(d, RuntimeEnv)]
            functions = [d for d in parsed if isinstance(d, Function)]
            workflows = [d for d in parsed if isinstance(d, Workflow)]
            templates = [d for d in parsed if isinstance(d, StepTemplate)]
            connections = [d for d in parsed if isinstance(d, Connection)]
            _check_connections(connections)
            batch = {f.ref for f in functions}
            implicit = {
                f.ref: f
                for wf in [*workflows, *map(as_workflow, templates)]
                for f in builtin_functions(wf)
            }
            functions += [f for ref, f in implicit.items() if ref not in batch]
            new_envs = {e.ref: e for e in envs}
            resolved = {f.ref: await self.env_of(f, new_envs) for f in functions}
            for function in functions:
                check_fits(function, resolved[function.ref])
            known = {f.ref for f in await self._registry.functions()} | {f.ref for f in functions}
            registered = await self._registry.workflows()
            known_wfs = {w.ref for w in [*registered, *workflows]}
            known_conns = {c.ref for c in [*await self._registry.connections(), *connections]}
            for wf in workflows:
                validate_workflow(
                    wf,
                    known_functions=known,
                    known_workflows=known_wfs,
                    known_connections=known_conns,
                )
            _check_recursion(workflows, registered)
            await self._check_templates(templates, workflows, known, known_conns)
            batch = {w.metadata.name for w in workflows}  # names, and pinned references
            batch |= {f"{w.metadata.name}@{w.metadata.version}" for w in workflows}
            await self._plugin.check(plugin_docs, batch)
            results = [_applied(env, await self._registry.put(env)) for env in envs]
            results += [_applied(c, await self._registry.put(c)) for c in connections]
            for function in functions:
                if self._pools.needs_start(function):
                    await self._pools.start(function, resolved[function.ref])
                changed = await self._registry.put(function)
                results.append(_applied(function, changed, self._pools.get(function.ref)))
            for template in templates:
                results.append(_applied(template, await self._registry.put(template)))
            for wf in workflows:
                results.append(_applied(wf, await self._registry.put(wf)))
            return results + [
                Applied.model_validate(r) for r in await self._plugin.apply(plugin_docs)
            ]

    async def _check_templates(
        self,
        templates: list[StepTemplate],
        workflows: list[Workflow],
        known: set[str],
        connections: set[str],
    ) -> None:
        """Templates pass a workflow's checks; every template node names a known template
        with the inputs it declares, and no chain of templates comes back to itself; what
        a workflow expands into is checked once more as a whole."""
        registered = await self._registry.templates()
        latest = {}
        for name in sorted({t.metadata.name for t in registered}):
            latest[name] = await self._registry.latest_version("Template", name)
        lookup = catalog(registered, latest, templates).get
        issues: list[DefinitionIssue] = []
        for template in templates:
            found = check_template(template, known_functions=known, known_connections=connections)
            found += check_uses(template.spec.nodes, lookup)
            issues += [_named(i, template) for i in found]
        for wf in workflows:
            found = check_uses(wf.spec.nodes, lookup)
            if not found:
                expanded, _ = expand(wf, lookup)
                found = [
                    DefinitionIssue(f"once its templates are expanded: {i.message}", field="spec")
                    for i in check_workflow(
                        expanded,
                        known_functions=known,
                        expanded=True,
                        known_connections=connections,
                    )
                ]
            issues += [_named(i, wf) for i in found]
        if issues:
            raise DefinitionError(issues)

    async def env_of(
        self, function: Function, batch: dict[str, RuntimeEnv] | None = None
    ) -> RuntimeEnv | None:
        """The function's runtime environment, from this batch or the registry."""
        ref = function.spec.runtime_env
        if ref is None:
            return None
        if batch and ref in batch:
            return batch[ref]
        name, version = split_ref(ref)
        try:
            return await self._registry.runtime_env(name, version)
        except NotFoundError:
            raise DefinitionError.single(
                f"function {function.ref}: runtime env {ref!r} is not registered",
                field="spec.runtimeEnv",
            ) from None

    async def delete(self, kind: str, ref: str) -> Deleted:
        """Delete one version of a definition — refused while a registered definition still
        names it: pinned, or as ``@latest`` when it is the only version (a workflow names a
        function, template, connection or sub-workflow; a function its environment; a
        trigger its workflow). Runs already started keep what they resolved at their start."""
        name, version = split_ref(ref)
        async with self._lock:
            if kind not in _DELETABLE:
                raise DefinitionError.single(f"cannot delete a {kind}", field="kind")
            if version == "latest":
                version = await self._registry.latest_version(kind, name)
            if kind == "RuntimeEnv":
                await self._delete_env(name, version)
                return Deleted(kind=kind, name=name, version=version)
            versions = await self._registry.versions(kind, name)
            if version not in versions:
                raise NotFoundError(kind.lower(), f"{name}@{version}")
            only = len(versions) == 1
            users = [
                user
                for user, refs in await self._references(kind)
                if f"{name}@{version}" in refs or (only and f"{name}@latest" in refs)
            ]
            if users:
                raise InUseError(
                    f"{kind.lower()} {name}@{version} is used by {', '.join(users)}; "
                    "delete or re-pin them first"
                )
            await self._registry.delete(kind, name, version)
            if kind == "Function":
                await self._pools.remove(f"{name}@{version}")
            return Deleted(kind=kind, name=name, version=version)

    async def _references(self, kind: str) -> list[tuple[str, set[str]]]:
        """Who names definitions of `kind`, with the references each makes (as written)."""
        workflows = await self._registry.workflows()
        templates = await self._registry.templates()
        named = [(f"workflow {wf.ref}", wf) for wf in workflows]
        named += [(f"template {t.ref}", as_workflow(t)) for t in templates]
        if kind == "Function":
            return [(who, function_refs(wf)) for who, wf in named]
        if kind == "Connection":
            return [(who, connection_refs(wf)) for who, wf in named]
        if kind == "Template":
            return [(who, template_refs(wf.spec.nodes)) for who, wf in named]
        refs = [(f"workflow {wf.ref}", workflow_refs(wf)) for wf in workflows]
        with contextlib.suppress(ActorflowError):  # no triggers service: no triggers
            starts = await self._plugin.call("trigger.workflows", {})
            refs += [(f"trigger {t}", {_pinned(w)}) for t, w in starts.items()]
        return refs

    async def _delete_env(self, name: str, version: str) -> None:
        await self._registry.runtime_env(name, version)  # NotFoundError if absent
        users = [
            f.ref
            for f in await self._registry.functions()
            if f.spec.runtime_env == f"{name}@{version}"
        ]
        if users:
            raise InUseError(
                f"runtime env {name}@{version} is used by function(s) {', '.join(users)}"
            )
        await self._registry.delete("RuntimeEnv", name, version)

    async def runtime_envs(self) -> list[Document]:
        return [
            e.model_dump(mode="json", by_alias=True) for e in await self._registry.runtime_envs()
        ]


_DELETABLE = frozenset({"Function", "RuntimeEnv", "Workflow", "Template", "Connection"})


def _pinned(ref: str) -> str:
    """A trigger's workflow as a reference: a bare name means its latest version."""
    return ref if "@" in ref else f"{ref}@latest"


def _parse(doc: Document) -> Definition:
    model = _KINDS.get(str(doc.get("kind")))
    if model is None:
        raise DefinitionError.single(f"unknown kind {doc.get('kind')!r}", field="kind")
    return model.model_validate(doc)


def _check_connections(connections: list[Connection]) -> None:
    """Refuse a connection this controller could not use either: its password's variable
    or file has no value here, or its driver does not import. (Replicas read the password
    again at each call.)"""
    issues: list[DefinitionIssue] = []
    for connection in connections:
        password = connection.spec.password
        if password is not None:
            try:
                read_secret(password)
            except SecretMissingError as exc:
                issues.append(
                    _named(
                        DefinitionIssue(
                            f"the password cannot be read: {exc.reason}",
                            field=f"spec.password.{exc.field}",
                        ),
                        connection,
                    )
                )
        url = make_url(connection.spec.url)
        try:
            url.get_dialect().import_dbapi()
        except ImportError as exc:
            message = f"the driver of {url.drivername!r} is not installed ({exc.name or exc})"
            issues.append(_named(DefinitionIssue(message, field="spec.url"), connection))
    if issues:
        raise DefinitionError(issues)


def _check_recursion(batch: list[Workflow], registered: list[Workflow]) -> None:
    """Refuse a batch that closes a chain of sub-workflows with no condition on it."""
    names = {w.metadata.name for w in batch}
    replaced = {w.ref for w in batch}
    everything = [*batch, *(w for w in registered if w.ref not in replaced)]
    issues = [
        DefinitionIssue(
            f"Workflow {wf.ref}: sub-workflows call each other with no `when` to end it: {path}",
            field=f"spec.nodes[{index}].workflow",
        )
        for wf, index, path in unconditional_cycles(everything)
        if set(path.split(" -> ")) & names
    ]
    if issues:
        raise DefinitionError(issues)


def _named(issue: DefinitionIssue, definition: Definition) -> DefinitionIssue:
    return DefinitionIssue(
        f"{definition.kind} {definition.ref}: {issue.message}", line=issue.line, field=issue.field
    )


def _applied(definition: Definition, changed: bool, pool: FunctionPool | None = None) -> Applied:
    return Applied(
        kind=definition.kind,
        name=definition.metadata.name,
        version=definition.metadata.version,
        changed=changed,
        error=pool.failure.message if pool is not None and pool.failure is not None else None,
    )
