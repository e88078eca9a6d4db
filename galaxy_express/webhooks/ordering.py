"""The order of a task's events, so every receiver of the same events ends with the same task.

Events reach us late, repeated and out of order. A task is therefore always
what applying its events *in their order* gives, whatever order they arrived
in: by timestamp, and at one timestamp ``created``, then ``updated``, then
``deleted``; of two ``updated``, the completed one, then the larger
``content`` (the spec's tie rule). Each event a task receives is kept
(``TaskEventRow``) and the task replayed from them (``replay``), so a late
event lands in its place: it may still move ``completed_at`` or delete the
task, but it never overrides a later event's content or status.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from galaxy_express.tasks.models import COMPLETED, PENDING, Task
from galaxy_express.tasks.service import apply_changes, mark_deleted
from galaxy_express.webhooks.commands import TaskEvent

# The order of the event kinds at one timestamp.
RANKS = {"created": 0, "updated": 1, "deleted": 2}
_CREATED, _UPDATED, _DELETED = RANKS.values()


@dataclass(frozen=True, order=True)
class OrderedEvent:
    """What of an event matters to the task, its fields in the order events apply."""

    timestamp: datetime
    rank: int
    is_completed: bool
    content: str


@dataclass(frozen=True)
class TaskTimeline:
    """The task's fields that its events decide."""

    name: str
    status: str
    completed_at: datetime | None
    updated_at: datetime
    deleted_at: datetime | None


def ordered(event: TaskEvent) -> OrderedEvent:
    rank = RANKS[event.event]
    if rank == _DELETED:
        # A deletion's content and completion change nothing: its repeats are one event.
        return OrderedEvent(event.timestamp, rank, False, "")
    return OrderedEvent(event.timestamp, rank, event.metadata.isCompleted, event.metadata.content)


def replay(events: Iterable[OrderedEvent]) -> TaskTimeline:
    """The task its events make, applied in order from its ``created`` event.

    Events older than the creation change nothing, nor do updates after the
    deletion (deleted is final). The task rules themselves (``completed_at``
    follows the status, ``updated_at`` moves when something changes) are the
    tasks service's, applied to a scratch task.
    """
    events = sorted(set(events))
    start = next(i for i, event in enumerate(events) if event.rank == _CREATED)
    created = events[start]
    task = Task(
        name=created.content,
        status=COMPLETED if created.is_completed else PENDING,
        created_at=created.timestamp,
        updated_at=created.timestamp,
        completed_at=created.timestamp if created.is_completed else None,
        deleted_at=None,
    )
    for event in events[start + 1 :]:
        if task.deleted_at is not None:
            break
        if event.rank == _UPDATED:
            apply_changes(task, _changes(task, event), at=event.timestamp)
        elif event.rank == _DELETED:
            mark_deleted(task, at=event.timestamp)
    return timeline_of(task)


def timeline_of(task: Task) -> TaskTimeline:
    return TaskTimeline(
        name=task.name,
        status=task.status,
        completed_at=task.completed_at,
        updated_at=task.updated_at,
        deleted_at=task.deleted_at,
    )


def _changes(task: Task, event: OrderedEvent) -> dict[str, str]:
    changes = {"name": event.content}
    if event.is_completed and task.status != COMPLETED:
        changes["status"] = COMPLETED
    elif not event.is_completed and task.status == COMPLETED:
        changes["status"] = PENDING
    return changes
