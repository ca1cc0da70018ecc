"""The API's audit log is bounded: a stream with a max age and a max count (oldest dropped),
limits changed at the next open, and entries an older API left in the bucket moved into it.

A private nats-server, so the limits tried here touch no other test's audit log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy

from actorflow.actors.store.jetstream import connect
from actorflow.cluster import nats_process
from actorflow.definitions import events as ev
from actorflow.server.access import AuditEntry
from actorflow.server.store import AccessStore, now

pytestmark = pytest.mark.integration
DAY = 86400.0


@pytest.fixture
async def js(tmp_path: Path) -> AsyncIterator[JetStreamContext]:
    proc = nats_process.start(tmp_path / "jetstream", tmp_path / "run", detached=False)
    nc = await connect(proc.url, name="audit-test", connect_timeout=10)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()
        nats_process.stop(proc.pid)


def _entry(user: str, namespace: str = "default") -> AuditEntry:
    return AuditEntry(
        at=now(), user=user, action="start", target=f"run/{user}", namespace=namespace
    )


async def test_the_audit_log_keeps_what_its_limits_say(
    js: JetStreamContext, tmp_path: Path
) -> None:
    store = await AccessStore.open(js, tmp_path, audit_max_age_days=2, audit_max_entries=3)
    for i in range(5):
        await store.audit(_entry(f"u{i}", namespace="team-a" if i % 2 else "default"))
    assert [e.user for e in await store.audit_log()] == ["u2", "u3", "u4"]
    info = await js.stream_info(ev.STREAM_AUDIT)
    assert (info.config.max_msgs, info.config.max_age) == (3, 2 * DAY)
    assert info.config.discard == DiscardPolicy.OLD
    assert info.state.messages == 3
    # Opened again with other limits (the defaults): the stream takes them, keeps its entries.
    store = await AccessStore.open(js, tmp_path)
    info = await js.stream_info(ev.STREAM_AUDIT)
    assert (info.config.max_msgs, info.config.max_age) == (100_000, 90 * DAY)
    await store.audit(_entry("u5"))
    assert [e.user for e in await store.audit_log()] == ["u2", "u3", "u4", "u5"]


async def test_entries_an_older_api_kept_in_the_bucket_move_to_the_stream_once(
    js: JetStreamContext, tmp_path: Path
) -> None:
    await AccessStore.open(js, tmp_path)
    kv = await js.key_value(ev.KV_API)
    old = [_entry("old-1"), _entry("old-2")]
    old[0] = old[0].model_copy(update={"at": old[0].at - timedelta(days=1)})
    for n, entry in enumerate(old):
        await kv.put(f"audit.2026010{n + 1}T000000000000.abcd", entry.model_dump_json().encode())
    await kv.put("user.keep", b"{}")  # not an audit key: left alone
    first, second = await AccessStore.open(js, tmp_path), await AccessStore.open(js, tmp_path)
    assert [e.user for e in await first.audit_log()] == ["old-1", "old-2"]
    assert [e.user for e in await second.audit_log()] == ["old-1", "old-2"]
    keys = await kv.keys()
    assert [k for k in keys if k.startswith("audit.")] == []
    assert "user.keep" in keys
