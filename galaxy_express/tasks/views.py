"""HTTP operations of the tasks domain: parse, call the service, render."""

from __future__ import annotations

from pyramid.request import Request
from pyramid.response import Response

from galaxy_express.core.validation import parse_id_or_invalid
from galaxy_express.http.web import (
    Api,
    body_as,
    context_of,
    encoded_json_response,
    json_response,
    no_content,
    query_as,
)
from galaxy_express.tasks import service
from galaxy_express.tasks.commands import TaskFields, TaskListQuery, TaskPatch, TaskQuery
from galaxy_express.tasks.schemas import (
    TaskOut,
    TaskPageOut,
    task_json,
    task_page_text,
)

api = Api(tag="tasks")

_EDIT_ERRORS = (400, 404, 413, 422)


@api.operation(
    "POST",
    "/v1/tasks",
    summary="Create a task",
    description=(
        "status defaults to PENDING; a task created COMPLETED has completed_at = created_at. "
        "Assignees are added with PUT /v1/tasks/{task_id}/assignees/{user_id}."
    ),
    body=TaskFields,
    responses={201: TaskOut},
    errors=(400, 413, 422),
)
def create_task(request: Request) -> Response:
    task = service.create_task(context_of(request), body_as(request, TaskFields))
    return json_response(task_json(task), 201, headers={"Location": f"/v1/tasks/{task.id}"})


@api.operation(
    "GET",
    "/v1/tasks",
    summary="List tasks",
    description=(
        "Deleted tasks are not listed. Filters combine (AND); an unknown assignee_id or "
        "owner_id gives an empty list."
    ),
    query=TaskListQuery,
    responses={200: TaskPageOut},
    errors=(422,),
)
def list_tasks(request: Request) -> Response:
    page = service.list_tasks(context_of(request), query_as(request, TaskListQuery))
    return encoded_json_response(task_page_text(page).encode())


@api.operation(
    "GET",
    "/v1/tasks/{task_id}",
    summary="Get a task",
    description="A deleted task answers 404.",
    responses={200: TaskOut},
    errors=(404, 422),
)
def get_task(request: Request) -> Response:
    return json_response(task_json(service.get_task(context_of(request), _task_id(request))))


@api.operation(
    "PUT",
    "/v1/tasks/{task_id}",
    summary="Replace a task's editable fields",
    description=(
        "name is required; a field left out goes back to its default (no description, "
        "PENDING, no expiry). completed_at follows the status; updated_at moves only when "
        "something changed."
    ),
    body=TaskFields,
    responses={200: TaskOut},
    errors=_EDIT_ERRORS,
)
def replace_task(request: Request) -> Response:
    task_id = _task_id(request)
    fields = body_as(request, TaskFields)
    task = service.update_task(context_of(request), task_id, fields.model_dump())
    return json_response(task_json(task))


@api.operation(
    "PATCH",
    "/v1/tasks/{task_id}",
    summary="Change some of a task's editable fields",
    description=(
        "Only the fields given change; null clears description or expires_at (name and "
        "status can't be null). completed_at follows the status."
    ),
    body=TaskPatch,
    responses={200: TaskOut},
    errors=_EDIT_ERRORS,
)
def patch_task(request: Request) -> Response:
    task_id = _task_id(request)
    patch = body_as(request, TaskPatch)
    task = service.update_task(context_of(request), task_id, patch.changes())
    return json_response(task_json(task))


@api.operation(
    "DELETE",
    "/v1/tasks/{task_id}",
    summary="Delete a task (soft)",
    description="deleted_at is set; afterwards the task answers 404 and is not listed.",
    responses={204: None},
    errors=(404, 422),
)
def delete_task(request: Request) -> Response:
    service.delete_task(context_of(request), _task_id(request))
    return no_content()


@api.operation(
    "PUT",
    "/v1/tasks/{task_id}/assignees/{user_id}",
    summary="Assign a user to a task",
    description="Idempotent. 404 names the unknown task_id or user_id in `errors`.",
    responses={204: None},
    errors=(404, 422),
)
def assign_task(request: Request) -> Response:
    task_id, user_id = _task_id(request), _user_id(request)
    service.assign_task(context_of(request), task_id, user_id)
    return no_content()


@api.operation(
    "DELETE",
    "/v1/tasks/{task_id}/assignees/{user_id}",
    summary="Unassign a user from a task",
    description="Idempotent: unassigning a user who isn't assigned is no error.",
    responses={204: None},
    errors=(404, 422),
)
def unassign_task(request: Request) -> Response:
    task_id, user_id = _task_id(request), _user_id(request)
    service.unassign_task(context_of(request), task_id, user_id)
    return no_content()


def _task_id(request: Request) -> str:
    return parse_id_or_invalid(request.matchdict["task_id"], "task_id")


def _user_id(request: Request) -> str:
    return parse_id_or_invalid(request.matchdict["user_id"], "user_id")


@api.operation(
    "GET",
    "/v1/users/{user_id}/tasks",
    tag="users",
    summary="List the tasks assigned to a user",
    description="The query of GET /v1/tasks, with the assignee fixed to this user.",
    query=TaskQuery,
    responses={200: TaskPageOut},
    errors=(404, 422),
)
def list_user_tasks(request: Request) -> Response:
    query = query_as(request, TaskQuery)
    page = service.list_user_tasks(context_of(request), _user_id(request), query)
    return encoded_json_response(task_page_text(page).encode())
