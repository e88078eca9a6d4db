"""HTTP operations of the users domain: parse, call the service, render."""

from __future__ import annotations

from pyramid.request import Request
from pyramid.response import Response

from galaxy_express.core.pagination import PageQuery
from galaxy_express.core.validation import parse_id_or_invalid
from galaxy_express.http.web import Api, body_as, context_of, json_response, no_content, query_as
from galaxy_express.users import service
from galaxy_express.users.commands import CreateUser
from galaxy_express.users.schemas import (
    UserOut,
    UserPageOut,
    user_json,
    user_page_json,
)

api = Api(tag="users")


@api.operation(
    "POST",
    "/v1/users",
    summary="Create a user",
    description=(
        "The server makes the id (`usr_` and 24 hex digits) when none is given. A username "
        "taken in any case (`Zap` and `zap` are the same) or a taken id answers 409."
    ),
    body=CreateUser,
    responses={201: UserOut},
    errors=(400, 409, 413, 422),
)
def create_user(request: Request) -> Response:
    user = service.create_user(context_of(request), body_as(request, CreateUser))
    return json_response(user_json(user), 201, headers={"Location": f"/v1/users/{user.id}"})


@api.operation(
    "GET",
    "/v1/users",
    summary="List users",
    description="In the order they were created, ties by id.",
    query=PageQuery,
    responses={200: UserPageOut},
    errors=(422,),
)
def list_users(request: Request) -> Response:
    page = service.list_users(context_of(request), query_as(request, PageQuery))
    return json_response(user_page_json(page))


@api.operation(
    "GET",
    "/v1/users/{user_id}",
    summary="Get a user",
    responses={200: UserOut},
    errors=(404, 422),
)
def get_user(request: Request) -> Response:
    user_id = parse_id_or_invalid(request.matchdict["user_id"], "user_id")
    return json_response(user_json(service.get_user(context_of(request), user_id)))


@api.operation(
    "DELETE",
    "/v1/users/{user_id}",
    summary="Delete a user",
    description=(
        "Their task assignments go with them; tasks they own (owner_id) are kept. "
        "The id and username become free again."
    ),
    responses={204: None},
    errors=(404, 422),
)
def delete_user(request: Request) -> Response:
    user_id = parse_id_or_invalid(request.matchdict["user_id"], "user_id")
    service.delete_user(context_of(request), user_id)
    return no_content()
