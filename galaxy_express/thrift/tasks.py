"""Thrift methods of the tasks domain: parse structs, call the service, build structs.

``update_task`` is PUT with ``replace=true`` (fields not set take their
defaults) and PATCH otherwise (fields not set are left alone). Thrift can't
tell an unset optional field from a null one, so clearing description or
expires_at over Thrift takes ``replace=true``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from galaxy_express.core.context import ServiceContext
from galaxy_express.core.validation import parse_id_or_invalid, validate
from galaxy_express.tasks import service
from galaxy_express.tasks.commands import TaskFields, TaskListQuery, TaskPatch
from galaxy_express.tasks.records import TaskRecord
from galaxy_express.thrift.edge import set_fields, struct_builder, to_instant
from galaxy_express.thrift.gen import ttypes


class TasksHandler:
    def create_task(
        self, context: ServiceContext, request: ttypes.CreateTaskRequest
    ) -> ttypes.Task:
        fields = validate(TaskFields, _editable_fields(request))
        return task_struct(service.create_task(context, fields))

    def get_task(self, context: ServiceContext, task_id: str) -> ttypes.Task:
        task_id = parse_id_or_invalid(task_id, "task_id")
        return task_struct(service.get_task(context, task_id))

    def list_tasks(
        self, context: ServiceContext, request: ttypes.ListTasksRequest
    ) -> ttypes.TaskPage:
        fields = set_fields(
            status=request.status,
            assignee_id=request.assignee_id,
            owner_id=request.owner_id,
            order=request.order,
            limit=request.limit,
            cursor=request.cursor,
        )
        query = validate(TaskListQuery, fields)
        page = service.list_tasks(context, query)
        return ttypes.TaskPage(
            items=[task_struct(task) for task in page.items], next_cursor=page.next_cursor
        )

    def update_task(
        self, context: ServiceContext, request: ttypes.UpdateTaskRequest
    ) -> ttypes.Task:
        task_id = parse_id_or_invalid(request.task_id, "task_id")
        given = _editable_fields(request)
        if request.replace:
            changes = validate(TaskFields, given).model_dump()
        else:
            changes = validate(TaskPatch, given).changes()
        return task_struct(service.update_task(context, task_id, changes))

    def delete_task(
        self, context: ServiceContext, task_id: str, idempotency_key: str | None = None
    ) -> None:
        service.delete_task(context, parse_id_or_invalid(task_id, "task_id"))

    def assign_task(
        self,
        context: ServiceContext,
        task_id: str,
        user_id: str,
        idempotency_key: str | None = None,
    ) -> None:
        task_id = parse_id_or_invalid(task_id, "task_id")
        service.assign_task(context, task_id, parse_id_or_invalid(user_id, "user_id"))

    def unassign_task(
        self,
        context: ServiceContext,
        task_id: str,
        user_id: str,
        idempotency_key: str | None = None,
    ) -> None:
        task_id = parse_id_or_invalid(task_id, "task_id")
        service.unassign_task(context, task_id, parse_id_or_invalid(user_id, "user_id"))


def _editable_fields(
    request: ttypes.CreateTaskRequest | ttypes.UpdateTaskRequest,
) -> dict[str, Any]:
    """The editable fields of a request; unset ones are left out (so defaults apply)."""
    return set_fields(
        name=request.name,
        description=request.description,
        status=request.status,
        expires_at=to_instant(request.expires_at, "expires_at"),
    )


# A task as every Thrift answer shows it (reports reuse this), from the record's fields.
task_struct: Callable[[TaskRecord], ttypes.Task] = struct_builder(TaskRecord, ttypes.Task)
