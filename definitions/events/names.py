"""Every name on the wire: streams, buckets, subjects, KV keys, consumers, headers, ids.

Nothing outside this module spells an ``af.`` subject, a ``$KV.`` subject or a key by hand;
the builders below are the only way to them, so a rename is one edit here. Pure strings:
no NATS, no models (`result_subject` reads a `TaskRef` by duck typing).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Final, Literal

from actorflow.definitions.priorities import DEFAULT_PRIORITY as _DEFAULT

if TYPE_CHECKING:
    from actorflow.definitions.events.values import TaskRef

# --- the reserved subject space ---------------------------------------------------------------
RESERVED_SUBJECTS = "af.>"
"""Every subject below ``af.`` is actorflow's (runs, tasks, control, signals, triggers …)."""

# --- streams and the subjects they capture ----------------------------------------------------
STREAM_HISTORY = "AF_HISTORY"
HISTORY_SUBJECTS = "af.run.>"
STREAM_TASKS = "AF_TASKS"
TASK_SUBJECTS = "af.task.>"
STREAM_EVENTS = "AF_EVENTS"
EVENT_SUBJECTS = "af.events.>"
"""Lifecycle events: the one part of the reserved space anyone may subscribe to."""
RUN_EVENT_SUBJECTS = "af.events.run.>"
NODE_EVENT_SUBJECTS = "af.events.node.>"
STREAM_SIGNALS = "AF_SIGNALS"
SIGNAL_SUBJECTS = "af.signal.>"
STREAM_LOGS = "AF_LOGS"
LOG_SUBJECTS = "af.log.>"
STREAM_TRIGGERS = "AF_TRIGGER_EVENTS"
TRIGGER_SUBJECTS = "af.trigger.>"
STREAM_AUDIT = "AF_AUDIT"
AUDIT_SUBJECTS = "af.audit.>"
"""The REST API's audit log, ``af.audit.<namespace>``: bounded by age and count (oldest
dropped; ``ACTORFLOW_API_AUDIT_MAX_AGE_DAYS``, ``ACTORFLOW_API_AUDIT_MAX_ENTRIES``)."""
"""Schedule ticks and webhook deliveries, appended before a trigger consumes them."""
STREAM_QUEUES = "AF_QUEUES"
QUEUE_SUBJECTS = "af.queue.>"
"""Concurrency queues: one subject per (group, key), ``af.queue.<queue>``."""
STREAM_INGRESS = "AF_INGRESS"
"""Captures the (non-internal) subjects that triggers listen on; its subject list is the
union of the trigger subjects, updated when triggers are applied or deleted."""
IDLE_INGRESS_SUBJECT = "af.ingress.idle"
"""`STREAM_INGRESS` needs a subject while no trigger listens; nobody publishes on this one."""

# --- KV buckets and the object store ----------------------------------------------------------
KV_DEFINITIONS = "AF_DEFINITIONS"
KV_RUNS = "AF_RUNS"
KV_WAITS = "AF_WAITS"
KV_TRIGGERS = "AF_TRIGGERS"
"""``trigger.<name>`` (the applied Trigger, with its enabled flag), ``eventtype.<name>``,
``stats.<name>`` (`TriggerStats`) and ``webhook`` (the HTTP server's address)."""
KV_API = "AF_API"
"""The REST API's own state: ``user.<name>``, ``token.<id>`` (a keyed hash, never the
token), ``owner.<kind>.<name>`` (owner, namespace, visibility), ``source.<name>.<version>``
(a workflow's YAML as applied); ``audit.<time>.<id>`` only from before `STREAM_AUDIT`
(moved there when the API starts)."""
OBJECT_STORE = "AF_BLOBS"
METRICS_SNAPSHOT = "metrics.fold"
"""The controller's metrics fold and the history sequence it has seen up to (an object of
`OBJECT_STORE`; the content-addressed blobs beside it are named by their sha256)."""

# --- the parts of a run's history subject -----------------------------------------------------
DECISIONS = "d"
RESULTS = "r"
CONTROL = "c"
PROGRESS = "p"
CONTROL_PREFIX = "af.control"

# --- headers ----------------------------------------------------------------------------------
# The server acts on these two.
MSG_ID = "Nats-Msg-Id"
EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
KV_OPERATION = "KV-Operation"
"""Set (``DEL`` / ``PURGE``) on a KV stream message that deletes its key."""
DELIVERY = "Af-Delivery"
"""A webhook delivery's id, on the ``af.trigger.<name>.hook`` message that carries it."""
REJECT_REASON = "Af-Reject-Reason"
REJECT_MESSAGE = "Af-Reject-Message"
"""A refused webhook delivery, recorded on ``af.trigger.<name>.rejected``: why, and what."""
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
"""W3C Trace Context, on every message the engine publishes while tracing is on."""

