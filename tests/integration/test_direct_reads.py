"""Batched direct gets (`store.direct`) against the session's real nats-server: the same
messages, in the same order, as a consumer reads — across several batches, among other
subjects' messages — and a run's history read both ways folds to the same events."""

from __future__ import annotations

import uuid

import nats
from nats.js.api import StreamConfig

import actorflow
from actorflow.actors.run.history import replay
from actorflow.actors.store import direct
from actorflow.actors.store.direct import read_direct
from actorflow.actors.store.streams import read_stream
from actorflow.cluster import nats_process


async def test_a_subject_read_directly_equals_a_consumers_reading(
    nats_server: nats_process.NatsProcess,
) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    stream = f"T_DIRECT_{uuid.uuid4().hex[:8]}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.>"], allow_direct=True))
    try:
        many = 2 * direct._BATCH + 7  # three requests
        for i in range(many):
            await js.publish(f"{stream}.a.{i % 3}", f"a{i}".encode())
            if i % 5 == 0:
                await js.publish(f"{stream}.b.x", f"b{i}".encode())
        got = [m async for m in read_direct(js, stream, f"{stream}.a.>")]
        want = [m async for m in read_stream(js, stream, f"{stream}.a.>")]
        assert [m.data for m in got] == [f"a{i}".encode() for i in range(many)]
        assert [(m.subject, m.seq) for m in got] == [
            (m.subject, m.metadata.sequence.stream) for m in want
        ]
        assert [m.data async for m in read_direct(js, stream, f"{stream}.nothing.>")] == []
    finally:
        await js.delete_stream(stream)
        await nc.close()


async def test_a_runs_history_read_directly_is_the_same(
    client: actorflow.Client, settings: actorflow.Settings
) -> None:
    b = actorflow.WorkflowBuilder("direct-chain", version="1")
    a = b.node("a", "add@1", inputs={"a": 1, "b": 2})
    b.output("sum", b.node("b", "add@1", inputs={"a": a.output, "b": 3}).output)
    client.apply(b.build())
    run = client.run("direct-chain", {}, version="1")
    assert run.result(timeout=60) == {"sum": 6}
    nc = await nats.connect(str(settings.nats_url))
    try:
        js = nc.jetstream()
        exact, fast = await replay(js, run.run_id), await replay(js, run.run_id, direct=True)
    finally:
        await nc.close()
    assert len(exact) > 4  # started, scheduled, completed twice, stopped at least
    assert fast == exact
