"""Thrift methods of the users domain: parse structs, call the service, build structs."""

from __future__ import annotations

from collections.abc import Callable

from galaxy_express.core.context import ServiceContext
from galaxy_express.core.pagination import PageQuery
from galaxy_express.core.validation import parse_id_or_invalid, validate
from galaxy_express.thrift.edge import set_fields, struct_builder
from galaxy_express.thrift.gen import ttypes
from galaxy_express.users import service
from galaxy_express.users.commands import CreateUser
from galaxy_express.users.records import UserRecord


class UsersHandler:
    def create_user(
        self, context: ServiceContext, request: ttypes.CreateUserRequest
    ) -> ttypes.User:
        fields = set_fields(username=request.username, id=request.id)
        return user_struct(service.create_user(context, validate(CreateUser, fields)))

    def get_user(self, context: ServiceContext, user_id: str) -> ttypes.User:
        user_id = parse_id_or_invalid(user_id, "user_id")
        return user_struct(service.get_user(context, user_id))

    def list_users(
        self, context: ServiceContext, request: ttypes.ListUsersRequest
    ) -> ttypes.UserPage:
        query = validate(PageQuery, set_fields(limit=request.limit, cursor=request.cursor))
        page = service.list_users(context, query)
        return ttypes.UserPage(
            items=[user_struct(user) for user in page.items], next_cursor=page.next_cursor
        )

    def delete_user(
        self, context: ServiceContext, user_id: str, idempotency_key: str | None = None
    ) -> None:
        # idempotency_key is read by thrift.edge.answer_idempotently, as on every mutating method.
        service.delete_user(context, parse_id_or_invalid(user_id, "user_id"))


user_struct: Callable[[UserRecord], ttypes.User] = struct_builder(UserRecord, ttypes.User)