# --- durable consumers ------------------------------------------------------------------------
SIGNAL_ROUTER = "controller-signals"
"""The controller's durable consumer of `SIGNAL_SUBJECTS`."""

_TOKEN_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _token(value: str) -> str:
    """Subject tokens cannot hold '.', '*', '>' or spaces: map anything else to '_'."""
    return _TOKEN_UNSAFE.sub("_", value)


def _token_or_wildcard(value: str) -> str:
    return value if value == "*" else _token(value)


# --- run history ------------------------------------------------------------------------------
def run_subject(run_id: str, part: str) -> str:
    return f"af.run.{run_id}.{part}"


def result_subject(run_id: str, task: TaskRef, *, started: bool = False) -> str:
    """Each attempt's result has a subject of its own, so "is it done?" is one direct get:
    ``af.run.<run_id>.r.<node>.<index|->.<attempt>[.remedy|.undo]`` (``.started`` for
    TaskStarted; ``.undo``: a compensation's)."""
    index = "-" if task.index is None else str(task.index)
    kind = ".remedy" if task.remedy else ".undo" if task.compensation else ""
    tail = kind + (".started" if started else "")
    return f"af.run.{run_id}.{RESULTS}.{task.node}.{index}.{task.attempt}{tail}"


def results_filter(run_id: str) -> str:
    return f"af.run.{run_id}.{RESULTS}.>"


def run_history_filter(run_id: str) -> str:
    return f"af.run.{run_id}.>"


def decision_msg_id(run_id: str, seq: int, incarnation: str = "") -> str:
    """The ``Nats-Msg-Id`` of the decision appended after `seq` (by `incarnation`): a retry
    of one's own append is deduplicated, a rival's append at the same sequence is fenced."""
    tail = f".{incarnation}" if incarnation else ""
    return f"{run_id}.{DECISIONS}.{seq}{tail}"


def result_msg_id(idempotency_key: str) -> str:
    """The ``Nats-Msg-Id`` of a task's result (`TaskScheduled.idempotency_key` + ``.result``)."""
    return f"{idempotency_key}.result"


def signal_event_id(run_id: str, node: str, signal_seq: int) -> str:
    """`RunSignalled.id` (and its ``Nats-Msg-Id``) of the signal at `signal_seq` for `node`."""
    return f"{run_id}.{node}.signal.{signal_seq}"


# --- control ----------------------------------------------------------------------------------
def control_subject(run_id: str) -> str:
    """Request/reply: a `ControlRequest` in, a `ControlReply` out."""
    return f"{CONTROL_PREFIX}.{run_id}"


def control_filter() -> str:
    """Every run's control subject (what the controller subscribes to)."""
    return f"{CONTROL_PREFIX}.*"


# --- starting runs ----------------------------------------------------------------------------
START_SUBJECT = "af.start"
"""Request/reply: a `StartRunRequest` in, a `StartRunReply` out (the controller answers)."""


RUN_ID_PATTERN: Final = r"^[A-Za-z0-9_-]{1,128}$"
"""A run id is one token of every subject and KV key it names: letters, digits, '_' and
'-' only (no '.', '*', '>', space or control character), at most 128 of them."""
_RUN_ID = re.compile(RUN_ID_PATTERN)


def run_id_problem(run_id: str) -> str | None:
    """Why `run_id` cannot name a run, or None when it can."""
    if _RUN_ID.fullmatch(run_id):
        return None
    return (
        f"run_id {run_id[:80]!r} is not 1-128 letters, digits, '_' or '-' "
        "(it becomes a token of NATS subjects and KV keys)"
    )


def new_run_id(workflow: str) -> str:
    """A fresh run id: the workflow's name and 40 random bits. Whoever starts a run names
    it, so that a start repeated after a lost reply starts the same run."""
    return f"{workflow}-{secrets.token_hex(5)}"


def parse_control_subject(subject: str) -> str:
    """The run id of a `control_subject`."""
    return subject.rpartition(".")[2]


# --- signals and waits ------------------------------------------------------------------------
def audit_subject(namespace: str) -> str:
    """Where an audit entry of `namespace` is appended (`STREAM_AUDIT`)."""
    return f"af.audit.{_token(namespace) or '_'}"


def signal_subject(signal: str, key: str) -> str:
    """Where a signal for the waits on (`signal`, `key`) is published."""
    return f"af.signal.{_token(signal)}.{_token(key) or '_'}"


def parse_signal_subject(subject: str) -> tuple[str, str]:
    """(signal, key) tokens of a `signal_subject`."""
    _, _, signal, key = subject.split(".", 3)
    return signal, key


def wait_key(signal: str, key: str, run_id: str, node: str) -> str:
    """A wait's registration in the waits bucket (prefix-searchable by signal and key)."""
    return f"{waits_prefix(signal, key)}{run_id}.{node}"


def waits_prefix(signal: str, key: str) -> str:
    """The start of every `wait_key` of (`signal`, `key`)."""
    return f"{_token(signal)}.{_token(key) or '_'}."


# --- concurrency queues ------------------------------------------------------------------------
def queue_name(group: str, key: str) -> str:
    """The queue of (`group`, `key`): a hash, so any key is safe in a subject and no key
    can reach into another's (128 bits: collisions are not a concern)."""
    return hashlib.sha256(f"{group}\n{key}".encode()).hexdigest()[:32]


def queue_subject(queue: str) -> str:
    """Where a queue's `QueueEntry` lines are appended, in order."""
    return f"af.queue.{queue}"


def queue_entry_id(run_id: str, episode: int) -> str:
    """A run's place in its queue for one episode (0 from its start, one more each time
    it is reopened after it finished)."""
    return f"{run_id}.{episode}"


def queue_msg_id(entry: str, op: str) -> str:
    """The ``Nats-Msg-Id`` of an enqueue or release of `entry`: a retried append lands once."""
    return f"{entry}.{op}"


# --- captured output --------------------------------------------------------------------------
def log_subject(run_id: str, node: str) -> str:
    """Captured output of one node of a run: ``af.log.<run_id>.<node>`` (every attempt and
    for-each item of the node shares it; the lines say which). A template group's node
    ``prep.fetch`` is ``prep-fetch`` here: no id a user writes holds a '-'."""
    return f"af.log.{run_id}.{_token(node.replace('.', '-'))}"


def logs_filter(run_id: str, node: str | None = None) -> str:
    """Every node's output of a run, or one node's."""
    return log_subject(run_id, node) if node else f"af.log.{run_id}.>"


def log_batch_msg_id(execution: str, batch: int) -> str:
    """The ``Nats-Msg-Id`` of one execution's `batch`-th `LogBatch`."""
    return f"{execution}.{batch}"


# --- the task queue ---------------------------------------------------------------------------
# One subject and one durable consumer per (function, version, priority). The default
# priority keeps the subject and consumer every task had before priorities existed, so a
# queue written by an older engine is served as it stands; priority N adds a ``.p<N>`` token
# (subject) / a ``~p<N>`` suffix (consumer: '~' is in no function name or version).
def task_subject(function: str, version: str, priority: int = _DEFAULT) -> str:
    """Where a task of `function`@`version` waits: ``af.task.<function>.<version>`` at the
    default priority, ``af.task.<function>.<version>.p<N>`` at priority N."""
    base = f"af.task.{_token(function)}.{_token(version)}"
    return base if priority == _DEFAULT else f"{base}.p{priority}"


def task_bands_filter(function: str, version: str) -> str:
    """Every `task_subject` of a pool but the default priority's (one token more)."""
    return f"af.task.{_token(function)}.{_token(version)}.*"


def task_subject_priority(subject: str, function: str, version: str) -> int | None:
    """The priority of one of `function`@`version`'s `task_subject`s; None for a subject
    that is not one."""
    base = task_subject(function, version)
    if subject == base:
        return _DEFAULT
    tail = subject.removeprefix(base + ".p")
    if tail != subject and tail.isdigit() and len(tail) == 1:
        return int(tail)
    return None


def pool_consumer(function: str, version: str, priority: int = _DEFAULT) -> str:
    """The durable consumer every replica of a pool pulls one priority's tasks from."""
    base = f"pool-{_token(function)}-{_token(version)}"
    return base if priority == _DEFAULT else f"{base}~p{priority}"


# --- lifecycle events -------------------------------------------------------------------------
def run_event_subject(workflow: str, run_id: str, status: str) -> str:
    """Lifecycle events of runs: ``af.events.run.<workflow>.<run_id>.<status>``."""
    return f"af.events.run.{_token(workflow)}.{run_id}.{status.lower()}"


def run_events_filter(workflow: str = "*", run_id: str = "*", status: str = "*") -> str:
    """The `run_event_subject`s of a workflow, a run or a status (``*``: any)."""
    return f"af.events.run.{_token_or_wildcard(workflow)}.{run_id}.{status.lower()}"


def parse_run_event_subject(subject: str) -> tuple[str, str, str] | None:
    """(workflow, run_id, status) of a `run_event_subject`; None for any other subject."""
    parts = subject.split(".")
    if len(parts) != 6 or parts[:3] != ["af", "events", "run"]:
        return None
    return parts[3], parts[4], parts[5]


def node_event_subject(workflow: str, run_id: str, node: str, status: str) -> str:
    """Lifecycle events of nodes: ``af.events.node.<workflow>.<run_id>.<node>.<status>``."""
    return f"af.events.node.{_token(workflow)}.{run_id}.{_token(node)}.{status.lower()}"


def node_events_filter(
    workflow: str = "*", run_id: str = "*", node: str = "*", status: str = "*"
) -> str:
    """The `node_event_subject`s of a workflow, a run, a node or a status (``*``: any)."""
    return (
        f"af.events.node.{_token_or_wildcard(workflow)}.{run_id}."
        f"{_token_or_wildcard(node)}.{status.lower()}"
    )


# --- triggers ---------------------------------------------------------------------------------
TriggerEventKind = Literal["tick", "hook", "rejected"]


def trigger_event_subject(trigger: str, kind: TriggerEventKind) -> str:
    """Where a trigger's schedule ticks (``tick``), webhook deliveries (``hook``) and refused
    webhook deliveries (``rejected``, counted, never run) are appended."""
    return f"af.trigger.{_token(trigger)}.{kind}"


def trigger_events_filter(trigger: str) -> str:
    """Every `trigger_event_subject` of one trigger (what its consumer reads)."""
    return f"af.trigger.{_token(trigger)}.>"


def trigger_consumer(trigger: str) -> str:
    return f"trigger-{_token(trigger)}"


def tick_msg_id(trigger: str, instant: datetime) -> str:
    """A schedule instant is appended once: its ``Nats-Msg-Id`` is trigger + instant."""
    return f"{trigger}:{instant.isoformat()}"


def webhook_msg_id(trigger: str, delivery: str) -> str:
    """A webhook delivery is appended once: its ``Nats-Msg-Id`` is trigger + delivery id."""
    return f"{trigger}:{delivery}"


# Keys of the triggers bucket: ``<family>.<name>``, plus the one `WEBHOOK_KEY`.
TriggerKeyFamily = Literal["trigger", "eventtype", "stats"]
TRIGGER_KEYS: Final[TriggerKeyFamily] = "trigger"
EVENT_TYPE_KEYS: Final[TriggerKeyFamily] = "eventtype"
STATS_KEYS: Final[TriggerKeyFamily] = "stats"
WEBHOOK_KEY = "webhook"


def trigger_keys_prefix(family: TriggerKeyFamily) -> str:
    """The start of every key of one family of the triggers bucket."""
    return f"{family}."


def trigger_key(name: str) -> str:
    """A `TriggerRecord`: the applied definition, its enabled flag, its consumer's stream."""
    return trigger_keys_prefix(TRIGGER_KEYS) + name


def event_type_key(name: str) -> str:
    return trigger_keys_prefix(EVENT_TYPE_KEYS) + name


def stats_key(name: str) -> str:
    """A trigger's `TriggerStats`."""
    return trigger_keys_prefix(STATS_KEYS) + name


# --- definitions ------------------------------------------------------------------------------
def definition_key(kind: str, name: str, version: str) -> str:
    return f"{kind.lower()}.{name}.{_token(version)}"


def definitions_prefix(kind: str, name: str | None = None) -> str:
    """The start of every `definition_key` of a kind (or of one name of it)."""
    return f"{kind.lower()}." if name is None else f"{kind.lower()}.{name}."


def latest_key(kind: str, name: str) -> str:
    return f"latest.{kind.lower()}.{name}"


# --- KV buckets as streams --------------------------------------------------------------------
def kv_stream(bucket: str) -> str:
    """The stream behind a KV bucket (read it to list a bucket in one pass)."""
    return f"KV_{bucket}"


def kv_subject(bucket: str, key: str) -> str:
    """The stream subject of one key of a bucket."""
    return f"$KV.{bucket}.{key}"


def kv_filter(bucket: str, prefix: str = "") -> str:
    """Every key of `bucket` that starts with `prefix` (empty, or ending with ``.``)."""
    return f"{kv_subject(bucket, prefix)}>"


def kv_key(bucket: str, subject: str, prefix: str = "") -> str:
    """The key (less `prefix`) of a `kv_subject` of `bucket`."""
    return subject.removeprefix(kv_subject(bucket, prefix))
